"""Placement around a drained host, and a drain's plan (pure logic over host facts)."""

from __future__ import annotations

import pytest

from lab.errors import TopologyError
from tests.unit.test_placement import host, lab
from topology.placement import place, place_away


def drained(name: str, **kwargs):
    from dataclasses import replace

    return replace(host(name, **kwargs), drained=True)


def test_a_drained_host_gets_no_new_node() -> None:
    loaded = lab({"r1": {"kind": "frr"}, "r2": {"kind": "frr"}})
    assert place(loaded, [drained("h1", memory=9000), host("h2")]) == {"r1": "h2", "r2": "h2"}
    with pytest.raises(TopologyError, match=r"r1.host: host h1 is drained \(archetype hosts undrain h1\)"):
        place(lab({"r1": {"kind": "frr", "host": "h1"}}), [drained("h1"), host("h2")])


def test_a_drained_host_keeps_the_nodes_it_runs_until_they_move() -> None:
    from dataclasses import replace

    running = replace(drained("h1"), labs={"p": [["r1", "frr", "docker", "running", "archetype-p-r1"]]})
    loaded = lab({"r1": {"kind": "frr", "host": "h1"}, "r2": {"kind": "frr", "host": "h1"}})
    with pytest.raises(TopologyError) as refused:
        place(loaded, [running, host("h2")])
    assert refused.value.problems == ["topology.nodes.r2.host: host h1 is drained (archetype hosts undrain h1)"]


def test_a_drain_places_every_node_on_the_others_biggest_first() -> None:
    loaded = lab({"r1": {"kind": "frr"}, "v1": {"kind": "mini-ios"}})
    leaving = [("p", loaded.nodes["r1"]), ("p", loaded.nodes["v1"])]
    moves = place_away(leaving, [drained("h1"), host("h2", 600), host("h3", 500)], "h1")
    assert moves == {("p", "v1"): "h2", ("p", "r1"): "h3"}


def test_a_drain_that_cannot_place_a_node_names_it_and_why() -> None:
    loaded = lab({"r1": {"kind": "frr"}, "v1": {"kind": "mini-ios"}})
    leaving = [("p", loaded.nodes["r1"]), ("p", loaded.nodes["v1"])]
    with pytest.raises(TopologyError) as refused:
        place_away(leaving, [drained("h1"), host("h2", 100), drained("h3")], "h1")
    (problem,) = refused.value.problems
    assert problem.startswith("lab p node v1: no other host can run it (host h2 has 100 MiB free, it needs")
    assert "host h3 is drained" in problem
