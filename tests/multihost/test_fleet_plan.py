"""One plan per lab over the fleet (issue 26): two labs deployed AT ONCE, each split over
sim-1 and sim-2 (FRR r1 on sim-1; r2, r3 on sim-2; r1 linked to both, so two tunnels each).

- VNIs: allocated under the fleet's lease (lowest free ones), so the labs' VNIs are distinct;
  without the lease both would take the same lowest ones at the same instant.
- Management: each lab has one subnet, the same on both hosts (each host's management bridge),
  the labs' subnets differ, no address is used twice, and every node's management address
  answers (its SSH server) from this machine (the coordinator host) through the routes the deploy made
  via each host's underlay address. Destroy takes those routes away.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from lab import names
from tests.multihost.conftest import COORDINATOR_HOME, HOSTS, REPO, Fleet, host_leftovers
from tests.support.prefect_server import ARCHETYPE

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

PLACED = {"r1": "sim-1", "r2": "sim-2", "r3": "sim-2"}
OUR_ROUTES = "213"  # providers.network.mgmt_routes.PROTO


def topology(lab_id: str) -> dict:
    return {"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {name: {"kind": "frr", "host": host} for name, host in PLACED.items()},
        "links": [{"endpoints": ["r1:eth1", "r2:eth1"]}, {"endpoints": ["r1:eth2", "r3:eth1"]}]}}


@pytest.fixture(scope="module")
def labs(fleet: Fleet, tmp_path_factory) -> Iterator[dict[str, dict]]:
    """Both labs, deployed by two `archetype deploy --json` processes started together."""
    folder = tmp_path_factory.mktemp("plan")
    ids = [f"fleetplan-{secrets.token_hex(2)}{suffix}" for suffix in ("a", "b")]
    env = {**os.environ, **fleet.env, "PREFECT_HOME": str(COORDINATOR_HOME), "PYTHONPATH": str(REPO)}
    processes = []
    for lab_id in ids:
        path = folder / f"{lab_id}.yml"
        path.write_text(yaml.safe_dump(topology(lab_id), sort_keys=False))
        processes.append(subprocess.Popen([ARCHETYPE, "deploy", str(path), "--json"], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = {}
    try:
        for lab_id, process in zip(ids, processes, strict=True):
            out, err = process.communicate(timeout=900)
            assert process.returncode == 0, err[-4000:]
            results[lab_id] = json.loads(out)
        yield results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for lab_id in ids:
            fleet.cli("destroy", lab_id)
        assert {lab_id: {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} for lab_id in ids} == \
            {lab_id: {h: {} for h in HOSTS} for lab_id in ids}


def mgmt_subnets(fleet: Fleet, lab_id: str) -> dict[str, str]:
    """Each host's subnet of the lab's management network: its bridge's gateway address."""
    found = {}
    for host in HOSTS:
        shown = fleet.on(host, "ip", "-4", "-o", "addr", "show", "dev", names.mgmt_bridge_name(lab_id))
        assert shown.returncode == 0 and "inet " in shown.stdout, (host, shown.stdout, shown.stderr)
        found[host] = str(ipaddress.ip_interface(shown.stdout.split("inet ")[1].split()[0]).network)
    return found


def mgmt_address(fleet: Fleet, lab_id: str, node: str) -> str:
    code, out = fleet.docker_exec(PLACED[node], lab_id, node, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert code == 0, out
    return out.split("inet ")[1].split("/")[0]


def ssh_banner(address: str) -> str:
    """The first line of the node's SSH server (archetype/frr serves SSH: what Ansible and
    Nornir use), read over a TCP connection from this machine; "" when it cannot be reached."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection((address, 22), timeout=5) as connection:
                return connection.recv(64).decode(errors="replace")
        except OSError:
            if time.monotonic() > deadline:
                return ""
            time.sleep(1)


def our_routes() -> list[str]:
    return subprocess.run(["ip", "-4", "route", "show", "proto", OUR_ROUTES], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_two_labs_deployed_at_once_get_distinct_vnis(labs: dict[str, dict]) -> None:
    vnis = {lab_id: [link["vni"] for link in result["links"]] for lab_id, result in labs.items()}
    assert all(len(v) == 2 and None not in v for v in vnis.values()), vnis
    first, second = vnis.values()
    assert not set(first) & set(second), vnis


def test_each_lab_has_one_management_subnet_on_every_host(fleet: Fleet, labs: dict[str, dict]) -> None:
    subnets = {lab_id: mgmt_subnets(fleet, lab_id) for lab_id in labs}
    for lab_id, per_host in subnets.items():
        assert len(set(per_host.values())) == 1, (lab_id, per_host)
    first, second = (ipaddress.ip_network(next(iter(s.values()))) for s in subnets.values())
    assert not first.overlaps(second), subnets
    for lab_id, per_host in subnets.items():
        subnet = ipaddress.ip_network(per_host["sim-1"])
        addresses = [mgmt_address(fleet, lab_id, node) for node in PLACED]
        assert len(set(addresses)) == len(PLACED), addresses  # r1 on sim-1 and r2 on sim-2 never share one
        assert all(ipaddress.ip_address(a) in subnet for a in addresses), (subnet, addresses)


def test_every_nodes_management_address_answers_from_the_coordinator(fleet: Fleet, labs: dict[str, dict]) -> None:
    for lab_id in labs:
        for node in PLACED:
            address = mgmt_address(fleet, lab_id, node)
            assert ssh_banner(address).startswith("SSH-2.0"), f"{lab_id} {node} ({address})\n" + "\n".join(our_routes())


def test_destroy_takes_the_coordinators_routes_away(fleet: Fleet, labs: dict[str, dict]) -> None:
    lab_id = next(iter(labs))
    subnet = mgmt_subnets(fleet, lab_id)["sim-1"]
    assert [r for r in our_routes() if ipaddress.ip_address(r.split()[0]) in ipaddress.ip_network(subnet)]
    code, _, err = fleet.cli_json("destroy", lab_id)
    assert code == 0, err[-3000:]
    assert not [r for r in our_routes() if ipaddress.ip_address(r.split()[0]) in ipaddress.ip_network(subnet)]
