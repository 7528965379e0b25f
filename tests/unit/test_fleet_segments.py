"""A LAN segment and host:IF ends in a lab spread over hosts: which tunnels it needs, what
each host's slice holds, and the state record's VNIs per pair of hosts (pure logic)."""

from __future__ import annotations

import json

import yaml

from lab.state import LabState, LabStatus, LinkRecord, state_from_rows, state_to_rows
from topology import load_topology
from topology.placement import cross_host_links, crossings
from topology.slices import local_part, slice_document

NODES = {"a": {"kind": "frr", "host": "h1"}, "b": {"kind": "frr", "host": "h2"}, "c": {"kind": "frr", "host": "h3"},
         "d": {"kind": "frr", "host": "h1"}, "lan": {"kind": "bridge"}}
LINKS = [["a:eth1", "lan:p1"], ["b:eth1", "lan:p2"], ["c:eth1", "lan:p3"], ["d:eth1", "lan:p4"],
         ["host:lanif", "lan:p5"], ["a:eth2", "b:eth2"], ["c:eth2", "host:cif"]]


def lab():
    return load_topology(yaml.safe_dump({"name": "p", "topology": {"nodes": NODES,
                                                                   "links": [{"endpoints": e} for e in LINKS]}}))


def test_a_segment_on_three_hosts_has_a_tunnel_per_pair_and_host_ends_never_cross() -> None:
    loaded = lab()
    placement = {name: node.host for name, node in loaded.nodes.items()}
    assert [link.id for link in cross_host_links(loaded, placement)] == ["a:eth2--b:eth2"]
    found = {c.key: c for c in crossings(loaded, placement)}
    assert set(found) == {"a:eth2--b:eth2", "segment:lan@h1+h2", "segment:lan@h1+h3", "segment:lan@h2+h3"}
    assert found["segment:lan@h1+h3"].ends == {"h1": "a", "h3": "c"}  # a host's first end on the segment
    assert found["segment:lan@h1+h3"].segment and found["segment:lan@h1+h3"].peer_of("h3") == "h1"


def test_each_host_has_its_part_of_the_segment_and_its_nodes_host_ends() -> None:
    text, _ = slice_document(lab(), {"a": "h1", "b": "h2", "c": "h3", "d": "h1"})
    whole = load_topology(text)  # what every host's slice reads: the segment is a segment again
    (segment,) = whole.segments
    assert sorted(str(e) for e in segment.ends) == ["a:eth1", "b:eth1", "c:eth1", "d:eth1", "host:lanif"]
    parts = {h: local_part(whole, h) for h in ("h1", "h2", "h3")}
    assert {h: sorted(str(e) for _, e in part.host_ends()) for h, part in parts.items()} == {
        "h1": ["host:lanif"], "h2": [], "h3": ["host:cif"]}  # the segment's on its first node's host
    assert all(any(link.segment == "lan" for link in part.links) for part in parts.values())


def test_a_segments_vnis_per_pair_of_hosts_survive_the_state_table() -> None:
    state = LabState(lab_id="p", status=LabStatus.DEPLOYED, links=[
        LinkRecord(id="segment:lan", endpoints=["a:eth1", "b:eth1", "c:eth1"], vlan=100,
                   vnis={"h1+h2": 5001, "h1+h3": 5002, "h2+h3": 5003}),
        LinkRecord(id="a:eth2--b:eth2", endpoints=["a:eth2", "b:eth2"], vlan=101, vni=6000)])
    back = state_from_rows(json.loads(json.dumps(state_to_rows(state))))
    assert back.links == state.links


def test_a_container_on_a_segment_across_hosts_moves_with_its_segment() -> None:
    from flows.migrate_node import plan_move
    from lab.state import NodeRecord
    from topology.placement import HostFacts

    hosts = [HostFacts("h1", "10.213.0.1"), HostFacts("h2", "10.213.0.2")]
    state = LabState(lab_id="p", status=LabStatus.DEPLOYED,
                     nodes=[NodeRecord(name=n, kind="frr", provider="docker", runtime_name=n, host=h)
                            for n, h in (("a", "h1"), ("b", "h2"), ("c", "h2"))],
                     links=[LinkRecord(id="segment:lan", endpoints=["a:eth1", "b:eth1", "c:eth1"], vlan=100,
                                       vnis={"h1+h2": 5001})])
    plan = plan_move(state, "a", "h2", hosts)
    assert plan.links == []  # a segment is not a point-to-point link
    (segment,) = plan.segments
    assert (segment.link.id, segment.new_pairs, segment.gone_pairs) == ("segment:lan", [], ["h1+h2"])


def test_a_hosts_slice_keeps_the_containerlab_prefix_so_containers_are_named_as_on_one_host() -> None:
    """netlab's clab.yml says `prefix: clab`: each host's part names its containers
    clab-<lab>-<node>, as one host does; an empty prefix (bare names) and none stay so too."""
    from lab import names

    placement = {"a": "h1", "b": "h2", "c": "h3", "d": "h1"}
    for prefix, expected in (("clab", "clab-p-a"), ("", "a"), (None, "archetype-p-a")):
        document = {"name": "p", "topology": {"nodes": NODES, "links": [{"endpoints": e} for e in LINKS]}}
        if prefix is not None:
            document["prefix"] = prefix
        text, _ = slice_document(load_topology(yaml.safe_dump(document)), placement)
        part = local_part(load_topology(text), "h1")
        assert part.prefix == prefix and {n.name_prefix for n in part.nodes.values()} == {prefix}, text
        assert names.container_name("p", "a", part.nodes["a"].name_prefix) == expected
