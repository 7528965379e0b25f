"""End to end on real daemons: a mixed lab's management network, its inventory, configs
saved on the devices, a redeploy from extracted configs, and its picture.

A config line entered on r1 (FRR) and on v1 (mini-ios, over telnet on its management
address) survives ``save`` + a restart of each node (the container restarted, the domain
powered off and on, directly with the SDKs), and comes back after ``configs``, ``destroy``
and ``deploy --from-configs``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import libvirt
import pytest
import yaml

from lab import names
from lab.settings import get_settings
from tests.e2e.test_cli_contract import cli
from tests.support.leftovers import leftovers
from tests.support.prefect_server import REPO, PrefectServer
from tests.support.reach import Telnet, ping

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt]
ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")
LINE = "mgmt-e2e-saved"
BOOT_TIMEOUT = 300.0  # a TCG boot on a loaded 2-core host


def topology(lab_id: str) -> str:
    return yaml.safe_dump({
        "name": lab_id,
        "topology": {
            "nodes": {"r1": {"kind": "frr"}, "h1": {"kind": "linux"}, "v1": {"kind": "mini-ios"}},
            "links": [
                {"endpoints": ["r1:eth1", "v1:GigabitEthernet0/1"]},
                {"endpoints": ["r1:eth2", "h1:eth1"]},
            ],
        },
    }, sort_keys=False)


@pytest.fixture(scope="module", autouse=True)
def mini_ios_with_telnet() -> None:
    """The image in use has the telnet service (build.sh only compares its stamp when it is)."""
    target = get_settings().image_dir / "mini-ios"
    result = subprocess.run(["bash", str(REPO / "images/mini-ios/build.sh"), str(target)],
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def run_json(server: PrefectServer | None, *args: str) -> dict:
    done = cli(server, *args, "--json")
    assert done.returncode == 0, f"archetype {' '.join(args)}: {done.stderr[-3000:]}"
    return json.loads(done.stdout)


def vty(address: str, timeout: float = 20.0) -> Telnet:
    """A logged-in, enabled telnet session on mini-ios with paging off."""
    session = Telnet(address, timeout=timeout)
    session.expect(r"Username: ?$", timeout)
    session.send_line("admin")
    session.expect(r"Password: ?$", timeout)
    session.send_line("admin")
    session.expect(r">\s*$", timeout)
    for line, prompt in (("terminal length 0", r">\s*$"), ("enable", r"#\s*$")):
        session.send_line(line)
        session.expect(prompt, timeout)
    return session


def vm_running_config(address: str) -> str:
    with vty(address) as session:
        session.send_line("show running-config")
        return session.expect(r"\nend\r?\n[\s\S]*#\s*$", 30)


def frr_running_config(lab_id: str) -> str:
    client = docker.from_env()
    try:
        container = client.containers.get(names.container_name(lab_id, "r1"))
        return container.exec_run(["vtysh", "-c", "show running-config"]).output.decode()
    finally:
        client.close()


def wait_for(what: str, check, timeout: float = BOOT_TIMEOUT):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, TimeoutError, ConnectionError) as err:
            last = err
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout:.0f} s (last error: {last!r})")


def restart_nodes(lab_id: str) -> None:
    """r1's container restarted, v1's domain powered off and started again: by the SDKs."""
    client = docker.from_env()
    try:
        client.containers.get(names.container_name(lab_id, "r1")).restart(timeout=5)
    finally:
        client.close()
    conn = libvirt.open(get_settings().libvirt_uri)
    try:
        domain = conn.lookupByName(names.domain_name(lab_id, "v1"))
        domain.destroy()
        domain.create()
    finally:
        conn.close()


def addresses(server: PrefectServer | None, lab_id: str) -> dict[str, str]:
    (lab,) = run_json(server, "status", lab_id)["labs"]
    return {n["name"]: n["mgmt_ipv4"] for n in lab["nodes"]}


def test_management_inventory_save_redeploy_and_picture(prefect_server: PrefectServer, tmp_path: Path) -> None:
    lab_id = f"mgmt-{secrets.token_hex(3)}"
    path = tmp_path / f"{lab_id}.yml"
    path.write_text(topology(lab_id))
    try:
        deployed = run_json(prefect_server, "deploy", str(path))
        assert all(n["state"] == "ready" for n in deployed["nodes"]), deployed
        mgmt = addresses(None, lab_id)
        assert mgmt == {n["name"]: n["mgmt_ipv4"] for n in deployed["nodes"]}
        assert all(mgmt.values()) and len(set(mgmt.values())) == 3

        # every node answers on its management address, from the lab host
        for node, address in mgmt.items():
            assert wait_for(f"{node} answering ping on {address}", lambda a=address: ping(a), 60)
        # the VM's CLI over TCP: telnet, login, show version
        with vty(mgmt["v1"]) as session:
            session.send_line("show version")
            assert "Cisco IOS Software" in session.expect(r"Configuration register[\s\S]*#\s*$", 30)

        # inventories
        inventory_file = tmp_path / "inventory.yml"
        run_json(None, "inventory", lab_id, "--format", "ansible", "--out", str(inventory_file))
        listed = subprocess.run([ANSIBLE_INVENTORY, "-i", str(inventory_file), "--list"],
                                capture_output=True, text=True, timeout=120, check=False)
        assert listed.returncode == 0, listed.stderr
        hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
        assert {name: v["archetype_mgmt_ipv4"] for name, v in hostvars.items()} == mgmt
        assert hostvars["v1"]["ansible_host"] == mgmt["v1"]  # SSH; containers by name (docker connection)
        assert hostvars["r1"]["ansible_host"] == names.container_name(lab_id, "r1")
        assert hostvars["v1"]["ansible_network_os"] == "cisco.ios.ios"
        password = yaml.safe_load(inventory_file.read_text())["all"]["children"]["mini_ios"]["vars"]["ansible_password"]
        # from the environment; the fallback is our own test image's fixed login
        assert password == "{{ lookup('ansible.builtin.env', 'ARCHETYPE_PASSWORD_MINI_IOS', default='admin') }}"
        nornir = run_json(None, "inventory", lab_id, "--format", "nornir")["inventory"]
        assert {name: h["hostname"] for name, h in nornir.items()} == mgmt

        # a config line on r1 and v1, saved on the devices, survives a restart of each
        client = docker.from_env()
        client.containers.get(names.container_name(lab_id, "r1")).exec_run(
            ["vtysh", "-c", "configure terminal", "-c", "interface eth1", "-c", f"description {LINE}"])
        client.close()
        with vty(mgmt["v1"]) as session:
            for line in ("configure terminal", "interface GigabitEthernet0/1", f"description {LINE}", "end"):
                session.send_line(line)
                session.expect(r"#\s*$")
        saved = run_json(prefect_server, "save", lab_id)["nodes"]
        assert saved["r1"]["ok"] and saved["v1"]["ok"] and saved["h1"]["ok"] is None, saved
        restart_nodes(lab_id)
        assert wait_for("r1 showing its saved line after a restart", lambda: LINE in frr_running_config(lab_id), 60)
        assert wait_for("v1 showing its saved line after a reboot", lambda: LINE in vm_running_config(mgmt["v1"]))

        # configs, destroy, deploy --from-configs: the line is back
        pulled = run_json(prefect_server, "configs", lab_id)["configs"]
        assert all(c["ok"] for c in pulled.values()), pulled
        run_json(prefect_server, "destroy", lab_id)
        assert leftovers(lab_id) == {}
        redeployed = run_json(prefect_server, "deploy", str(path), "--from-configs")
        assert all(n["state"] == "ready" for n in redeployed["nodes"]), redeployed
        assert addresses(None, lab_id) == mgmt  # the same lab gets the same addresses again
        assert LINE in frr_running_config(lab_id)
        assert wait_for("v1 showing the extracted line", lambda: LINE in vm_running_config(mgmt["v1"]), 60)

        # the picture: every node and link end, from the running lab and from the file
        svg_file = tmp_path / "lab.svg"
        shown = run_json(None, "graph", lab_id, "--out", str(svg_file))
        root = ET.parse(svg_file).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        words = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
        assert {"r1", "h1", "v1", "eth1", "eth2", "GigabitEthernet0/1"} <= words
        assert sorted(sorted(link["endpoints"]) for link in shown["links"]) == [
            ["h1:eth1", "r1:eth2"], ["r1:eth1", "v1:GigabitEthernet0/1"]]
        assert all(link["vlan"] for link in shown["links"])
        ET.fromstring(cli(None, "graph", str(path)).stdout)
        artifacts = prefect_server.api("POST", "/artifacts/filter",
                                       json={"artifacts": {"key": {"any_": [names.picture_artifact_key(lab_id)]}}})
        assert artifacts and "data:image/svg+xml;base64," in artifacts[0]["data"]
    finally:
        destroyed = cli(prefect_server, "destroy", lab_id, "--json")
        shutil.rmtree(names.configs_dir(lab_id), ignore_errors=True)  # destroy keeps configs: the test's own
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert leftovers(lab_id) == {}
