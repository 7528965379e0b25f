"""Helpers of the fault tests: deploys as killable subprocesses, host-state probes read
straight from docker / libvirt / OVS / the filesystem, daemon restarts, and the checks
that a lab converged (all nodes ready, same VLANs, nothing duplicated) or is gone.

Every lab made here has a fresh id (``lab_id(prefix)``); nothing here ever touches a
resource of a lab it did not make (other engineers' labs run on the same host).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml

from lab import names
from tests.support.leftovers import lab_domains, leftovers, ovs_port_rows
from tests.support.prefect_server import ARCHETYPE, REPO, PrefectServer

PYTHON = sys.executable
START_DAEMONS = REPO / "scripts" / "start-daemons.sh"
RUNNING_LIMIT = 240.0  # no CLI call of these tests may take longer (a hang is a failure, not a wait)


def lab_id(prefix: str) -> str:
    """A fresh, valid lab id (``^[a-z][a-z0-9-]{0,19}$``)."""
    return f"{prefix}-{secrets.token_hex(3)}"


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; that value, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# Topologies ------------------------------------------------------------------------------


def frr_config(hostname: str, addresses: dict[str, str]) -> str:
    lines = [f"hostname {hostname}"]
    for interface, address in addresses.items():
        lines += [f"interface {interface}", f" ip address {address}"]
    return "\n".join(lines) + "\n"


def write_topology(folder: Path, document: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{document['name']}.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


HOLD_LIMIT = 120  # seconds a held post-boot waits for its release before it fails the deploy


def small_lab(lab: str, folder: Path, *, post_boot_sleep: float = 0, mark: bool = False, hold: bool = False) -> Path:
    """Two FRR routers and two linux hosts, three links (six OVS ports), addressed so that
    r1 reaches r2, h1 and (through r2's subnet) nothing else:

        h1 -- r1 -- r2 -- h2

    ``mark``: h1's post-boot touches ``folder/mark/<lab>/post-boot`` (a bind mount) so a
    test can see the deploy reach post-boot; ``post_boot_sleep`` keeps it there a while;
    ``hold`` (with ``mark``) keeps it there until the test calls ``release(lab, folder)``
    (then every later post-boot of h1 passes at once), at most HOLD_LIMIT s (then the
    post-boot fails)."""
    h1_exec = ["ip addr replace 10.9.1.2/24 dev eth1"]
    h1: dict[str, Any] = {"kind": "linux"}
    if mark:
        marks = folder / "mark" / lab
        marks.mkdir(parents=True, exist_ok=True)
        h1["binds"] = [f"{marks}:/mark"]
        h1_exec.append("touch /mark/post-boot")
    if hold:
        assert mark, "hold needs mark (the bind mount the release is seen through)"
        tries = HOLD_LIMIT * 10
        h1_exec.append(f"sh -c 'i=0; until [ -e /mark/release ]; do i=$((i+1)); [ $i -le {tries} ] || exit 1; "
                       "sleep 0.1; done'")
    if post_boot_sleep:
        h1_exec.append(f"sleep {post_boot_sleep:g}")
    h1["exec"] = h1_exec
    document = {
        "name": lab,
        "topology": {
            "nodes": {
                "r1": {"kind": "frr", "startup-config": frr_config("r1", {"eth1": "10.9.12.1/24", "eth2": "10.9.1.1/24"})},
                "r2": {"kind": "frr", "startup-config": frr_config("r2", {"eth1": "10.9.12.2/24", "eth2": "10.9.2.1/24"})},
                "h1": h1,
                "h2": {"kind": "linux", "exec": ["ip addr replace 10.9.2.2/24 dev eth1"]},
            },
            "links": [
                {"endpoints": ["r1:eth1", "r2:eth1"]},
                {"endpoints": ["r1:eth2", "h1:eth1"]},
                {"endpoints": ["r2:eth2", "h2:eth1"]},
            ],
        },
    }
    return write_topology(folder, document)


def release(lab: str, folder: Path) -> None:
    """Let the held post-boot of ``small_lab(lab, folder, hold=True)`` go on (and every later one)."""
    (folder / "mark" / lab / "release").touch()


def pair_lab(lab: str, folder: Path, *, post_boot_sleep: float = 0, verb: str = "replace") -> Path:
    """Two linux hosts on one link (the cheapest lab that has a link). ``verb="add"``: their
    exec is not idempotent (as in examples/linux-hosts.yml): a second run fails."""
    h1_exec = [f"ip addr {verb} 10.8.0.1/24 dev eth1"] + ([f"sleep {post_boot_sleep:g}"] if post_boot_sleep else [])
    document = {
        "name": lab,
        "topology": {
            "nodes": {
                "h1": {"kind": "linux", "exec": h1_exec},
                "h2": {"kind": "linux", "exec": [f"ip addr {verb} 10.8.0.2/24 dev eth1"]},
            },
            "links": [{"endpoints": ["h1:eth1", "h2:eth1"]}],
        },
    }
    return write_topology(folder, document)


def line_lab(lab: str, folder: Path, hosts: int = 3) -> Path:
    """``hosts`` linux hosts in a line (h1 -- h2 -- ... ), ``hosts - 1`` links."""
    nodes = {f"h{i}": {"kind": "linux"} for i in range(1, hosts + 1)}
    links = [{"endpoints": [f"h{i}:eth2" if i > 1 else "h1:eth1", f"h{i + 1}:eth1"]} for i in range(1, hosts)]
    return write_topology(folder, {"name": lab, "topology": {"nodes": nodes, "links": links}})


def mixed_lab(lab: str, folder: Path, *, vm_exec: list[str] | None = None, host: bool = False) -> Path:
    """One FRR router and one mini-ios VM on one link (r1 10.7.0.1 -- v1 10.7.0.2);
    ``host``: a linux host h1 on r1's second link too (r1 10.7.1.1 -- h1 10.7.1.2)."""
    exec_lines = vm_exec if vm_exec is not None else [
        "configure terminal", "interface GigabitEthernet0/1", "ip address 10.7.0.2 255.255.255.0",
        "no shutdown", "end",
    ]
    document = {
        "name": lab,
        "topology": {
            "nodes": {
                "r1": {"kind": "frr", "startup-config": frr_config("r1", {"eth1": "10.7.0.1/24", "eth2": "10.7.1.1/24"})},
                "v1": {"kind": "mini-ios", "exec": exec_lines},
            },
            "links": [{"endpoints": ["r1:eth1", "v1:GigabitEthernet0/1"]}],
        },
    }
    if host:
        document["topology"]["nodes"]["h1"] = {"kind": "linux", "exec": ["ip addr replace 10.7.1.2/24 dev eth1"]}
        document["topology"]["links"].append({"endpoints": ["r1:eth2", "h1:eth1"]})
    return write_topology(folder, document)


# The command line ----------------------------------------------------------------------


def cli(server: PrefectServer | None, *args: str, timeout: float = RUNNING_LIMIT, **env: str) -> subprocess.CompletedProcess:
    """``archetype ARGS`` in a fresh process (with the server's PREFECT_API_URL, or none)."""
    if server is not None:
        environment = server.env(**env)
    else:
        environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | env
    return subprocess.run([ARCHETYPE, *args], env=environment, capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


def cli_process(server: PrefectServer, *args: str, **env: str) -> subprocess.Popen:
    """``archetype ARGS`` started in the background (``communicate()`` to wait)."""
    return subprocess.Popen([ARCHETYPE, *args], env=server.env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@dataclass
class Deploy:
    """``archetype deploy FILE --json`` running in its own process group (so SIGKILL takes
    every thread and child with it)."""

    process: subprocess.Popen
    out: Path
    err: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, server: PrefectServer, topology: Path, **env: str) -> Deploy:
        out = topology.with_suffix(f".{secrets.token_hex(2)}.out")
        err = out.with_suffix(".err")
        with open(out, "w") as stdout, open(err, "w") as stderr:
            process = subprocess.Popen([ARCHETYPE, "deploy", str(topology), "--json"], env=server.env(**env),
                                       stdout=stdout, stderr=stderr, start_new_session=True)
        return cls(process, out, err)

    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def wait(self, timeout: float = RUNNING_LIMIT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the deploy did not finish within {timeout:.0f} s: {self.stderr()[-3000:]}") from None

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def result(self) -> dict[str, Any]:
        return json.loads(self.stdout())


def deploy(server: PrefectServer, topology: Path, **env: str) -> dict[str, Any]:
    """Deploy and require success; the ``--json`` document."""
    done = cli(server, "deploy", str(topology), "--json", **env)
    assert done.returncode == 0, f"deploy exited {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


def destroy(server: PrefectServer, lab: str) -> dict[str, Any]:
    done = cli(server, "destroy", lab, "--json")
    assert done.returncode == 0, f"destroy exited {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


def destroy_and_check(server: PrefectServer, lab: str) -> None:
    """Destroy through the flow; nothing of the lab may remain on the host."""
    destroy(server, lab)
    assert leftovers(lab) == {}, leftovers(lab)


def tear_down(server: PrefectServer, *labs: str, runs: Iterable[Deploy | None] = ()) -> None:
    """For ``finally`` blocks: kill the deploys still running, then make sure of each lab."""
    for run in runs:
        if run is not None and run.running():
            run.kill()
    for lab in labs:
        safety_destroy(server, lab)


def safety_destroy(server: PrefectServer, lab: str) -> None:
    """For ``finally`` blocks: make sure a failed test leaves nothing behind (errors ignored)."""
    kill_consoles(lab)
    try:
        if leftovers(lab):
            cli(server, "destroy", lab, "--json", timeout=180)
    except Exception:  # noqa: BLE001 - best effort; the test already reports its failure
        pass


# Host state, read straight from the runtimes ---------------------------------------------


def containers(lab: str) -> list[dict[str, Any]]:
    """The lab's containers by label (running or not), with name and state."""
    client = docker.from_env(timeout=30)
    try:
        rows = client.api.containers(all=True, filters={"label": f"{names.LABEL_LAB}={lab}"})
    finally:
        client.close()
    return sorted(({"name": r["Names"][0].lstrip("/"), "state": r["State"], "id": r["Id"]} for r in rows),
                  key=lambda c: c["name"])


def mgmt_networks(lab: str) -> list[str]:
    """The lab's management bridge(s), by their ifalias marker (``ip``, not our code)."""
    result = subprocess.run(["ip", "-j", "-d", "link", "show", "type", "bridge"], capture_output=True, text=True, timeout=30)
    return [link["ifname"] for link in json.loads(result.stdout or "[]")
            if link.get("ifalias", "").startswith(f"archetype-mgmt lab={lab} ")]


domains = lab_domains


@dataclass(frozen=True)
class Port:
    name: str
    tag: int | None
    lab: str | None
    link: str | None
    bridge: str | None = None


def ovs_ports() -> list[Port]:
    """Every OVS port of every bridge (one ovs-vsctl read)."""
    return [Port(name, tag, ids.get(names.OVS_LAB_KEY), ids.get(names.OVS_LINK_KEY)) for name, tag, ids in ovs_port_rows()]


def lab_ports(lab: str) -> list[Port]:
    return sorted((p for p in ovs_ports() if p.lab == lab), key=lambda p: p.name)


def bridge_port_names() -> set[str]:
    result = subprocess.run(["ovs-vsctl", "--timeout=10", "list-ports", "arch-ovs"], capture_output=True, text=True,
                            timeout=30)
    return set(result.stdout.split())


def host_links() -> list[dict[str, Any]]:
    result = subprocess.run(["ip", "-j", "-d", "link", "show"], capture_output=True, text=True, timeout=30)
    return json.loads(result.stdout or "[]")


def lab_veths(lab: str) -> list[str]:
    """The host ends of the lab's data links (their ifalias marker)."""
    return [link["ifname"] for link in host_links() if link.get("ifalias", "").startswith(f"archetype lab={lab} ")]


def lab_mgmt_ports(lab: str) -> list[str]:
    """The host ends of the lab's containers' management veths (their ifalias marker)."""
    return [link["ifname"] for link in host_links()
            if link.get("ifalias", "").startswith(f"archetype-mgmt-port lab={lab} ")]


def reserved_vlans(lab: str) -> dict[str, int] | None:
    """The lab's host-local VLAN reservation (link id -> tag), None when it has none."""
    path = names.vlan_record_path(lab)
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return {link: entry["vlan"] for link, entry in record["links"].items() if entry.get("vlan") is not None}


def state_rows(server: PrefectServer, lab: str) -> list[dict[str, Any]]:
    """The rows of the lab's newest state artifact ([] when none was published)."""
    artifact = server.artifact(names.state_artifact_key(lab))
    if artifact is None:
        return []
    return json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]


def state_status(server: PrefectServer, lab: str) -> str | None:
    """The status in the lab's newest state artifact, None when none was published."""
    return next((str(r["state"]) for r in state_rows(server, lab) if r["item"] == "lab"), None)


def node_states(server: PrefectServer, lab: str) -> dict[str, str]:
    """node -> state, from the lab's newest state artifact."""
    return {str(r["name"]): str(r["state"]) for r in state_rows(server, lab) if r["item"] == "node"}


def console_processes(lab: str) -> list[int]:
    """PIDs of ``virsh console`` processes attached to one of the lab's domains (a killed
    deploy leaves its console child behind: pexpect gives it a session of its own)."""
    prefix = names.domain_name(lab, "").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"virsh") and b"console" in argv and any(a.startswith(prefix) for a in argv):
            pids.append(int(entry.name))
    return pids


def kill_consoles(lab: str) -> None:
    for pid in console_processes(lab):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def exec_in(lab: str, node: str, *argv: str) -> tuple[int, str]:
    client = docker.from_env(timeout=60)
    try:
        code, out = client.containers.get(names.container_name(lab, node)).exec_run(list(argv))
        return code, out.decode(errors="replace")
    finally:
        client.close()


def pings(lab: str, node: str, address: str, timeout: float = 20) -> bool:
    """``node`` reaches ``address`` (retried a while: links may take a moment)."""
    return bool(wait_until(lambda: exec_in(lab, node, "ping", "-c", "1", "-W", "1", address)[0] == 0, timeout, 0.5))


def reach_picture(lab: str, vm: str) -> str:
    """What a failed reach to a VM needs to be understood: the lab's OVS ports with their
    tags, each port's link state, and the tail of the VM's serial log (what was typed)."""
    ports = {p.name: p.tag for p in lab_ports(lab)}
    states = {link["ifname"]: (link.get("operstate"), link.get("flags")) for link in host_links()
              if link["ifname"] in ports}
    serial = names.serial_log_path(lab, vm)
    tail = serial.read_text(errors="replace")[-1500:] if serial.exists() else "(no serial log)"
    return f"ports (tag): {ports}\nlink states: {states}\nserial log of {vm}, its end:\n{tail}"


# Convergence -------------------------------------------------------------------------


def link_vlans(result: dict[str, Any]) -> dict[str, int]:
    """link id -> VLAN from a deploy's ``--json`` document."""
    return {names.link_id(*link["endpoints"]): link["vlan"] for link in result["links"]}


def assert_converged(lab: str, result: dict[str, Any], *, containers_expected: int, domains_expected: int = 0,
                     ports_expected: int, domain_ports: int | None = None,
                     vlans_before: dict[str, int] | None = None) -> None:
    """All nodes ready; each node exists once and runs; each link has one VLAN, distinct,
    the same as the first allocation, carried by exactly its ports; no stray veth.
    ``domain_ports``: how many of the ports are VM taps (default: one per VM)."""
    domain_ports = domains_expected if domain_ports is None else domain_ports
    assert result["lab_id"] == lab
    assert result.get("errors") in (None, []), result.get("errors")
    assert all(n["state"] == "ready" for n in result["nodes"]), result["nodes"]
    vlans = link_vlans(result)
    assert len(set(vlans.values())) == len(vlans), f"two links share a VLAN: {vlans}"
    if vlans_before:
        assert {k: v for k, v in vlans.items() if k in vlans_before} == vlans_before, \
            f"VLANs changed: first allocation {vlans_before}, now {vlans}"
    assert reserved_vlans(lab) == vlans

    found = containers(lab)
    assert len(found) == containers_expected, f"containers: {found}"
    assert all(c["state"] == "running" for c in found), found
    assert len(domains(lab)) == domains_expected, domains(lab)

    ports = lab_ports(lab)
    assert len(ports) == ports_expected, f"OVS ports: {ports}"
    assert len({p.name for p in ports}) == len(ports)
    on_bridge = bridge_port_names()
    for port in ports:
        assert port.name in on_bridge, f"port {port.name} is not on the bridge"
        assert port.link in vlans and port.tag == vlans[port.link], f"port {port} vs VLANs {vlans}"
    # Our tags are ours alone: no other lab's port carries one of them.
    ours = set(vlans.values())
    strangers = [p for p in ovs_ports() if p.tag in ours and p.lab != lab and p.name in on_bridge]
    assert not strangers, f"ports of other labs carry this lab's VLANs: {strangers}"
    # Every port has its device: a veth (container end, marked) or a VM's tap.
    kinds = {link["ifname"]: link.get("linkinfo", {}).get("info_kind") for link in host_links()}
    assert all(p.name in kinds for p in ports), f"ports without a device: {[p for p in ports if p.name not in kinds]}"
    container_ports = sorted(p.name for p in ports if kinds[p.name] == "veth")
    assert len(container_ports) == ports_expected - domain_ports, f"veth ports {container_ports} of {ports}"
    veths = sorted(lab_veths(lab))
    assert veths == container_ports, f"host veths {veths} vs container ports {container_ports}"
    # One management bridge, one management veth per container on it.
    assert len(mgmt_networks(lab)) == 1, mgmt_networks(lab)
    assert len(lab_mgmt_ports(lab)) == containers_expected, lab_mgmt_ports(lab)


def discovered(lab: str) -> dict[str, str]:
    """node -> state, from ``archetype status LAB --json`` (live markers, no Prefect)."""
    done = cli(None, "status", lab, "--json")
    if done.returncode != 0:
        return {}
    (found,) = json.loads(done.stdout)["labs"]
    nodes = [n["name"] for n in found["nodes"]]
    assert len(set(nodes)) == len(nodes), f"a node discovered twice: {done.stdout}"
    return {n["name"]: n["state"] for n in found["nodes"]}


def assert_discovered(lab: str, expected: dict[str, str]) -> None:
    """``archetype status`` finds the lab's nodes in these states, at the first asking. (It
    once listed two of four containers: the e2e session's worker, alive until the session
    ended, ran its scheduled orphan cleanup and was removing the lab. Its schedule is now
    off: tests/support/prefect_server.py, pause_scheduled_cleanup.) The message gives what
    the runtimes list beside what status said."""
    found = discovered(lab)
    assert found == expected, (f"discovered {found}, expected {expected}; docker lists {containers(lab)}, "
                               f"libvirt {domains(lab)}")


# Daemons -----------------------------------------------------------------------------


def _pid_from(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def start_daemons(*which: str) -> None:
    result = subprocess.run(["bash", str(START_DAEMONS), *which], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]


def kill_daemon(pidfile: str, name: str) -> int:
    """SIGKILL a daemon by its pid file (checked to be that daemon); its pid."""
    pid = _pid_from(pidfile)
    assert pid is not None, f"no pid in {pidfile}"
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    assert comm == name, f"{pidfile} names pid {pid} ({comm}), not {name}"
    os.kill(pid, signal.SIGKILL)
    return pid
