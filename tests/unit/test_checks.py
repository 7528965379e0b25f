"""The topology's `validate:` tests: parsing (every problem with its place, netlab's fields
warned), the expectations' evaluation (data, never code), and the JUnit file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archetype.cli_test import junit_tree
from tests.support.topology_text import lab_of, problems_of
from topology.checks import Expectation, select

LAB = """
    name: checks
    topology:
      nodes:
        r1: {kind: frr}
        r2: {kind: frr}
        h1: {kind: linux}
        v1: {kind: mini-ios}
      links:
        - endpoints: ["r1:eth1", "r2:eth1"]
"""

OSPF = {"neighbors": {"10.0.0.2": [{"nbrState": "Full/-", "converged": "Full", "routerDeadIntervalTimerDueMsec": 31000}],
                      "10.0.0.3": [{"nbrState": "Full/DR", "converged": "Full"}]}}


def test_a_test_resolves_to_a_command_per_node(tmp_path: Path) -> None:
    lab = lab_of(LAB + """
    validate:
      ospf:
        description: Full neighbours
        nodes: [r1, r2]
        wait: 30
        stop_on_error: true
        show: vtysh -c 'show ip ospf neighbor json'
        expect:
          - json: neighbors
            at_least: 1
          - json: neighbors.*.0.converged
            equals: Full
      version:
        show: {frr: "vtysh -c 'show version'", mini-ios: show version, srl: show version}
        expect: {contains: FRR}
      ping:
        nodes: h1
        exec: ping -c 1 10.0.0.1
    """, tmp_path)
    ospf, version, ping = lab.checks
    assert (ospf.name, ospf.nodes, ospf.wait, ospf.stop_on_error) == ("ospf", ["r1", "r2"], 30.0, True)
    assert [e.describe() for e in ospf.expect] == ["json neighbors at_least 1", "json neighbors.*.0.converged equals 'Full'"]
    # per kind (an alias too): the nodes of those kinds, in the lab's order
    assert version.commands == {"r1": "vtysh -c 'show version'", "r2": "vtysh -c 'show version'", "v1": "show version"}
    assert ping.commands == {"h1": "ping -c 1 10.0.0.1"} and ping.expect == []


def test_every_problem_of_the_section_is_named_at_once(tmp_path: Path) -> None:
    problems = problems_of(LAB + """
    validate:
      bad:
        nodes: [r1, r9]
        exec: true
        expect: [{json: "a..b", equals: 1}, {regex: "("}, {equals: 3}, {contains: x, regex: y}, {matches: z},
                 {json: x, at_least: many}]
        wait: -1
        stop_on_error: maybe
        wiat: 3
      both: {exec: ls, show: ls}
      nothing: {description: no command}
      kinds: {show: {nosuchkind: ls}}
      split: {nodes: [r1], exec: "sh -c 'unterminated"}
      uncovered: {nodes: [h1], show: {frr: ls}}
      "bad name!": {exec: ls}
    """, tmp_path)
    expected = [
        "validate.bad.wiat: unknown field 'wiat'",
        "validate.bad.nodes: unknown node(s) r9",
        "validate.bad.expect[0].json: must be a key path",
        "validate.bad.expect[1].regex: invalid regular expression '('",
        "validate.bad.expect[2]: over text: contains or regex",
        "validate.bad.expect[3]: one comparison per expectation, not contains, regex",
        "validate.bad.expect[4]: unknown field(s) matches",
        "validate.bad.expect[5].at_least: must be a number",
        "validate.bad.wait: must be a number of seconds",
        "validate.bad.stop_on_error: must be true or false",
        "validate.both: give show or exec, not both",
        "validate.nothing: give the command to run: show or exec",
        "validate.kinds.show.nosuchkind: unknown kind 'nosuchkind'",
        "validate.split.exec: cannot split",
        "validate.uncovered.show: no command for node h1's kind linux",
        "validate.bad name!: invalid test name",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)


def test_netlab_fields_are_warned_and_a_plugin_test_is_left_to_netlab(tmp_path: Path) -> None:
    lab = lab_of(LAB + """
    validate:
      adj:
        description: netlab's own form
        nodes: [r1]
        plugin: ospf_neighbor(nodes.r2.ospf.router_id)
        level: warning
      text:
        nodes: [r1]
        devices: [frr]
        exec: vtysh -c 'show ip ospf neighbor'
        valid: "'Full' in stdout"
        expect: {contains: Full}
    """, tmp_path)
    assert [c.name for c in lab.checks] == ["text"]
    assert "validate.adj.plugin: netlab field not used by Archetype, ignored: netlab's validation plugins run with " \
           "`netlab validate`" in lab.warnings
    assert any(w.startswith("validate.adj: no show or exec: not run by `archetype test`") for w in lab.warnings)
    assert any(w.startswith("validate.text.valid: netlab field not used by Archetype, ignored: a Python expression "
                            "is never evaluated") for w in lab.warnings)


def test_a_lab_without_validate_has_no_tests(tmp_path: Path) -> None:
    assert lab_of(LAB, tmp_path).checks == ()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (["neighbors", "10.0.0.2", 0, "converged"], ["Full"]),  # keys holding dots: the list form
        (["neighbors", "*", "0", "converged"], ["Full", "Full"]),
        (["neighbors", "*", -1, "nbrState"], ["Full/-", "Full/DR"]),
        (["neighbors", "10.0.0.9"], []),
        (["neighbors", "10.0.0.2", 5], []),
        (["neighbors", "10.0.0.2", "x"], []),
    ],
)
def test_a_key_path_selects_values(path: list, expected: list) -> None:
    assert select(OSPF, path) == expected


@pytest.mark.parametrize(
    ("expectation", "holds"),
    [
        (Expectation(path=["neighbors"], compare="at_least", value=2), True),
        (Expectation(path=["neighbors"], compare="at_least", value=3), False),
        (Expectation(path=["neighbors", "*", 0, "converged"], compare="equals", value="Full"), True),
        (Expectation(path=["neighbors", "*", 0, "nbrState"], compare="equals", value="Full/DR"), False),  # every value
        (Expectation(path=["neighbors", "*", 0, "nbrState"], compare="regex", value="^Full/"), True),
        (Expectation(path=["neighbors", "*", 0, "nbrState"], compare="contains", value="DR"), False),
        (Expectation(path=["neighbors", "10.0.0.2", 0, "routerDeadIntervalTimerDueMsec"], compare="at_least",
                     value=30000), True),
        (Expectation(path=["neighbors"], compare="contains", value="10.0.0.3"), True),  # a key of a mapping
        (Expectation(path=["neighbors", "10.0.0.9"], compare="exists"), False),
        (Expectation(path=["neighbors", "10.0.0.3"], compare="exists"), True),
        (Expectation(path=["neighbors", "10.0.0.3", 0, "converged"], compare="at_least", value=1), False),  # text
        (Expectation(compare="contains", value='"converged": "Full"'), True),
        (Expectation(compare="regex", value=r'"nbrState": "Full/D?R?"'), True),
        (Expectation(compare="regex", value=r"Down"), False),
    ],
)
def test_expectations_are_evaluated_as_data(expectation: Expectation, holds: bool) -> None:
    assert expectation.holds(json.dumps(OSPF))[0] is holds


def test_equals_does_not_take_true_for_one() -> None:
    assert Expectation(path=["up"], compare="equals", value=1).holds('{"up": true}')[0] is False
    assert Expectation(path=["up"], compare="equals", value=True).holds('{"up": true}')[0] is True


def test_the_relevant_part_is_what_matched_or_what_was_found() -> None:
    ok, detail = Expectation(compare="contains", value="Established").holds("peer 10.0.0.2 state Established up 3m")
    assert ok and "state Established up" in detail
    ok, detail = Expectation(path=["neighbors", "*", 0, "nbrState"], compare="equals", value="Full/DR").holds(
        json.dumps(OSPF))
    assert not ok and '"Full/-", expected "Full/DR"' in detail
    ok, detail = Expectation(path=["a"], compare="exists").holds("% Unknown command")
    assert not ok and detail.startswith("not JSON") and "Unknown command" in detail


def test_an_expression_in_the_output_or_the_expectation_is_never_run() -> None:
    # A regex or a text is matched, never evaluated: nothing here can run code.
    ok, _ = Expectation(compare="contains", value="__import__('os').system('false')").holds("nothing")
    assert not ok


def test_junit_file_has_a_suite_per_lab_and_a_case_per_test_and_node(tmp_path: Path) -> None:
    rows = [
        {"test": "ospf", "node": "r1", "host": "h", "result": "passed", "tries": 3, "seconds": 4.5, "detail": "ok"},
        {"test": "ospf", "node": "r2", "host": "h", "result": "failed", "tries": 5, "seconds": 10.0, "detail": "no <"},
        {"test": "ping", "node": "h1", "host": "h", "result": "not run", "tries": 0, "seconds": 0.0,
         "detail": "ospf failed (stop_on_error)"},
    ]
    result = {"lab_id": "lab1", "passed": False, "counts": {"passed": 1, "failed": 1, "not run": 1}, "results": rows}
    path = tmp_path / "junit.xml"
    junit_tree(result).write(path, encoding="utf-8", xml_declaration=True)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "lab1"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("lab1.ospf", "r1"), ("lab1.ospf", "r2"),
                                                                     ("lab1.ping", "h1")]
    assert cases[1].find("failure").get("message") == "no <" and cases[2].find("skipped") is not None


def _recorded(tmp_path: Path) -> list:
    return list(lab_of(LAB + """
    validate:
      ospf: {show: "vtysh -c 'show ip ospf neighbor json'", nodes: [r1, r2], expect: {json: neighbors, at_least: 1}}
      ping: {exec: ping -c 1 10.0.0.1, nodes: [h1]}
    """, tmp_path).checks)


def test_the_tests_asked_for_are_chosen_and_the_rest_is_invalid_input(tmp_path: Path) -> None:
    from flows.test_lab import chosen_checks
    from lab.errors import TopologyError

    recorded = _recorded(tmp_path)
    assert [c.name for c in chosen_checks("l", recorded, [], None)] == ["ospf", "ping"]
    assert [c.name for c in chosen_checks("l", recorded, ["ping"], None)] == ["ping"]
    only_r2 = chosen_checks("l", recorded, [], "r2")
    assert [(c.name, c.nodes) for c in only_r2] == [("ospf", ["r2"])]
    for tests, node, message in [(["nosuch"], None, "tests: lab l has no test 'nosuch' (its tests: ospf, ping)"),
                                 (["ping"], "r1", "node: no test of lab l runs on r1")]:
        with pytest.raises(TopologyError) as info:
            chosen_checks("l", recorded, tests, node)
        assert info.value.problems == [message]
    with pytest.raises(TopologyError, match="no tests recorded: deploy it again"):
        chosen_checks("l", None, [], None)
    with pytest.raises(TopologyError, match="has no tests"):
        chosen_checks("l", [], [], None)


def test_a_check_survives_its_record(tmp_path: Path) -> None:
    """What deploy-lab records (the table's spec column) reads back as the same test."""
    from topology.checks import Check

    for check in _recorded(tmp_path):
        assert Check.model_validate_json(check.model_dump_json()) == check


def test_a_failed_try_pickles_with_its_tries() -> None:
    """A failed task's exception is stored as its result: its detail and tries survive."""
    import pickle

    from tasks.checks import CheckNotMet

    again = pickle.loads(pickle.dumps(CheckNotMet("expected x", 12.5, 3)))
    assert (again.detail, again.deadline, again.tries, str(again)) == ("expected x", 12.5, 3, "expected x")
