"""Where each link of a moving node goes (flows.migrate_node.plan_move): pure logic."""

from __future__ import annotations

import pytest

from flows.migrate_node import MigrationRefused, _keep_on_source, plan_move
from lab.state import LabState, LabStatus, LinkRecord, NodeRecord
from topology.placement import HostFacts

HOSTS = [HostFacts("sim-1", "10.213.0.1"), HostFacts("sim-2", "10.213.0.2")]


def state() -> LabState:
    def node(name: str, kind: str, host: str) -> NodeRecord:
        return NodeRecord(name=name, kind=kind, provider="libvirt" if kind == "mini-ios" else "docker",
                          runtime_name=name, host=host)

    return LabState(
        lab_id="mv-a", status=LabStatus.DEPLOYED,
        nodes=[node("r1", "frr", "sim-1"), node("v1", "mini-ios", "sim-1"), node("r2", "frr", "sim-2")],
        links=[
            LinkRecord(id="a", endpoints=["r1:eth1", "v1:GigabitEthernet0/1"], vlan=100, vlans={"sim-1": 100}),
            LinkRecord(id="b", endpoints=["r2:eth1", "v1:GigabitEthernet0/2"], vlan=101, vni=5000,
                       vlans={"sim-1": 101, "sim-2": 300}),
            LinkRecord(id="c", endpoints=["r1:eth2", "r2:eth2"], vlan=102, vni=5001, vlans={"sim-1": 102, "sim-2": 301}),
        ],
    )


def test_links_to_the_destination_become_local_the_others_cross() -> None:
    plan = plan_move(state(), "v1", "sim-2", HOSTS)
    moves = {m.link.id: m for m in plan.links}
    assert set(moves) == {"a", "b"}  # r1-r2 is not v1's
    assert (moves["a"].local_after, moves["a"].other_node, moves["a"].other_host) == (False, "r1", "sim-1")
    assert (moves["b"].local_after, moves["b"].other_node, moves["b"].other_host) == (True, "r2", "sim-2")
    assert moves["a"].interface == "GigabitEthernet0/1"


def test_the_source_keeps_only_the_links_with_an_end_still_there() -> None:
    lab = state()
    plan = plan_move(lab, "v1", "sim-2", HOSTS)
    assert _keep_on_source(lab, plan) == ["a", "c"]  # b has no end on sim-1 any more


@pytest.mark.parametrize(
    ("node", "to", "hosts", "message"),
    [
        ("v9", "sim-2", HOSTS, "no node"),
        ("v1", "sim-9", HOSTS, "no host 'sim-9'"),
        ("v1", "sim-1", HOSTS, "already runs on sim-1"),
        ("v1", "sim-2", [HOSTS[0], HostFacts("sim-2", "10.213.0.2", alive=False)], "sim-2 is not alive"),
    ],
)
def test_moves_that_cannot_happen_are_refused(node: str, to: str, hosts: list, message: str) -> None:
    with pytest.raises(MigrationRefused, match=message):
        plan_move(state(), node, to, hosts)


def test_where_a_node_runs_comes_from_the_alive_hosts_facts() -> None:
    from flows.migrate_node import _runs_on

    entry = ["v1", "mini-ios", "libvirt", "running", "arch-mv-a-v1"]
    hosts = [HostFacts("sim-1", "10.213.0.1", labs={"mv-a": []}), HostFacts("sim-2", "10.213.0.2", labs={"mv-a": [entry]})]
    assert _runs_on(hosts, "mv-a", "v1") == "sim-2"  # an earlier move switched it there
    assert _runs_on(hosts, "mv-a", "r1") is None
    hosts[1] = HostFacts("sim-2", "10.213.0.2", alive=False, labs={"mv-a": [entry]})
    assert _runs_on(hosts, "mv-a", "v1") is None  # a silent host's facts are not trusted


def test_a_cold_switch_takes_the_old_node_away_and_turns_each_link_to_the_new_one() -> None:
    """r1 (sim-1) moves to sim-2: its link to v1 (sim-1) will cross hosts, its link to r2
    (sim-2) becomes local there."""
    from flows.migrate_node import _cutovers
    from lab import names

    lab = state()
    plan = plan_move(lab, "r1", "sim-2", HOSTS)
    for move in plan.links:
        move.vni = 6000 if not move.local_after else None
    steps = _cutovers(lab, plan, {"vlans": {}})
    port = {key: names.host_port_name("mv-a", *key) for key in [("r1", "eth1"), ("r1", "eth2"),
                                                               ("v1", "GigabitEthernet0/1"), ("r2", "eth2")]}
    source, destination = steps["sim-1"], steps["sim-2"]
    # sim-1: the old r1 goes; v1 stays, so the lab stays (its link a now has a tunnel to sim-2)
    assert (source["remove_node"], source["leave"]) == ("r1", False)
    assert source["keep_links"] == ["a", "b"]
    assert source["tunnels"] == [{"link_id": "a", "node": "v1", "vni": 6000, "remote": "10.213.0.2", "vlan": 100}]
    assert source["peers"] == [port[("v1", "GigabitEthernet0/1")]]
    # sim-2: r1's ports come up; link c is local now: its old tunnel to sim-1 goes
    assert sorted(destination["ports_up"]) == sorted([port[("r1", "eth1")], port[("r1", "eth2")]])
    assert destination["old_devices"] == [names.vxlan_device_name("mv-a", "c")]
    assert destination["peers"] == [port[("r2", "eth2")]]


def test_a_cold_switch_leaves_a_link_set_down_down_and_a_host_with_nothing_left_empty() -> None:
    from flows.migrate_node import _cutovers

    lab = state()
    lab.nodes = [n for n in lab.nodes if n.name != "v1"]
    lab.links = [link for link in lab.links if link.id == "c"]
    lab.links[0].state = "down"
    plan = plan_move(lab, "r1", "sim-2", HOSTS)
    steps = _cutovers(lab, plan, {"vlans": {}})
    assert steps["sim-1"]["leave"] is True  # r1 was the lab's last node on sim-1
    assert steps["sim-2"]["ports_up"] == [] and "peers" not in steps["sim-2"]  # set down by `archetype link`: stays down


def segment_lab() -> LabState:
    """A LAN of r1, r2 (sim-1) and r3 (sim-2), joined by one tunnel sim-1+sim-2."""
    def node(name: str, host: str) -> NodeRecord:
        return NodeRecord(name=name, kind="frr", provider="docker", runtime_name=name, host=host)

    return LabState(
        lab_id="mv-s", status=LabStatus.DEPLOYED,
        nodes=[node("r1", "sim-1"), node("r2", "sim-1"), node("r3", "sim-2")],
        links=[LinkRecord(id="segment:lan", endpoints=["r1:eth1", "r2:eth1", "r3:eth1"], vlan=100,
                          vlans={"sim-1": 100, "sim-2": 200}, vnis={"sim-1+sim-2": 4096})],
    )


def test_a_segment_member_moving_where_the_segment_already_is_changes_no_tunnel() -> None:
    plan = plan_move(segment_lab(), "r1", "sim-2", HOSTS)
    (seg,) = plan.segments
    assert (seg.interface, seg.new_pairs, seg.gone_pairs) == ("eth1", [], [])  # r2 keeps sim-1 on the LAN
    assert seg.marker_nodes == {"sim-1": "r2", "sim-2": "r1"}


def test_the_last_member_leaving_a_host_takes_its_tunnels_with_it() -> None:
    from flows.migrate_node import _cutovers
    from lab import names

    lab = segment_lab()
    plan = plan_move(lab, "r3", "sim-1", HOSTS)
    (seg,) = plan.segments
    assert (seg.new_pairs, seg.gone_pairs) == ([], ["sim-1+sim-2"])
    steps = _cutovers(lab, plan, {"vlans": {}})
    assert steps["sim-2"]["leave"] is True  # r3 was the lab's only node there
    assert steps["sim-1"]["old_devices"] == [names.vxlan_device_name("mv-s", "segment:lan@sim-2")]
    assert steps["sim-1"]["ports_up"] == [names.host_port_name("mv-s", "r3", "eth1")]


def test_a_member_reaching_a_new_host_joins_it_to_every_other_host_of_the_segment() -> None:
    from flows.migrate_node import _cutovers, _staged_tunnels

    lab = segment_lab()
    hosts = [*HOSTS, HostFacts("sim-3", "10.213.0.3")]
    plan = plan_move(lab, "r3", "sim-3", hosts)
    (seg,) = plan.segments
    assert (seg.new_pairs, seg.gone_pairs) == (["sim-1+sim-3"], ["sim-1+sim-2"])
    seg.vnis = {"sim-1+sim-3": 4097}
    assert _staged_tunnels(plan) == [{"link_id": "segment:lan", "node": "r3", "vni": 4097, "remote": "10.213.0.1",
                                      "peer": "sim-1"}]
    steps = _cutovers(lab, plan, {"vlans": {}})
    assert steps["sim-1"]["tunnels"] == [{"link_id": "segment:lan", "node": "r1", "vni": 4097, "remote": "10.213.0.3",
                                          "vlan": 100, "peer": "sim-3"}]
    assert len(steps["sim-1"]["old_devices"]) == 1 and "sim-3" not in steps["sim-1"].get("old_devices", [""])[0]


def test_a_vm_on_a_segment_is_refused_with_the_segment_named() -> None:
    lab = segment_lab()
    lab.nodes[2] = NodeRecord(name="r3", kind="mini-ios", provider="libvirt", runtime_name="r3", host="sim-2")
    with pytest.raises(MigrationRefused, match="VM on LAN segment segment:lan"):
        plan_move(lab, "r3", "sim-1", HOSTS)
