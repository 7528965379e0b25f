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
