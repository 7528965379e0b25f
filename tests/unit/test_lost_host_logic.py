"""A lost host (issue 26): which nodes are lost, their re-placement from saved configs, and
what a host back from lost removes (pure logic over host facts and lab records)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lab.errors import TopologyError
from lab.state import LabState, LabStatus, NodeRecord
from tasks.lost import stale_here
from tests.unit.test_placement import host, lab
from topology.lost import lost_nodes, re_placed
from topology.placement import place


def lost(name: str, **kwargs):
    return replace(host(name, **kwargs), alive=False, lost=True)


def record(status: LabStatus = LabStatus.DEPLOYED, **hosts: str) -> LabState:
    return LabState(lab_id="p", status=status, nodes=[
        NodeRecord(name=n, kind="frr", provider="docker", runtime_name=f"archetype-p-{n}", host=h)
        for n, h in hosts.items()])


def test_a_lost_host_gets_nothing_and_is_named() -> None:
    with pytest.raises(TopologyError, match=r"r1.host: host h1 is lost"):
        place(lab({"r1": {"kind": "frr", "host": "h1"}}), [lost("h1"), host("h2")])
    assert place(lab({"r1": {"kind": "frr"}}), [lost("h1", memory=9000), host("h2")]) == {"r1": "h2"}


def test_nodes_recorded_on_or_pinned_to_a_lost_host_are_lost() -> None:
    placed = lab({"r1": {"kind": "frr", "host": "h1"}, "r2": {"kind": "frr"}, "r3": {"kind": "frr", "host": "h2"}})
    hosts = [lost("h1"), host("h2")]
    assert lost_nodes(placed, hosts, {"r1": "h1", "r2": "h1", "r3": "h2"}) == {"r1": "h1", "r2": "h1"}
    assert lost_nodes(placed, hosts, {}) == {"r1": "h1"}  # never deployed: its pin alone
    assert lost_nodes(placed, [replace(host("h1"), alive=False), host("h2")], {"r1": "h1"}) == {}  # silent, not lost


def test_lost_nodes_are_re_placed_from_their_saved_configs(tmp_path) -> None:
    placed = lab({"r1": {"kind": "frr", "host": "h1", "startup-config": "hostname r1\n"},
                  "r2": {"kind": "frr", "host": "h1", "startup-config": "hostname r2\n"},
                  "r3": {"kind": "frr", "host": "h2", "startup-config": "hostname r3\n"}})
    for node in ("r1", "r3"):
        (tmp_path / f"{node}.cfg").write_text(f"hostname {node}-saved\n")
    moved, used = re_placed(placed, {"r1": "h1", "r2": "h1"}, tmp_path)
    assert used == {"r1": str(tmp_path / "r1.cfg")}
    assert {n: (node.host, node.startup_config) for n, node in moved.nodes.items()} == {
        "r1": (None, "hostname r1-saved\n"),  # its saved config
        "r2": (None, "hostname r2\n"),  # none saved: the topology's
        "r3": ("h2", "hostname r3\n"),  # not lost: untouched, though a config is saved
    }
    assert place(moved, [lost("h1"), host("h2")]) == {"r1": "h2", "r2": "h2", "r3": "h2"}


def test_a_host_back_removes_only_what_moved_away() -> None:
    assert stale_here("p", ["r1", "r2"], record(r1="h2", r2="h1"), "h1") == (["r1"], False)
    assert stale_here("p", ["r1"], record(r1="h2", r2="h2"), "h1") == (["r1"], True)
    assert stale_here("p", [], record(r1="h2"), "h1") == ([], True)  # its networks and tunnels only
    assert stale_here("p", ["r1", "gone"], record(r1="h1"), "h1") == (["gone"], False)  # dropped from the lab
    assert stale_here("p", ["r1"], record(LabStatus.DESTROYED), "h1") == (["r1"], True)
    assert stale_here("p", ["r1"], None, "h1") == ([], False)  # no record: not ours to judge
    assert stale_here("p", ["r1"], record(r1="h1"), "h1") == ([], False)  # nothing moved


def test_status_shows_a_lost_hosts_nodes_lost_until_they_run_elsewhere() -> None:
    from archetype.cli_fleet import _with_lost_nodes

    entry = ["r1", "frr", "docker", "ready", "archetype-p-r1", "10.0.0.2", None]
    hosts = [replace(lost("h1"), labs={"p": [entry, ["r2", "frr", "docker", "ready", "archetype-p-r2"]]}), host("h2")]
    labs = {"p": [{"name": "r2", "host": "h2", "state": "ready"}]}  # r2 re-placed on h2 already
    _with_lost_nodes(labs, hosts, None)
    assert [(n["name"], n["host"], n["state"], n.get("mgmt_ipv4")) for n in labs["p"]] == [
        ("r2", "h2", "ready", None), ("r1", "h1", "lost", "10.0.0.2")]
    other: dict = {}
    _with_lost_nodes(other, hosts, "q")
    assert other == {}
