"""VLAN allocation across processes, and cleanup of one lab among others."""

from __future__ import annotations

import multiprocessing

import pytest

from lab import names
from providers import network
from providers.base import LinkEnd
from providers.network import vlans as vlan_records
from providers.network.markers import parse_alias
from providers.network.netlink import IPRoute, dump_links
from tests.integration.network.helpers import allocate_in_child, ping

pytestmark = pytest.mark.ovs


def test_eight_racing_processes_get_disjoint_tags(lab_ids):
    labs = [lab_ids() for _ in range(8)]
    links = {lab: [f"n{i}:eth1--m{i}:eth1" for i in range(6)] for lab in labs}
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(labs)), ctx.Queue()
    procs = [ctx.Process(target=allocate_in_child, args=(lab, links[lab], barrier, results)) for lab in labs]
    for proc in procs:
        proc.start()
    try:
        got = dict(results.get(timeout=60) for _ in labs)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert all(isinstance(v, dict) for v in got.values()), got
    every = [tag for lab in labs for tag in got[lab].values()]
    assert len(every) == 8 * 6 and len(set(every)) == len(every)
    # Each record holds what its process got; no tag of another lab's record or port.
    for lab in labs:
        assert vlan_records.load_reservation(lab).tags() == got[lab]
    foreign = {p.tag for p in network.bridge_ports().values() if p.lab_id not in labs and p.tag}
    assert not foreign & set(every)
    # Same lab again: same tags.
    assert network.allocate_vlans(labs[0], links[labs[0]]) == got[labs[0]]


def _wire_pair(lab: str, x, y, link: str, vlan: int) -> list[str]:
    ports = []
    for ep in (x, y):
        end = LinkEnd(link, "eth1", 1, vlan, names.host_port_name(lab, ep.name, "eth1"))
        network.attach_container_ends(lab, ep.name, ep.pid, [end], ["eth1"])
        ports.append(end.port_name)
    return ports


def test_release_lab_leaves_nothing_of_it_and_spares_other_labs(lab_ids, endpoints):
    gone, kept = lab_ids(), lab_ids()
    a, b, c, d = (endpoints(n) for n in "abcd")
    tag_gone = network.allocate_vlans(gone, ["a:eth1--b:eth1"])["a:eth1--b:eth1"]
    tag_kept = network.allocate_vlans(kept, ["c:eth1--d:eth1"])["c:eth1--d:eth1"]
    gone_ports = _wire_pair(gone, a, b, "a:eth1--b:eth1", tag_gone)
    kept_ports = _wire_pair(kept, c, d, "c:eth1--d:eth1", tag_kept)
    c.address("eth1", "10.82.0.1"), d.address("eth1", "10.82.0.2")
    assert {gone, kept} <= network.network_labs()

    report = network.release_lab(gone)
    assert report.ok, report.errors
    assert sorted(report.removed["ovs-ports"]) == sorted(gone_ports)
    assert sorted(report.removed["veths"]) == sorted(gone_ports)
    assert report.removed["vlan-records"] == [str(names.vlan_record_path(gone))]

    ports = network.bridge_ports()
    assert not [p for p in ports.values() if p.lab_id == gone]
    with IPRoute() as ipr:
        host = dump_links(ipr)
    assert not [n for n, link in host.items() if (parse_alias(link.alias) or ("",))[0] == gone]
    assert not names.vlan_record_path(gone).exists()
    assert "eth1" not in a.links()
    assert gone not in network.network_labs()
    # The other lab is untouched and still works.
    assert all(ports[p].lab_id == kept and ports[p].tag == tag_kept for p in kept_ports)
    assert all(p in host for p in kept_ports)
    assert vlan_records.load_reservation(kept).tags() == {"c:eth1--d:eth1": tag_kept}
    assert ping(c, "10.82.0.2")
    # Idempotent.
    again = network.release_lab(gone)
    assert again.ok and not again.removed


def test_remove_ports_skips_other_labs(lab_ids, endpoints):
    mine, theirs = lab_ids(), lab_ids()
    a, b = endpoints("a"), endpoints("b")
    (pa, _) = _wire_pair(mine, a, endpoints("a2"), "a:eth1--a2:eth1", 3990)
    (pb, _) = _wire_pair(theirs, b, endpoints("b2"), "b:eth1--b2:eth1", 3991)
    network.remove_ports([pa, pb], lab_id=mine)
    ports = network.bridge_ports()
    assert pa not in ports and pb in ports
    with IPRoute() as ipr:
        host = dump_links(ipr)
    assert pa not in host and pb in host
