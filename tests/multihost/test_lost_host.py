"""A lost host (issue 26): FRR r1 and r2 on sim-1, linked to r3 on sim-2 (BGP). r1 gets a
line typed on its vtysh, saved with `archetype configs`. sim-1 dies (`sim-fleet.sh
host-stop`: worker killed, nodes and daemons stopped): `hosts` shows it lost, `status` its
nodes lost. A deploy of the lab's own file brings r1 and r2 up on sim-2, r1 from its saved
config, and BGP comes back. sim-1 comes back (`host-start`): its worker removes its stale
copies before it serves, and nothing of the lab runs twice. Then the same with `archetype
hosts evacuate sim-1` in place of the deploy.

It stops a fleet host: run it alone on the fleet (`flock -x /tmp/fleet.lock`). The fleet is
left up whatever happens (sim-1 started again, alive). The "set time" is lowered for the
CLI's commands (ARCHETYPE_HOST_LOST_SECONDS, 2x the hosts' 15 s publication interval).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multihost.conftest import HOSTS, Fleet, host_leftovers
from tests.multihost.test_drain import R1, R2, R3, bgp_established, write

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

LOST = {"ARCHETYPE_HOST_LOST_SECONDS": "30"}
MARK = "ip prefix-list LOSTMARK seq 5 permit 10.99.0.0/16"


def hosts(fleet: Fleet) -> dict[str, dict]:
    code, document, err = fleet.cli_json("hosts", extra_env=LOST)
    assert code == 0, err
    return {h["name"]: h for h in document["hosts"]}


def wait_host(fleet: Fleet, host: str, key: str, timeout: float) -> float:
    started = time.monotonic()
    while not hosts(fleet)[host][key]:
        assert time.monotonic() - started < timeout, f"{host} not {key} after {timeout:.0f} s: {hosts(fleet)[host]}"
        time.sleep(2)
    return time.monotonic() - started


def nodes_of(fleet: Fleet, lab_id: str) -> list[tuple[str, str, str]]:
    code, document, err = fleet.cli_json("status", lab_id, extra_env=LOST)
    assert code == 0, err
    return sorted((n["name"], n["host"], n["state"]) for n in document["labs"][0]["nodes"])


def wait_bgp(fleet: Fleet, lab_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (up := bgp_established(fleet, lab_id)) != {"10.5.13.1", "10.5.23.2"} and time.monotonic() < deadline:
        time.sleep(2)
    assert up == {"10.5.13.1", "10.5.23.2"}, up


@pytest.fixture(scope="module")
def lab(fleet: Fleet, tmp_path_factory) -> Iterator[tuple[str, str]]:
    lab_id = f"lost-{secrets.token_hex(3)}"
    document = {"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {"r1": {"kind": "frr", "host": "sim-1", "startup-config": R1},
                  "r2": {"kind": "frr", "host": "sim-1", "startup-config": R2},
                  "r3": {"kind": "frr", "host": "sim-2", "startup-config": R3}},
        "links": [{"endpoints": ["r1:eth1", "r3:eth1"]}, {"endpoints": ["r2:eth1", "r3:eth2"]}]}}
    path = write(tmp_path_factory.mktemp("lab"), document)
    code, _, err = fleet.cli_json("deploy", path)
    try:
        assert code == 0, err[-4000:]
        yield lab_id, path
    finally:
        started = fleet.sim("host-start", "sim-1")  # idempotent: the fleet stays up, also on failure
        assert started.returncode == 0, started.stderr[-2000:]
        fleet.wait_alive("sim-1")
        fleet.cli("destroy", lab_id)
        assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}


def test_a_lost_hosts_nodes_come_up_elsewhere_and_its_copies_go_when_it_is_back(fleet: Fleet, lab) -> None:
    lab_id, path = lab
    wait_bgp(fleet, lab_id, 120)
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "vtysh", "-c", "configure terminal", "-c", MARK)
    assert code == 0, out
    code, saved, err = fleet.cli_json("configs", lab_id)
    assert code == 0, err[-3000:]
    assert MARK in Path(saved["configs"]["r1"]["path"]).read_text()
    code, _, err = fleet.cli_json("hosts", "evacuate", "sim-1", extra_env=LOST)
    assert code == 1 and "host sim-1 is not lost" in err, err[-2000:]

    stopped = fleet.sim("host-stop", "sim-1")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    print(f"\n[figures] sim-1 lost {wait_host(fleet, 'sim-1', 'lost', 60):.0f} s after it stopped")
    assert hosts(fleet)["sim-1"]["alive"] is False
    assert nodes_of(fleet, lab_id) == [("r1", "sim-1", "lost"), ("r2", "sim-1", "lost"), ("r3", "sim-2", "running")]

    started = time.monotonic()
    code, deployed, err = fleet.cli_json("deploy", path, extra_env=LOST)
    assert code == 0, err[-4000:]
    print(f"[figures] deploy with sim-1 lost: {time.monotonic() - started:.1f} s")
    assert {n["name"]: n["host"] for n in deployed["nodes"]} == {"r1": "sim-2", "r2": "sim-2", "r3": "sim-2"}
    wait_bgp(fleet, lab_id, 120)
    code, out = fleet.docker_exec("sim-2", lab_id, "r1", "vtysh", "-c", "show running-config")
    assert MARK in out, out  # from its saved config, not the topology's
    assert nodes_of(fleet, lab_id) == [("r1", "sim-2", "running"), ("r2", "sim-2", "running"), ("r3", "sim-2", "running")]
    vxlans = fleet.on("sim-2", "ip", "-d", "-o", "link", "show", "type", "vxlan").stdout
    assert f"lab={lab_id} " not in vxlans  # its links are local now: no tunnel left

    back = fleet.sim("host-start", "sim-1")
    assert back.returncode == 0, back.stderr[-2000:]
    print(f"[figures] sim-1 alive {wait_host(fleet, 'sim-1', 'alive', 120):.0f} s after its daemons were up")
    # its worker removed its copies before it published itself alive
    assert host_leftovers(fleet, "sim-1", lab_id) == {}
    assert nodes_of(fleet, lab_id) == [("r1", "sim-2", "running"), ("r2", "sim-2", "running"), ("r3", "sim-2", "running")]
    wait_bgp(fleet, lab_id, 60)


def test_evacuate_brings_a_lost_hosts_nodes_up_elsewhere(fleet: Fleet, lab) -> None:
    """The same with `hosts evacuate` (each lab with nodes there, from its placed topology):
    the lab's file first puts r1 and r2 back on sim-1 (alive again), then sim-1 dies."""
    lab_id, path = lab
    code, deployed, err = fleet.cli_json("deploy", path, extra_env=LOST)
    assert code == 0, err[-4000:]
    assert {n["name"]: n["host"] for n in deployed["nodes"]} == {"r1": "sim-1", "r2": "sim-1", "r3": "sim-2"}
    stopped = fleet.sim("host-stop", "sim-1")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    wait_host(fleet, "sim-1", "lost", 60)

    code, evacuated, err = fleet.cli_json("hosts", "evacuate", "sim-1", extra_env=LOST)
    assert code == 0, err[-4000:]
    print(f"\n[figures] evacuate sim-1: {evacuated['seconds']} s")
    assert {(m["lab_id"], m["node"], m["to"]) for m in evacuated["moves"]} >= {
        (lab_id, "r1", "sim-2"), (lab_id, "r2", "sim-2")}
    wait_bgp(fleet, lab_id, 120)
    code, out = fleet.docker_exec("sim-2", lab_id, "r1", "vtysh", "-c", "show running-config")
    assert MARK in out, out

    back = fleet.sim("host-start", "sim-1")
    assert back.returncode == 0, back.stderr[-2000:]
    wait_host(fleet, "sim-1", "alive", 120)
    assert host_leftovers(fleet, "sim-1", lab_id) == {}
    assert nodes_of(fleet, lab_id) == [("r1", "sim-2", "running"), ("r2", "sim-2", "running"), ("r3", "sim-2", "running")]
