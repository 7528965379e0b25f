"""What a lab left on the host, read straight from each runtime (not through our code)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from lab import names


def _docker_leftovers(lab_id: str) -> dict[str, list[str]]:
    import docker

    client = docker.from_env()
    try:
        label = f"{names.LABEL_LAB}={lab_id}"
        return {
            "containers": [c.name for c in client.containers.list(all=True, filters={"label": label})],
            "networks": [n.name for n in client.networks.list(filters={"label": label})],
            "volumes": [v.name for v in client.volumes.list(filters={"label": label})],
        }
    finally:
        client.close()


def lab_domains(lab_id: str) -> list[str]:
    """The lab's libvirt domains, running or not, by name (virsh, not our code)."""
    result = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True, text=True, timeout=60)
    prefix = names.domain_name(lab_id, "")
    return [d for d in result.stdout.split() if d.startswith(prefix)]


def ovs_port_rows() -> list[tuple[str, int | None, dict[str, str]]]:
    """(name, tag, external_ids) of every OVS port of every bridge: one ovs-vsctl read."""
    result = subprocess.run(
        ["ovs-vsctl", "--timeout=10", "--format=json", "--columns=name,tag,external_ids", "list", "Port"],
        capture_output=True, text=True, timeout=30,
    )
    if result.returncode != 0:
        return []
    return [(name, tag if isinstance(tag, int) else None, dict(pairs))
            for name, tag, (_, pairs) in json.loads(result.stdout)["data"]]


def _ovs_leftovers(lab_id: str) -> list[str]:
    return [name for name, _tag, ids in ovs_port_rows() if ids.get(names.OVS_LAB_KEY) == lab_id]


def _veth_leftovers(lab_id: str) -> list[str]:
    result = subprocess.run(["ip", "-j", "-d", "link", "show"], capture_output=True, text=True, timeout=30)
    return [link["ifname"] for link in json.loads(result.stdout or "[]")
            if f"lab={lab_id} " in (link.get("ifalias", "") + " ")]


def _mgmt_rule_leftovers(lab_id: str) -> list[str]:
    """The lab's management network's iptables rules (their comment names the lab)."""
    result = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30)
    marker = re.compile(rf'archetype-mgmt:{re.escape(lab_id)}"?(\s|$)')
    return [line for line in result.stdout.splitlines() if marker.search(line)]


def _file_leftovers(lab_id: str) -> list[str]:
    paths = [names.disks_dir(lab_id), names.data_dir(lab_id), names.lab_dir(lab_id), names.vlan_record_path(lab_id)]
    # console locks of the lab's VMs (the lab's own lock stays: it orders runs of the lab)
    paths += names.locks_dir().glob(f"console-{names.domain_name(lab_id, '')}*.lock")
    return [str(p) for p in paths if Path(p).exists()]


def leftovers(lab_id: str) -> dict[str, list[str]]:
    """Every resource of the lab still on the host; all lists empty after a clean destroy."""
    found = _docker_leftovers(lab_id)
    found.update(domains=lab_domains(lab_id), ovs_ports=_ovs_leftovers(lab_id),
                 veths=_veth_leftovers(lab_id), mgmt_rules=_mgmt_rule_leftovers(lab_id),
                 files=_file_leftovers(lab_id))
    return {kind: items for kind, items in found.items() if items}
