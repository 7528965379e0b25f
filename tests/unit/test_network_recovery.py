"""Stale-network recovery rules (``plan_recovery``): pure logic, no daemon."""

from __future__ import annotations

from lab import names
from lab.state import LinkRecord
from providers.network.ovs import PortInfo
from providers.network.recovery import plan_recovery

LAB = "lab-1"


def _port(lab, node, iface, link, tag, other_lab=None) -> PortInfo:
    name = names.host_port_name(lab, node, iface)
    ids = {names.OVS_LAB_KEY: other_lab or lab, names.OVS_LINK_KEY: link, names.OVS_NODE_KEY: node}
    return PortInfo(name, tag, ids)


def _rec(a: str, b: str, vlan: int) -> LinkRecord:
    ports = [names.host_port_name(LAB, *ep.split(":")) for ep in (a, b)]
    return LinkRecord(id=names.link_id(a, b), endpoints=[a, b], vlan=vlan, ports=ports)


def _plan(previous, ports=(), *, alive=("a", "b"), others=None, known=None, lo=100, hi=4000, asked=None):
    def exists(node):
        if asked is not None:
            asked.append(node)
        return node in alive

    return plan_recovery(LAB, previous, {p.name: p for p in ports}, known_ports=known or {},
                         reserved_by_others=others or {}, node_exists=exists, vlan_min=lo, vlan_max=hi)


def test_wired_and_never_wired_links_are_kept():
    wired, never = _rec("a:eth1", "b:eth1", 101), _rec("a:eth2", "b:eth2", 102)
    ports = [_port(LAB, "a", "eth1", wired.id, 101), _port(LAB, "b", "eth1", wired.id, 101)]
    plan = _plan([wired, never], ports)
    assert plan.kept == {wired.id: 101, never.id: 102}
    assert not plan.dropped and not plan.stale_ports


def test_a_half_created_lab_keeps_the_links_of_its_missing_nodes():
    # Killed while creating nodes: b exists, c does not, no port anywhere.
    rec = _rec("b:eth1", "c:eth1", 103)
    assert _plan([rec], alive=("b",)).kept == {rec.id: 103}


def test_nothing_left_is_dropped_with_a_hint():
    rec = _rec("d:eth1", "e:eth1", 104)
    plan = _plan([rec])
    assert rec.id in plan.dropped and "nothing left" in plan.dropped[rec.id]
    assert plan.hints == {rec.id: 104}


def test_wrong_tag_drops_the_link_and_removes_its_ports():
    rec = _rec("a:eth1", "b:eth1", 101)
    wrong, right = _port(LAB, "a", "eth1", rec.id, 999), _port(LAB, "b", "eth1", rec.id, 101)
    plan = _plan([rec], [wrong, right])
    assert "tag 999" in plan.dropped[rec.id]
    assert set(plan.stale_ports) == {wrong.name, right.name}


def test_a_port_whose_node_is_gone_is_removed_and_its_link_dropped():
    rec = _rec("a:eth1", "f:eth1", 101)
    dangling, live = _port(LAB, "f", "eth1", rec.id, 101), _port(LAB, "a", "eth1", rec.id, 101)
    plan = _plan([rec], [dangling, live])
    assert "node f is gone" in plan.dropped[rec.id]
    assert set(plan.stale_ports) == {dangling.name, live.name}


def test_a_tag_another_lab_uses_is_dropped_and_its_port_left_alone():
    rec, reserved = _rec("a:eth1", "b:eth1", 101), _rec("a:eth2", "b:eth2", 102)
    theirs = _port("other", "x", "eth1", "x:eth1--y:eth1", 101)
    plan = _plan([rec, reserved], [theirs], others={102: "third"})
    assert "held by port" in plan.dropped[rec.id] and "lab other" in plan.dropped[rec.id]
    assert "reserved by lab third" in plan.dropped[reserved.id]
    assert theirs.name not in plan.stale_ports


def test_an_unmarked_port_that_is_not_ours_blocks_the_tag():
    rec = _rec("a:eth1", "b:eth1", 101)
    plan = _plan([rec], [PortInfo("vnet7", 101, {})])
    assert "unmarked" in plan.dropped[rec.id]


def test_an_unmarked_port_with_our_recorded_name_is_ours():
    rec = _rec("a:eth1", "b:eth1", 101)
    tap = PortInfo(names.host_port_name(LAB, "a", "eth1"), 101, {"iface-id": "x"})  # libvirt's, not marked yet
    plan = _plan([rec], [tap])
    assert plan.kept == {rec.id: 101}


def test_our_port_of_another_link_holding_the_tag_drops_the_entry():
    rec = _rec("a:eth1", "b:eth1", 101)
    other = _port(LAB, "a", "eth9", "a:eth9--b:eth9", 101)  # a link not in the record, node alive
    plan = _plan([rec], [other])
    assert "link a:eth9--b:eth9" in plan.dropped[rec.id]
    assert other.name not in plan.stale_ports


def test_duplicates_and_out_of_range_tags_are_dropped():
    first, dup, far = _rec("a:eth1", "b:eth1", 101), _rec("a:eth2", "b:eth2", 101), _rec("a:eth3", "b:eth3", 50)
    plan = _plan([first, dup, far])
    assert plan.kept == {first.id: 101}
    assert "already kept" in plan.dropped[dup.id] and "outside" in plan.dropped[far.id]


def test_leftover_ports_of_gone_nodes_outside_the_record_are_removed():
    leftover = _port(LAB, "z", "eth1", "z:eth1--y:eth1", 150)
    alive_other = _port(LAB, "a", "eth7", "a:eth7--b:eth7", 151)
    plan = _plan([], [leftover, alive_other])
    assert plan.stale_ports == [leftover.name]


def test_each_node_is_asked_once():
    asked: list[str] = []
    recs = [_rec("a:eth1", "b:eth1", 101), _rec("a:eth2", "b:eth2", 102), _rec("b:eth3", "c:eth1", 103)]
    _plan(recs, asked=asked)
    assert sorted(asked) == sorted(set(asked))


def test_records_without_endpoints_use_recorded_nodes():
    # From the host record: endpoints unknown, nodes known from the ports we noted.
    rec = LinkRecord(id="a:eth1--b:eth1", endpoints=[], vlan=101, ports=["p1", "p2"])
    known = {"p1": ("a:eth1--b:eth1", "a"), "p2": ("a:eth1--b:eth1", "b")}
    assert _plan([rec], known=known, alive=()).dropped  # nodes known and gone, nothing on the bridge
    assert _plan([rec], known=known, alive=("a",)).kept == {rec.id: 101}
    bare = LinkRecord(id="x", endpoints=[], vlan=102, ports=[])
    assert _plan([bare], alive=()).kept == {"x": 102}  # nothing known: cannot call it stale
