"""VLAN tag selection and reservation records: pure logic, no daemon."""

from __future__ import annotations

import json

import pytest

from lab import names
from providers.network.ovs import PortInfo
from providers.network.vlans import (
    LinkEntry,
    RangeExhaustedError,
    RecordError,
    Reservation,
    parse_reservation,
    select_tags,
    tags_in_use,
)


def _select(links, preferred=None, taken=(), held=None, lo=100, hi=4000):
    return select_tags(links, preferred or {}, taken=taken, held=held or {}, vlan_min=lo, vlan_max=hi)


def test_fresh_tags_are_the_lowest_free_ones_in_order():
    assert _select(["a", "b", "c"], taken={100, 102}) == {"a": 101, "b": 103, "c": 104}


def test_preferred_tags_win_and_are_not_given_to_a_fresh_link_first():
    # "b" prefers 100: "a" (fresh, listed first) must not take it.
    assert _select(["a", "b"], {"b": [100]}) == {"a": 101, "b": 100}


def test_preferences_are_tried_in_order_and_skipped_when_not_usable():
    got = _select(["a"], {"a": [None, 5000, 150, 160]}, taken={150})
    assert got == {"a": 160}  # None skipped, 5000 outside the range, 150 taken


def test_two_links_preferring_one_tag_do_not_share_it():
    got = _select(["a", "b"], {"a": [120], "b": [120]})
    assert got["a"] == 120 and got["b"] != 120


def test_a_tag_held_by_our_port_of_another_link_is_only_for_that_link():
    held = {100: {"b"}, 101: {""}}  # "" = our port of an unknown link: nobody's
    got = _select(["a", "b"], {"a": [100], "b": [100]}, held=held)
    assert got == {"a": 102, "b": 100}


def test_duplicate_link_ids_get_one_tag():
    assert _select(["a", "a", "b"]) == {"a": 100, "b": 101}


def test_an_exhausted_range_is_an_error():
    with pytest.raises(RangeExhaustedError, match="1 of 3 links"):
        _select(["a", "b", "c"], taken={11}, lo=10, hi=12)


def test_tags_in_use_separates_other_labs_from_our_own_ports():
    ports = {
        "p1": PortInfo("p1", 100, {names.OVS_LAB_KEY: "mine", names.OVS_LINK_KEY: "l1"}),
        "p2": PortInfo("p2", 101, {names.OVS_LAB_KEY: "theirs"}),
        "p3": PortInfo("p3", 102, {}),  # unmarked, not ours: someone else's
        "tap": PortInfo("tap", 103, {}),  # unmarked, recorded by us (a VM tap)
        "trunk": PortInfo("trunk", None, {}),
    }
    others = {"other": Reservation("other", links={"x": LinkEntry(vlan=104), "y": LinkEntry(vlan=None)})}
    taken, held = tags_in_use("mine", ports, {"tap": ("l2", "vm1")}, others)
    assert set(taken) == {101, 102, 104}
    assert "lab theirs" in taken[101] and "unmarked" in taken[102] and "lab other" in taken[104]
    assert held == {100: {"l1"}, 103: {"l2"}}


def test_record_round_trip():
    rec = Reservation("lab-1", links={"a:eth1--b:eth1": LinkEntry(101, {"arv1": "a", "arv2": "b"}),
                                      "c:e1--d:e1": LinkEntry(None, {"arv3": None})}, hints={"x": 120})
    back = parse_reservation(rec.to_json(), "lab-1")
    assert back.links == rec.links and back.hints == rec.hints
    assert back.tags() == {"a:eth1--b:eth1": 101}
    assert back.port_owners() == {"arv1": ("a:eth1--b:eth1", "a"), "arv2": ("a:eth1--b:eth1", "b"),
                                  "arv3": ("c:e1--d:e1", None)}


def test_record_short_forms_are_accepted():
    text = json.dumps({"lab_id": "l", "links": {"x": 100, "y": {"vlan": 101, "ports": ["p1", "p2"]}}})
    rec = parse_reservation(text, "l")
    assert rec.tags() == {"x": 100, "y": 101}
    assert rec.links["y"].ports == {"p1": None, "p2": None}


@pytest.mark.parametrize("text", [
    "not json",
    json.dumps({"lab_id": "other", "links": {}}),
    json.dumps({"lab_id": "l", "links": []}),
    json.dumps({"lab_id": "l", "links": {"x": {"vlan": 0}}}),
    json.dumps({"lab_id": "l", "links": {"x": {"vlan": True}}}),
    json.dumps({"lab_id": "l", "links": {"x": {"vlan": 100, "ports": 3}}}),
    json.dumps({"lab_id": "l", "links": {}, "hints": {"x": 5000}}),
])
def test_bad_records_are_refused(text):
    with pytest.raises(ValueError):  # RecordError or a JSON error
        parse_reservation(text, "l")
    assert issubclass(RecordError, ValueError)


def test_note_reports_changes_only():
    rec = Reservation("l")
    assert rec.note("x", "p1", "a")
    assert not rec.note("x", "p1", "a")
    assert not rec.note("x", "p1", None)  # an unknown node does not erase a known one
    assert rec.links["x"].ports == {"p1": "a"}
