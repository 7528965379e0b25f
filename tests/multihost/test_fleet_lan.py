"""A LAN segment spread over two simulated hosts: netlab's own output (`netlab create` of an
OSPF topology whose one LAN joins three FRR nodes) with `host:` added to its nodes, r1 on
sim-1, r2 and r3 on sim-2. The segment is one VXLAN tunnel between the two hosts, on each
host's local VLAN of the segment. OSPF comes up Full on the LAN, read from the devices.

Two `host:IF` ends are added to the same lab (cheaper than a lab of their own): one on r3's
own link (made on sim-2, where r3 runs), one on the LAN (made on the host of its first node,
sim-1), each reached by ping from the host it is on. The destroy leaves nothing of the lab
on either host: no container, OVS port, VXLAN device, host interface or workspace folder.

netlab's `prefix: clab` names the containers clab-<lab>-<node> on each host, as on one. Last,
the file deployed again with r1 on sim-2: the LAN is local there, and no tunnel of the lab
is left on either host (a redeploy's slices end with exactly the tunnels their part needs),
and r1 reaches the others over the LAN."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.multihost.conftest import HOSTS, Fleet, host_leftovers
from tests.reliability.faults import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]
NETLAB = Path(sys.executable).parent / "netlab"
PLACEMENT = {"r1": "sim-1", "r2": "sim-2", "r3": "sim-2"}
LAN = {"r1": "172.16.0.1/24", "r2": "172.16.0.2/24", "r3": "172.16.0.3/24"}  # netlab's addresses on the LAN

TOPOLOGY = """\
name: {lab}
provider: clab
defaults.device: frr
defaults.devices.frr.clab.image: archetype/frr:latest
module: [ospf]
nodes: [r1, r2, r3]
links: [r1-r2-r3]
"""


@pytest.fixture(scope="module")
def lan(fleet: Fleet, tmp_path_factory) -> dict:
    lab = f"mhl-{secrets.token_hex(2)}"
    folder = tmp_path_factory.mktemp("lan")
    (folder / "topology.yml").write_text(TOPOLOGY.format(lab=lab))
    created = subprocess.run([str(NETLAB), "create"], cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    clab = yaml.safe_load((folder / "clab.yml").read_text())
    segments = [name for name, node in clab["topology"]["nodes"].items() if node.get("kind") == "bridge"]
    assert len(segments) == 1 and len(clab["topology"]["links"]) == 3, clab  # netlab made the LAN a bridge
    for node, host in PLACEMENT.items():
        clab["topology"]["nodes"][node]["host"] = host
    ends = {"own": f"lo{secrets.token_hex(3)}", "lan": f"ls{secrets.token_hex(3)}"}
    clab["topology"]["links"] += [{"endpoints": ["r3:eth2", f"host:{ends['own']}"]},
                                  {"endpoints": [f"host:{ends['lan']}", f"{segments[0]}:host1"]}]
    (folder / "clab.yml").write_text(yaml.safe_dump(clab, sort_keys=False))
    code, deployed, err = fleet.cli_json("deploy", str(folder / "clab.yml"))
    document = {"lab": lab, "code": code, "deployed": deployed, "err": err, "ends": ends, "folder": folder}
    try:
        yield document
    finally:
        code, destroyed, err = fleet.cli_json("destroy", lab)
        document["destroyed"] = (code, destroyed, err)
        left = {host: host_leftovers(fleet, host, lab) for host in HOSTS}
        interfaces = {host: [i for i in ends.values() if fleet.on(host, "ip", "link", "show", i).returncode == 0]
                      for host in HOSTS}
        assert code == 0, err
        assert left == {h: {} for h in HOSTS} and interfaces == {h: [] for h in HOSTS}, (left, interfaces)


def in_node(fleet: Fleet, host: str, lab: str, node: str, *argv: str) -> tuple[int, str]:
    """A command in a node's container, named as netlab's `prefix: clab` names it on one host."""
    return fleet.docker_exec(host, lab, node, *argv, prefix="clab")


def configure(fleet: Fleet, lab: str, node: str) -> None:
    """What `netlab initial` runs in each container (its bound scripts), through `archetype exec`."""
    for argv in (["bash", "/etc/config/01-initial.sh"], ["vtysh", "-f", "/etc/config/02-ospf.sh"]):
        result = fleet.cli("exec", lab, node, "--", *argv, timeout=300)
        assert result.returncode == 0, f"{node} {argv}: {result.stdout[-1500:]}{result.stderr[-1500:]}"


def ospf_neighbors(fleet: Fleet, lab: str, node: str, placement: dict[str, str] = PLACEMENT) -> dict[str, str]:
    code, out = in_node(fleet, placement[node], lab, node, "vtysh", "-c", "show ip ospf neighbor json")
    if code != 0:
        return {}
    try:
        document = json.loads(out)
    except json.JSONDecodeError:
        return {}
    return {router: entry[0].get("nbrState", "") for router, entry in document.get("neighbors", {}).items() if entry}


def test_the_lan_spans_both_hosts_and_ospf_is_full_on_it(fleet: Fleet, lan: dict) -> None:
    lab = lan["lab"]
    assert lan["code"] == 0, lan["err"][-3000:]
    assert {n["name"]: n["host"] for n in lan["deployed"]["nodes"]} == PLACEMENT
    (segment,) = [link for link in lan["deployed"]["links"] if len(link["endpoints"]) > 2]
    assert set(segment.get("vnis", {})) == {"sim-1+sim-2"} and not segment.get("vni"), segment
    for host in HOSTS:  # one tunnel per segment and other host, on the segment's VLAN there
        vxlans = fleet.on(host, "ip", "-d", "-o", "link", "show", "type", "vxlan").stdout.splitlines()
        ours = [line for line in vxlans if f"lab={lab} " in line]
        assert len(ours) == 1 and f"vxlan id {segment['vnis']['sim-1+sim-2']} " in ours[0], ours
        device = ours[0].split(":")[1].strip().split("@")[0]
        tag = fleet.on(host, "ovs-vsctl", "get", "Port", device, "tag").stdout.strip()
        assert tag == str(segment["vlans"][host]), (host, tag, segment)
    for host in HOSTS:  # netlab's `prefix: clab` names the containers on each host as on one
        names = fleet.on(host, "docker", "ps", "--filter", f"label=archetype.lab_id={lab}", "--format", "{{.Names}}")
        assert sorted(names.stdout.split()) == [f"clab-{lab}-{n}" for n, h in sorted(PLACEMENT.items()) if h == host]
    for node in PLACEMENT:
        configure(fleet, lab, node)
    ospf_full_and_r1_reaches_r3(fleet, lab, PLACEMENT)


def ospf_full_and_r1_reaches_r3(fleet: Fleet, lab: str, placement: dict[str, str], timeout: float = 150) -> None:
    def full_on_the_lan() -> bool:
        seen = {node: ospf_neighbors(fleet, lab, node, placement) for node in placement}
        return all(len(n) == 2 and all(s.startswith("Full/") for s in n.values()) for n in seen.values())

    assert wait_until(full_on_the_lan, timeout, 2), {  # what each device says, as it says it
        node: in_node(fleet, host, lab, node, "vtysh", "-c", "show ip ospf neighbor", "-c", "show daemons")[1]
        for node, host in placement.items()}
    # Full is the databases in sync: the routes follow from the SPF run after it
    def routed() -> bool:
        out = in_node(fleet, placement["r1"], lab, "r1", "vtysh", "-c", "show ip route 10.0.0.3/32 json")[1]
        return '"protocol":"ospf"' in out.replace(" ", "")

    assert wait_until(routed, 30, 1), in_node(fleet, placement["r1"], lab, "r1", "vtysh", "-c", "show ip route")[1]
    # r1 to r3's loopback, over the routes OSPF learnt on the LAN (after a redeploy, r3 answers
    # once its ARP entry for r1, a new container with a new MAC, is probed again: seconds)
    ping = ("ping", "-c", "1", "-W", "2", "-I", "10.0.0.1", "10.0.0.3")
    assert wait_until(lambda: in_node(fleet, placement["r1"], lab, "r1", *ping)[0] == 0, 45, 1), \
        in_node(fleet, placement["r1"], lab, "r1", *ping)[1]


def test_host_ends_are_made_where_their_node_runs(fleet: Fleet, lan: dict) -> None:
    lab, ends = lan["lab"], lan["ends"]
    assert lan["code"] == 0, lan["err"][-3000:]
    where = {name: [h for h in HOSTS if fleet.on(h, "ip", "link", "show", name).returncode == 0]
             for name in ends.values()}
    assert where == {ends["own"]: ["sim-2"], ends["lan"]: ["sim-1"]}, where
    # r3's own link: its host end on sim-2, beside r3 (pinged from r3: the hosts have no ping)
    assert in_node(fleet, "sim-2", lab, "r3", "ip", "addr", "add", "10.213.77.2/30", "dev", "eth2")[0] == 0
    assert fleet.on("sim-2", "ip", "addr", "add", "10.213.77.1/30", "dev", ends["own"]).returncode == 0
    code, out = in_node(fleet, "sim-2", lab, "r3", "ping", "-c", "2", "-W", "3", "10.213.77.1")
    assert code == 0, out
    # the LAN's host end on sim-1 is reached from r3 on sim-2 through the segment's tunnel
    # netlab's address for r3 on the LAN, set again: this test may run alone
    assert in_node(fleet, "sim-2", lab, "r3", "ip", "addr", "replace", LAN["r3"], "dev", "eth1")[0] == 0
    assert fleet.on("sim-1", "ip", "addr", "add", "172.16.0.200/24", "dev", ends["lan"]).returncode == 0
    reached = wait_until(lambda: in_node(fleet, "sim-2", lab, "r3", "ping", "-c", "1", "-W", "2",
                                                   "172.16.0.200")[0] == 0, 30, 1)
    assert reached, in_node(fleet, "sim-2", lab, "r3", "ip", "-br", "addr")[1]


def carrier(fleet: Fleet, lab: str, node: str) -> str:
    code, out = in_node(fleet, PLACEMENT[node], lab, node, "cat", "/sys/class/net/eth1/carrier")
    return out.strip() if code == 0 else f"error: {out}"


def test_link_controls_on_the_lan_across_hosts(fleet: Fleet, lan: dict) -> None:
    """A LAN has no two ends to put an impairment relay between: refused by name (exit 2).
    Its state applies on every host; a member that stops takes nobody's carrier (a switch)."""
    lab = lan["lab"]
    assert lan["code"] == 0, lan["err"][-3000:]
    impaired = fleet.cli("link", lab, "r1:eth1", "--delay", "50")
    assert impaired.returncode == 2 and "LAN segment" in impaired.stderr, impaired.stderr[-2000:]
    stopped = fleet.cli("node", "stop", lab, "r3")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert (carrier(fleet, lab, "r1"), carrier(fleet, lab, "r2")) == ("1", "1")
    started = fleet.cli("node", "start", lab, "r3")
    assert started.returncode == 0, started.stderr[-2000:]
    down = fleet.cli("link", lab, "r1:eth1", "--state", "down")
    assert down.returncode == 0, down.stderr[-2000:]
    assert [carrier(fleet, lab, node) for node in PLACEMENT] == ["0", "0", "0"]
    up = fleet.cli("link", lab, "r2:eth1", "--state", "up")
    assert up.returncode == 0, up.stderr[-2000:]
    assert [carrier(fleet, lab, node) for node in PLACEMENT] == ["1", "1", "1"]


def test_a_redeploy_that_makes_the_lan_local_leaves_no_tunnel(fleet: Fleet, lan: dict) -> None:
    """The same file deployed again with r1 moved to sim-2: the LAN is all on sim-2 now. Its
    tunnel goes on both hosts (sim-2 keeps its part of the lab, sim-1 loses all of it), and
    r1 on its new host reaches r2 and r3 over the LAN."""
    lab, folder = lan["lab"], lan["folder"]
    assert lan["code"] == 0, lan["err"][-3000:]
    clab = yaml.safe_load((folder / "clab.yml").read_text())
    clab["topology"]["nodes"]["r1"]["host"] = "sim-2"
    (folder / "clab.yml").write_text(yaml.safe_dump(clab, sort_keys=False))
    started = time.monotonic()
    code, deployed, err = fleet.cli_json("deploy", str(folder / "clab.yml"))
    print(f"\n[figures] redeploy with r1 moved to sim-2: {time.monotonic() - started:.1f} s")
    assert code == 0, err[-3000:]
    placement = {n["name"]: n["host"] for n in deployed["nodes"]}
    assert placement == {"r1": "sim-2", "r2": "sim-2", "r3": "sim-2"}, placement
    assert not [link for link in deployed["links"] if link.get("vni") or link.get("vnis")], deployed["links"]
    tunnels = {host: host_leftovers(fleet, host, lab).get("vxlan-devices", []) for host in HOSTS}
    ports = {host: [p for p in host_leftovers(fleet, host, lab).get("ovs-ports", []) if p.startswith("arx")]
             for host in HOSTS}
    assert tunnels == {h: [] for h in HOSTS} and ports == {h: [] for h in HOSTS}, (tunnels, ports)
    assert host_leftovers(fleet, "sim-1", lab) == {}  # the lab has nothing there any more
    # the LAN carries r1's traffic to r2 and r3 on sim-2 alone: r1 is a new container (and r3
    # lost its runtime config if the controls test restarted it), so their LAN addresses
    # (netlab's) are set again. OSPF Full again took 47 s (a new router waits out its wait timer,
    # the 40 s dead interval, most likely): ping proves the LAN at a fraction of that
    for node in ("r1", "r3"):
        assert in_node(fleet, "sim-2", lab, node, "ip", "addr", "replace", LAN[node], "dev", "eth1")[0] == 0
    started = time.monotonic()
    for peer in ("r2", "r3"):
        ping = ("ping", "-c", "1", "-W", "2", LAN[peer].split("/")[0])
        assert wait_until(lambda ping=ping: in_node(fleet, "sim-2", lab, "r1", *ping)[0] == 0, 30, 1), \
            in_node(fleet, "sim-2", lab, "r1", *ping)[1]
    print(f"[figures] r1 reaches r2 and r3 on the LAN after the redeploy: {time.monotonic() - started:.1f} s")
