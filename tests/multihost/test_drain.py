"""Draining a host (issue 26), this module's lab only (`--lab`: other labs on the shared
fleet stay where they are): a lab with a VM and two FRR nodes on sim-1, linked to FRR r3
on sim-2. `hosts drain sim-1` moves r1, r2 cold and v1 live to sim-2 (each move a child run
of the drain); BGP comes back; v1 kept a line that lived only in its memory; `hosts` shows
sim-1 drained and placement skips it until `hosts undrain`. A drain that cannot place a
node says which and why, and moves nothing.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.multihost.conftest import COORDINATOR_HOME, HOSTS, REPO, Fleet, host_leftovers
from tests.multihost.test_fleet_plan import OUR_ROUTES, ssh_banner
from tests.multihost.test_migrate import console
from tests.support.prefect_server import ARCHETYPE

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs]


def frr(name: str, asn: int, interfaces: dict[str, str], neighbors: dict[str, int]) -> str:
    lines = [f"hostname {name}"]
    for interface, address in interfaces.items():
        lines += [f"interface {interface}", f" ip address {address}"]
    lines += [f"router bgp {asn}", " no bgp ebgp-requires-policy"]
    for peer, peer_asn in neighbors.items():
        lines += [f" neighbor {peer} remote-as {peer_asn}", f" neighbor {peer} timers connect 5"]
    return "\n".join(lines) + "\n"


R1 = frr("r1", 65001, {"eth1": "10.5.13.1/24", "eth2": "10.5.11.1/24"}, {"10.5.13.3": 65003})
R2 = frr("r2", 65002, {"eth1": "10.5.23.2/24"}, {"10.5.23.3": 65003})
R3 = frr("r3", 65003, {"eth1": "10.5.13.3/24", "eth2": "10.5.23.3/24"}, {"10.5.13.1": 65001, "10.5.23.2": 65002})
V1_EXEC = ["configure terminal", "interface GigabitEthernet0/1", "ip address 10.5.11.3 255.255.255.0",
           "no shutdown", "end"]


def write(folder: Path, document: dict) -> str:
    path = folder / f"{document['name']}.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def lab(fleet: Fleet, tmp_path_factory) -> Iterator[str]:
    lab_id = f"dr-{secrets.token_hex(3)}"
    document = {"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {
            "r1": {"kind": "frr", "host": "sim-1", "startup-config": R1},
            "r2": {"kind": "frr", "host": "sim-1", "startup-config": R2},
            "v1": {"kind": "mini-ios", "host": "sim-1", "exec": V1_EXEC},
            "r3": {"kind": "frr", "host": "sim-2", "startup-config": R3},
        },
        "links": [{"endpoints": ["r1:eth1", "r3:eth1"]}, {"endpoints": ["r2:eth1", "r3:eth2"]},
                  {"endpoints": ["r1:eth2", "v1:GigabitEthernet0/1"]}]}}
    code, _, err = fleet.cli_json("deploy", write(tmp_path_factory.mktemp("lab"), document))
    try:
        assert code == 0, err[-4000:]
        yield lab_id
    finally:
        fleet.cli("hosts", "undrain", "sim-1")
        fleet.cli("hosts", "undrain", "sim-2")
        fleet.cli("destroy", lab_id)
        assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}


def bgp_established(fleet: Fleet, lab_id: str, r3_host: str = "sim-2") -> set[str]:
    """r3's neighbors whose session is Established."""
    code, out = fleet.docker_exec(r3_host, lab_id, "r3", "vtysh", "-c", "show bgp summary")
    # State/PfxRcd (third from the end) is a prefix count only once Established
    return {line.split()[0] for line in out.splitlines()
            if code == 0 and line.startswith("10.5.") and line.split()[-3].isdigit()}


def wait_bgp_on(fleet: Fleet, lab_id: str, r3_host: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (up := bgp_established(fleet, lab_id, r3_host)) != {"10.5.13.1", "10.5.23.2"} and time.monotonic() < deadline:
        time.sleep(3)
    assert up == {"10.5.13.1", "10.5.23.2"}, up


def wait_bgp(fleet: Fleet, lab_id: str, timeout: float) -> None:
    wait_bgp_on(fleet, lab_id, "sim-2", timeout)


def mgmt_address(fleet: Fleet, lab_id: str, node: str, host: str = "sim-2") -> str:
    code, out = fleet.docker_exec(host, lab_id, node, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert code == 0 and "inet " in out, out
    return out.split("inet ")[1].split("/")[0]


def routed_from_here(fleet: Fleet, lab_id: str, nodes: list[str], host: str) -> None:
    """The coordinator's routes followed the nodes to ``host``: their management addresses
    are routed via its address and answer (SSH) from this machine; no lab host holds one of
    those routes (they are the coordinator's)."""
    via = fleet.hosts()[host]["address"]
    for node in nodes:
        address = mgmt_address(fleet, lab_id, node, host)
        route = subprocess.run(["ip", "-4", "route", "get", address], capture_output=True, text=True, check=False)
        assert f"via {via} " in route.stdout, (node, address, route.stdout, route.stderr)
        assert ssh_banner(address).startswith("SSH-2.0"), (node, address, route.stdout)
    on_hosts = {h: fleet.on(h, "ip", "-4", "route", "show", "proto", OUR_ROUTES).stdout.split() for h in HOSTS}
    assert on_hosts == {h: [] for h in HOSTS}, on_hosts


def hosts_of(fleet: Fleet, lab_id: str) -> dict[str, str]:
    code, document, err = fleet.cli_json("status", lab_id)
    assert code == 0, err
    return {n["name"]: n["host"] for n in document["labs"][0]["nodes"]}


def test_draining_a_host_moves_every_node_and_keeps_the_lab_running(fleet: Fleet, lab: str) -> None:
    wait_bgp(fleet, lab, 120)
    console(fleet, "sim-1", lab, "configure terminal", "hostname DRMARK", "end")  # never saved

    code, drained, err = fleet.cli_json("hosts", "drain", "sim-1", "--lab", lab, timeout=1200)
    assert code == 0, err[-4000:]
    moves = {m["node"]: m for m in drained["moves"]}
    for node, move in sorted(moves.items()):
        print(f"\n[figures] drain sim-1: {node} moved {move['mode']} to {move['to']} in {move['seconds']} s, "
              f"down {move['downtime_seconds']} s" + (f" (migration {move.get('migration_seconds')} s)"
                                                     if move["mode"] == "live" else ""))
    print(f"[figures] drain sim-1: {drained['seconds']} s in all")
    assert {n: (m["mode"], m["to"]) for n, m in moves.items()} == {
        "v1": ("live", "sim-2"), "r1": ("cold", "sim-2"), "r2": ("cold", "sim-2")}
    assert hosts_of(fleet, lab) == {"r1": "sim-2", "r2": "sim-2", "r3": "sim-2", "v1": "sim-2"}
    assert host_leftovers(fleet, "sim-1", lab) == {}
    wait_bgp(fleet, lab, 180)
    assert "hostname DRMARK" in console(fleet, "sim-2", lab, "show running-config")[0]  # live: not rebooted
    assert fleet.hosts()["sim-1"]["drained"] is True
    routed_from_here(fleet, lab, ["r1", "r2"], "sim-2")


def test_a_drain_that_cannot_place_a_node_moves_nothing(fleet: Fleet, lab: str) -> None:
    # sim-1 is drained: the nodes on sim-2 have nowhere to go
    code, _, err = fleet.cli_json("hosts", "drain", "sim-2", "--lab", lab)
    assert code == 1, err[-3000:]
    assert "cannot drain sim-2, nothing was moved" in err and "node v1: no other host can run it" in err, err
    assert "host sim-1 is drained" in err, err
    assert fleet.hosts()["sim-2"]["drained"] is False
    assert set(hosts_of(fleet, lab).values()) == {"sim-2"}


def test_undrain_lets_placement_use_the_host_again(fleet: Fleet, lab: str, tmp_path: Path) -> None:
    small = {"name": f"{lab}-u", "topology": {"nodes": {"h1": {"kind": "linux", "image": "archetype/linux:latest",
                                                               "host": "sim-1"}}}}
    path = write(tmp_path, small)
    code, _, err = fleet.cli_json("deploy", path)
    assert code == 2 and "host sim-1 is drained" in err, err[-3000:]
    code, _, err = fleet.cli_json("hosts", "undrain", "sim-1")
    assert code == 0, err
    assert fleet.hosts()["sim-1"]["drained"] is False
    code, deployed, err = fleet.cli_json("deploy", path)
    try:
        assert code == 0, err[-3000:]
        assert [n["host"] for n in deployed["nodes"]] == ["sim-1"]
    finally:
        fleet.cli("destroy", small["name"])


WATCH_STEP = """
import sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
name = sys.argv[1]
with get_client(sync_client=True) as client:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
        if any(r.state and r.state.is_running() for r in runs):
            print("running", flush=True)
            sys.exit(0)
        time.sleep(0.5)
sys.exit(1)
"""


def test_a_drain_killed_halfway_is_finished_by_the_next(fleet: Fleet, lab: str) -> None:
    """Everything on sim-2 now (sim-1 undrained): drain sim-2, killed during its first cold
    move; every node is on a host the lab's status names; the next drain finishes that move
    and moves the rest, and the lab runs (v1 was moved live twice: its line is still there)."""
    env = {**os.environ, **fleet.env, "PYTHONPATH": str(REPO)}
    watcher = subprocess.Popen([sys.executable, "-c", WATCH_STEP, f"migrate-stage/{lab}/sim-1"], env=env,
                               stdout=subprocess.PIPE, text=True)
    drain = subprocess.Popen([ARCHETYPE, "hosts", "drain", "sim-2", "--lab", lab, "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**env, "PREFECT_HOME": str(COORDINATOR_HOME)})
    try:
        out, _ = watcher.communicate(timeout=900)
        assert "running" in out
        time.sleep(2)  # the cold move is under way on the hosts: its node made ready there, or switching
    finally:
        drain.kill()
        drain.communicate(timeout=60)
    # the hosts' steps of the move under way go on without the drain: each node runs on one
    # host, which `status` names
    deadline = time.monotonic() + 180
    while set(placed := hosts_of(fleet, lab)) != {"r1", "r2", "r3", "v1"} and time.monotonic() < deadline:
        time.sleep(3)
    assert set(placed) == {"r1", "r2", "r3", "v1"} and set(placed.values()) <= {"sim-1", "sim-2"}, placed
    print(f"\n[figures] after the drain was killed: {placed}")
    assert fleet.hosts()["sim-2"]["drained"] is True

    code, drained, err = fleet.cli_json("hosts", "drain", "sim-2", "--lab", lab, timeout=1200)
    assert code == 0, err[-4000:]
    print(f"\n[figures] the second drain of sim-2 moved {[m['node'] for m in drained['moves']]} "
          f"in {drained['seconds']} s")
    assert hosts_of(fleet, lab) == {"r1": "sim-1", "r2": "sim-1", "r3": "sim-1", "v1": "sim-1"}
    assert host_leftovers(fleet, "sim-2", lab) == {}
    wait_bgp_on(fleet, lab, "sim-1", 180)
    assert "hostname DRMARK" in console(fleet, "sim-1", lab, "show running-config")[0]
    routed_from_here(fleet, lab, ["r1", "r2", "r3"], "sim-1")  # r1 too, moved by the drain that was killed
