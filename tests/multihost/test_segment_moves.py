"""A container on a LAN segment spread over the simulated hosts moves cold (issue 26): r1 and
r2 on sim-1, r3 on sim-2, one LAN joining the three (one tunnel between the hosts).

r3 moves to sim-1: sim-2 leaves the segment, so the tunnel goes on both hosts and the lab has
nothing left on sim-2. r3 moves back: the two hosts are joined again by a new tunnel. After
each move the LAN carries traffic between all three, r3 kept what it was configured with at
run time, and its address on the LAN answers from the same MAC."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import yaml

from tests.multihost.conftest import Fleet, deployed, host_leftovers
from tests.reliability.faults import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]
ADDRESSES = {"r1": "10.78.0.1", "r2": "10.78.0.2", "r3": "10.78.0.3"}


@pytest.fixture(scope="module")
def lab(fleet: Fleet, tmp_path_factory) -> Iterator[str]:
    lab_id = f"sgm-{secrets.token_hex(2)}"
    nodes = {name: {"kind": "frr", "host": "sim-2" if name == "r3" else "sim-1",
                    "startup-config": f"hostname {name}\ninterface eth1\n ip address {address}/24\n"}
             for name, address in ADDRESSES.items()}
    path = tmp_path_factory.mktemp("lan") / f"{lab_id}.yml"
    path.write_text(yaml.safe_dump({"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {**nodes, "lan": {"kind": "bridge"}},
        "links": [{"endpoints": [f"{name}:eth1", f"lan:eth{i}"]} for i, name in enumerate(ADDRESSES, 1)],
    }}, sort_keys=False))
    with deployed(fleet, path) as lab_id:
        yield lab_id


def lan_works(fleet: Fleet, lab: str, where: dict[str, str]) -> bool:
    """Every node pings the two others on the LAN."""
    return all(fleet.docker_exec(where[node], lab, node, "ping", "-c", "1", "-W", "2", ADDRESSES[other])[0] == 0
               for node in ADDRESSES for other in ADDRESSES if other != node)


def tunnels(fleet: Fleet, host: str, lab: str) -> list[str]:
    return host_leftovers(fleet, host, lab).get("vxlan-devices", [])


def move(fleet: Fleet, lab: str, node: str, to: str) -> dict:
    code, moved, err = fleet.cli_json("migrate", lab, node, "--to", to)
    assert code == 0, err[-4000:]
    assert (moved["mode"], moved["to"]) == ("cold", to)
    print(f"\n[figures] {node} on the LAN moved cold to {to}: {moved['seconds']} s, down {moved['downtime_seconds']} s; "
          f"steps {moved['timings']}")
    return moved


def test_a_lan_member_moves_away_and_back_and_the_lan_follows(fleet: Fleet, lab: str) -> None:
    where = {"r1": "sim-1", "r2": "sim-1", "r3": "sim-2"}
    assert wait_until(lambda: lan_works(fleet, lab, where), 60, 2)
    assert len(tunnels(fleet, "sim-1", lab)) == len(tunnels(fleet, "sim-2", lab)) == 1
    # set at run time, never saved: the move carries the running config
    assert fleet.docker_exec("sim-2", lab, "r3", "vtysh", "-c", "configure terminal", "-c", "ip route 10.9.9.0/24 Null0")[0] == 0
    mac = fleet.docker_exec("sim-2", lab, "r3", "cat", "/sys/class/net/eth1/address")[1].strip()

    move(fleet, lab, "r3", "sim-1")  # sim-2 leaves the LAN, and the lab
    where["r3"] = "sim-1"
    assert host_leftovers(fleet, "sim-2", lab) == {}
    assert tunnels(fleet, "sim-1", lab) == []  # the LAN is on one host now
    assert wait_until(lambda: lan_works(fleet, lab, where), 30, 1)
    assert "ip route 10.9.9.0/24 Null0" in fleet.docker_exec("sim-1", lab, "r3", "vtysh", "-c", "show running-config")[1]
    assert fleet.docker_exec("sim-1", lab, "r3", "cat", "/sys/class/net/eth1/address")[1].strip() == mac

    move(fleet, lab, "r3", "sim-2")  # joined again: a new tunnel, on both hosts
    where["r3"] = "sim-2"
    assert len(tunnels(fleet, "sim-1", lab)) == len(tunnels(fleet, "sim-2", lab)) == 1
    assert wait_until(lambda: lan_works(fleet, lab, where), 30, 1)
    code, document, err = fleet.cli_json("status", lab)
    assert code == 0, err[-2000:]
    assert {n["name"]: n["host"] for n in document["labs"][0]["nodes"]} == where
