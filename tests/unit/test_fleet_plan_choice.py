"""The fleet lab's plan the coordinator chooses under its lease (topology.fleet_plan): VNIs,
the one management subnet, every node's address over all hosts, the coordinator's routes."""

from __future__ import annotations

import ipaddress

import pytest

from lab.errors import TopologyError
from topology import load_topology
from topology.fleet_plan import VNI_MIN, Taken, pick_subnet, pick_vnis, routes_to_nodes, with_addresses


def taken(*subnets: str) -> list[Taken]:
    return [Taken(ipaddress.ip_network(s), f"lab {i}") for i, s in enumerate(subnets)]


def test_vnis_are_the_lowest_free_ones_and_a_redeploy_keeps_its_own() -> None:
    first = pick_vnis(["a", "b"], {}, set())
    assert first == {"a": VNI_MIN, "b": VNI_MIN + 1}
    # a second lab, choosing after the first recorded its own, gets others
    second = pick_vnis(["a", "b"], {}, set(first.values()))
    assert set(second.values()) == {VNI_MIN + 2, VNI_MIN + 3}
    # a redeploy keeps what it had, and a new link takes a free one
    again = pick_vnis(["a", "b", "c"], first, {VNI_MIN + 2, VNI_MIN + 3})
    assert again == {"a": VNI_MIN, "b": VNI_MIN + 1, "c": VNI_MIN + 4}


def test_a_vni_another_lab_took_meanwhile_is_given_up() -> None:
    assert pick_vnis(["a"], {"a": VNI_MIN}, {VNI_MIN}) == {"a": VNI_MIN + 1}


def test_the_subnet_skips_what_other_labs_and_the_coordinators_routes_hold() -> None:
    pool = "10.213.0.0/16"
    alone = pick_subnet("lab-x", 3, pool, [])
    got = pick_subnet("lab-x", 3, pool, taken(alone, "10.213.0.0/24"))
    assert got != alone and got != "10.213.0.0/24"
    assert ipaddress.ip_network(got).subnet_of(ipaddress.ip_network(pool))
    assert ipaddress.ip_network(got).prefixlen == 24


def test_the_subnet_is_kept_across_redeploys_and_grows_with_the_lab() -> None:
    assert pick_subnet("lab-x", 3, "10.213.0.0/16", taken("10.213.9.0/24"), previous="10.213.7.0/24") == "10.213.7.0/24"
    assert ipaddress.ip_network(pick_subnet("big", 300, "10.213.0.0/16", [])).prefixlen == 22


def test_a_topology_subnet_overlapping_another_labs_is_refused() -> None:
    assert pick_subnet("x", 2, "10.213.0.0/16", [], asked="172.30.1.0/24") == "172.30.1.0/24"
    with pytest.raises(TopologyError, match="overlaps 172.30.0.0/16 of lab 0"):
        pick_subnet("x", 2, "10.213.0.0/16", taken("172.30.0.0/16"), asked="172.30.1.0/24")


def test_every_node_has_one_address_over_all_hosts_and_the_coordinator_routes_each_via_its_host() -> None:
    lab = load_topology("""
name: plan
topology:
  nodes:
    r1: {kind: frr, host: sim-1}
    r2: {kind: frr, host: sim-2}
    r3: {kind: frr, host: sim-2, mgmt-ipv4: 172.30.1.9}
  links:
    - endpoints: [r1:eth1, r2:eth1]
mgmt: {ipv4-subnet: 172.30.1.0/24}
""")
    planned = with_addresses(lab, "172.30.1.0/24", {"r2": "172.30.1.20"})
    addresses = {n.name: n.mgmt_ipv4 for n in planned.nodes.values()}
    assert addresses == {"r1": "172.30.1.2", "r2": "172.30.1.20", "r3": "172.30.1.9"}
    placement = {"r1": "sim-1", "r2": "sim-2", "r3": "sim-2"}
    assert routes_to_nodes(planned, placement, {"sim-1": "10.213.0.1", "sim-2": "10.213.0.2"}) == {
        "172.30.1.2": "10.213.0.1", "172.30.1.20": "10.213.0.2", "172.30.1.9": "10.213.0.2"}


def test_the_slice_document_carries_the_plan_to_every_host() -> None:
    from topology.slices import local_part, slice_document

    lab = load_topology("name: plan\ntopology:\n  nodes:\n    r1: {kind: frr, host: sim-1}\n    r2: {kind: frr, host: sim-2}\n")
    from dataclasses import replace

    planned = with_addresses(replace(lab, mgmt=replace(lab.mgmt, ipv4_subnet="10.213.40.0/24")), "10.213.40.0/24", {})
    text, _ = slice_document(planned, {"r1": "sim-1", "r2": "sim-2"})
    back = load_topology(text)
    assert back.mgmt.ipv4_subnet == "10.213.40.0/24"
    assert {n.name: n.mgmt_ipv4 for n in local_part(back, "sim-2").nodes.values()} == {"r2": "10.213.40.3"}
