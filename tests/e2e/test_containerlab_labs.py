"""Labs people already have, run as they are: netlab's containerlab output (a LAN segment and
point-to-point links, then `netlab initial`), containerlab's own frr01 example with only its
image lines changed, a LAN of a container and a VM on one `bridge`, and the extended link
format with a `host:IF` end. Every lab is destroyed and must leave nothing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml

from providers.network import network_inventory
from tests.support.leftovers import leftovers, ovs_port_rows
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]
BIN = Path(sys.executable).parent
DATA = Path(__file__).parents[1] / "unit" / "data" / "containerlab" / "lab-examples"
LOCAL_IMAGES = {"frr": "archetype/frr:latest", "host": "archetype/linux:latest"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A Prefect server of this module's own, given time to start on a loaded host."""
    started = PrefectServer.start(tmp_path_factory.mktemp("prefect-home"), timeout=300)
    try:
        yield started
    finally:
        started.stop()


def cli(server: PrefectServer, *args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "archetype"), *args], env=server.env(), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def sh(container: str, command: str) -> tuple[int, str]:
    client = docker.from_env()
    try:
        code, out = client.containers.get(container).exec_run(["sh", "-c", command])
        return code, out.decode(errors="replace")
    finally:
        client.close()


def wait_until(check, timeout: float, interval: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def deploy(server: PrefectServer, path: Path, lab_id: str) -> dict:
    result = cli(server, "deploy", str(path), "--json", cwd=path.parent)
    return deployed_ok(result.returncode, result.stdout, result.stderr, lab_id)


def deployed_ok(returncode: int, stdout: str, stderr: str, lab_id: str) -> dict:
    """A deploy's ``--json`` document, required to be a success with every node ready."""
    assert returncode == 0, (stdout[-2000:], stderr[-4000:])
    deployed = json.loads(stdout)
    assert deployed["lab_id"] == lab_id and all(n["state"] == "ready" for n in deployed["nodes"]), deployed
    return deployed


def destroy(server: PrefectServer, lab_id: str) -> None:
    result = cli(server, "destroy", lab_id)
    assert result.returncode == 0, result.stderr[-3000:]
    assert leftovers(lab_id) == {}


def _container_log(name: str) -> str:
    client = docker.from_env()
    try:
        return client.containers.get(name).logs(tail=40).decode(errors="replace")
    finally:
        client.close()


def ospf_neighbors(container: str) -> list[str]:
    code, out = sh(container, "vtysh -c 'show ip ospf neighbor'")
    return out.splitlines() if code == 0 else []


# -- containerlab's frr01, deployed in the background ----------------------------------------
#
# Both OSPF labs below (netlab's and frr01) spend most of their time waiting for OSPF on
# broadcast segments (the 40 s wait timer before a DR is elected). frr01's deploy is started
# when the netlab test starts, so that both waits run at the same time; the frr01 test then
# takes the finished deploy's output and checks it as if it had run the deploy itself.


@dataclass
class BackgroundDeploy:
    lab_id: str
    path: Path
    original: str  # the example's text before its image and name lines were changed
    process: subprocess.Popen
    out: Path
    err: Path

    def wait(self, timeout: float = 600) -> dict:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"deploy of {self.lab_id} not finished after {timeout:.0f} s: "
                                 f"{self.err.read_text()[-4000:]}") from None
        return deployed_ok(self.process.returncode, self.out.read_text(), self.err.read_text(), self.lab_id)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def frr01_deploying(server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundDeploy]:
    """containerlab's frr01 example (image and name lines changed), its deploy started now."""
    lab = f"clabx-{secrets.token_hex(2)}"
    folder = tmp_path_factory.mktemp("frr01")
    shutil.copytree(DATA / "frr01", folder / "frr01")
    path = folder / "frr01" / "frr01.clab.yml"
    original = path.read_text()
    path.write_text(with_local_images(original, lab))
    out, err = folder / "deploy.out", folder / "deploy.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen([str(BIN / "archetype"), "deploy", str(path), "--json"], env=server.env(),
                                   cwd=path.parent, stdout=stdout, stderr=stderr, start_new_session=True)
    started = BackgroundDeploy(lab, path, original, process, out, err)
    try:
        yield started
    finally:
        started.kill()  # the test did not get to wait for it
        if leftovers(lab):  # destroy is checked by the test; this is the safety net
            cli(server, "destroy", lab)


# -- netlab ---------------------------------------------------------------------------------

NETLAB_TOPOLOGY = """\
name: {lab}
provider: clab
defaults.device: frr
defaults.devices.frr.clab.image: archetype/frr:latest
module: [ospf]
nodes: [r1, r2, r3]
links:
- r1:
  r2:
  r3:
- r1-r2
- r2-r3
"""


def netlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "netlab"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_netlab_lan_segment_and_p2p_links_come_up_with_netlab_initial(
    server: PrefectServer, tmp_path: Path, frr01_deploying: BackgroundDeploy
) -> None:
    # frr01_deploying: frr01's deploy and OSPF wait run meanwhile (see there)
    lab = f"clabx-{secrets.token_hex(2)}"
    (tmp_path / "topology.yml").write_text(NETLAB_TOPOLOGY.format(lab=lab))
    created = netlab("create", cwd=tmp_path)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    clab = yaml.safe_load((tmp_path / "clab.yml").read_text())
    assert clab["prefix"] == "clab" and any(n.get("kind") == "bridge" for n in clab["topology"]["nodes"].values())
    try:
        deploy(server, tmp_path / "clab.yml", lab)
        initial = netlab("initial", cwd=tmp_path)  # docker exec clab-<lab>-<node> /etc/config/...
        assert initial.returncode == 0, initial.stdout[-3000:] + initial.stderr[-3000:]
        assert "Failed" not in initial.stdout, initial.stdout[-3000:]

        def lan_and_p2p_full() -> bool:
            lines = {r: ospf_neighbors(f"clab-{lab}-{r}") for r in ("r1", "r2", "r3")}
            lan = [line for node in lines.values() for line in node if " eth1:" in line]
            p2p = [line for node in lines.values() for line in node if re.search(r" eth[23]:", line)]
            roles = " ".join(lan)
            return (
                len(lan) == 6 and len(p2p) == 4 and all("Full/-" in line for line in p2p)
                and "Full/DR " in roles and "Full/Backup " in roles
                and all("Full/" in line or "2-Way/DROther" in line for line in lan)
            )

        assert wait_until(lan_and_p2p_full, 120, 2), {r: ospf_neighbors(f"clab-{lab}-{r}") for r in ("r1", "r2", "r3")}
        code, out = sh(f"clab-{lab}-r1", "ping -c 2 -W 2 -I 10.0.0.1 10.0.0.3")  # r1 -> r3 loopback, over OSPF routes
        assert code == 0, out
    finally:
        destroy(server, lab)


# -- containerlab's frr01, only the image lines changed ------------------------------------

def with_local_images(text: str, lab_id: str) -> str:
    """The example with its image lines pointing at this host's images (no registry here),
    and its name made unique to this run (so it never meets another run's lab)."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("image:"):
            image = LOCAL_IMAGES["frr"] if "frr" in stripped else LOCAL_IMAGES["host"]
            line = line[: line.index("image:")] + f"image: {image}"
        elif line.startswith("name:"):
            line = f"name: {lab_id}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_containerlab_frr01_example_deploys_and_routes(server: PrefectServer, frr01_deploying: BackgroundDeploy) -> None:
    lab, path, original = frr01_deploying.lab_id, frr01_deploying.path, frr01_deploying.original
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines(), strict=True) if a != b]
    assert all("image:" in a or a.startswith("name:") for a, _ in changed)
    try:
        frr01_deploying.wait()  # started by the fixture: `archetype deploy frr01.clab.yml --json`
        container = f"archetype-{lab}"  # no prefix line: our own names

        def ospf_full() -> bool:
            return all(sum("Full" in line for line in ospf_neighbors(f"{container}-{r}")) == 2
                       for r in ("router1", "router2", "router3"))

        assert wait_until(ospf_full, 120, 2), (
            ospf_neighbors(f"{container}-router1"), _container_log(f"{container}-router1"),
            sh(f"{container}-router1", "vtysh -c 'show running-config'")[1])
        for pc in ("192.168.12.2", "192.168.13.2"):  # PC1 to the other PCs, through the routers
            # (OSPF Full comes a little before the routes are installed on a loaded host)
            assert wait_until(lambda pc=pc: sh(f"{container}-PC1", f"ping -c 1 -W 2 {pc}")[0] == 0, 60, 2), (
                pc, sh(f"{container}-router1", "vtysh -c 'show ip route'")[1])
    finally:
        destroy(server, lab)


# -- a container and a VM on one bridge; the extended format and a host end -------------------

def test_bridge_segment_joins_containers_and_a_vm(server: PrefectServer, tmp_path: Path) -> None:
    lab = f"clabx-{secrets.token_hex(2)}"
    path = tmp_path / "lan.clab.yml"
    path.write_text(yaml.safe_dump({
        "name": lab,
        "topology": {
            "nodes": {
                "h1": {"kind": "linux", "exec": ["ip addr add 10.77.0.1/24 dev eth1"]},
                "h2": {"kind": "linux", "exec": ["ip addr add 10.77.0.2/24 dev eth1",
                                                  "sh -c 'mkdir -p /www && seq 1 2000 > /www/big && httpd -p 8080 -h /www'"]},
                "v1": {"kind": "mini-ios", "exec": ["configure terminal", "interface GigabitEthernet0/1",
                                                     "ip address 10.77.0.3 255.255.255.0", "no shutdown", "end"]},
                "lan": {"kind": "bridge"},
            },
            "links": [
                {"endpoints": ["h1:eth1", "lan:eth1"]},
                {"endpoints": ["h2:eth1", "lan:eth2"]},
                {"endpoints": ["v1:GigabitEthernet0/1", "lan:eth3"]},
            ],
        },
    }))
    try:
        deployed = deploy(server, path, lab)
        assert [link["endpoints"] for link in deployed["links"]] == [["h1:eth1", "h2:eth1", "v1:GigabitEthernet0/1"]]
        h1 = f"archetype-{lab}-h1"
        assert wait_until(lambda: sh(h1, "ping -c 1 -W 2 10.77.0.3")[0] == 0, 60, 2), sh(h1, "ping -c 1 10.77.0.3")
        code, out = sh(h1, "ping -c 2 -W 2 10.77.0.2")
        assert code == 0, out
        code, out = sh(h1, "wget -q -O - http://10.77.0.2:8080/big | wc -l")  # TCP across the segment
        assert code == 0 and out.strip() == "2000", out
    finally:
        destroy(server, lab)


def test_extended_links_host_end_prefix_and_stages(server: PrefectServer, tmp_path: Path) -> None:
    lab = f"clabx-{secrets.token_hex(2)}"
    host_if = f"cx{secrets.token_hex(3)}"
    path = tmp_path / "ext.clab.yml"
    path.write_text(yaml.safe_dump({
        "name": lab,
        "prefix": "",  # bare node names, as containerlab does
        "topology": {
            "nodes": {
                f"{lab}-a": {"kind": "linux", "restart-policy": "on-failure",
                             "exec": ["ip addr add 10.78.0.1/30 dev eth1", "ip addr add 10.78.1.1/30 dev eth2"]},
                f"{lab}-b": {"kind": "linux", "startup-delay": 1,
                             "stages": {"create": {"wait-for": [{"node": f"{lab}-a", "stage": "healthy"}]}},
                             "exec": ["ip addr add 10.78.0.2/30 dev eth1"]},
            },
            "links": [
                {"type": "veth", "endpoints": [{"node": f"{lab}-a", "interface": "eth1"},
                                               {"node": f"{lab}-b", "interface": "eth1"}]},
                {"endpoints": [f"{lab}-a:eth2", f"host:{host_if}"]},
            ],
        },
    }))
    try:
        deploy(server, path, lab)
        a, b = f"{lab}-a", f"{lab}-b"  # the bare names: prefix ""
        client = docker.from_env()
        try:
            info_a, info_b = client.api.inspect_container(a), client.api.inspect_container(b)
        finally:
            client.close()
        assert info_a["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
        assert info_b["Created"] > info_a["State"]["StartedAt"]  # b waited for a to be ready
        code, out = sh(a, "ping -c 2 -W 2 10.78.0.2")
        assert code == 0, out
        # The host end: a veth named as the topology says, in the host's namespace, marked ours.
        assert host_if in network_inventory()[lab]["veths"]
        subprocess.run(["ip", "addr", "add", "10.78.1.2/30", "dev", host_if], check=True)
        code, out = sh(a, "ping -c 2 -W 2 10.78.1.2")
        assert code == 0, out
    finally:
        destroy(server, lab)
    gone = subprocess.run(["ip", "link", "show", host_if], capture_output=True, text=True)
    assert gone.returncode != 0  # destroy removed the host interface too


def test_a_segment_keeps_its_vlan_when_one_of_its_nodes_leaves(server: PrefectServer, tmp_path: Path) -> None:
    lab = f"clabx-{secrets.token_hex(2)}"
    hosts = {f"h{i}": {"kind": "linux", "exec": [f"ip addr add 10.79.0.{i}/24 dev eth1"]} for i in (1, 2, 3)}

    def topology(members: list[str]) -> Path:
        path = tmp_path / "seg.clab.yml"
        path.write_text(yaml.safe_dump({"name": lab, "topology": {
            "nodes": {**{h: hosts[h] for h in members}, "sw": {"kind": "ovs-bridge"}},
            "links": [{"endpoints": [f"{h}:eth1", f"sw:p{i}"]} for i, h in enumerate(members)],
        }}))
        return path

    try:
        first = deploy(server, topology(["h1", "h2", "h3"]), lab)
        (vlan,) = {link["vlan"] for link in first["links"]}
        again = deploy(server, topology(["h1", "h2"]), lab)  # h3 leaves the segment and the lab
        assert [(link["endpoints"], link["vlan"]) for link in again["links"]] == [(["h1:eth1", "h2:eth1"], vlan)]
        tags = {ids.get("archetype-node"): tag for _name, tag, ids in ovs_port_rows() if ids.get("archetype-lab") == lab}
        assert tags == {"h1": vlan, "h2": vlan}
        code, out = sh(f"archetype-{lab}-h1", "ping -c 2 -W 2 10.79.0.2")
        assert code == 0, out
    finally:
        destroy(server, lab)


def test_a_node_waiting_for_a_failed_node_fails_too_and_the_deploy_ends(server: PrefectServer, tmp_path: Path) -> None:
    lab = f"clabx-{secrets.token_hex(2)}"
    path = tmp_path / "fail.clab.yml"
    path.write_text(yaml.safe_dump({"name": lab, "topology": {"nodes": {
        "a": {"kind": "linux", "image": "registry.invalid/clabx/none:1"},  # cannot be pulled here
        "b": {"kind": "linux", "stages": {"create": {"wait-for": [{"node": "a", "stage": "healthy"}]}}},
        "c": {"kind": "linux"},
    }}}))
    try:
        result = cli(server, "deploy", str(path), "--json", cwd=tmp_path)
        assert result.returncode == 1, result.stderr[-3000:]
        states = {n["name"]: n["state"] for n in json.loads(result.stdout)["nodes"]}
        assert states["c"] == "ready" and states["a"].startswith("failed") and states["b"].startswith("failed"), states
        assert "registry.invalid/clabx/none:1" in result.stdout
    finally:
        destroy(server, lab)
