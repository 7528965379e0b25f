"""``archetype test LAB [TEST...] [--node N] [--junit FILE] [--json]``: a lab's tests (its
topology's ``validate:``) through the test-lab flow. Exit 0 when every test passed, 1 when
one failed (each named on stderr with its node), 2 on invalid input (an unknown lab, test or
node). ``--junit`` writes a JUnit XML file for CI: a testsuite for the lab, a testcase per
test and node."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, Any

import typer

from archetype import render
from archetype.app import (
    EXIT_FAILED,
    EXIT_INVALID,
    JsonOption,
    _check_lab_id,
    _emit,
    _fail,
    _quiet_flow,
    _run,
    _run_flow,
    app,
)


@app.command(name="test")
def test_lab_command(
    lab: str,
    tests: Annotated[list[str] | None, typer.Argument(help="Only these tests (default: all)")] = None,
    node: Annotated[str | None, typer.Option("--node", help="Only on this node")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write the results as a JUnit XML file")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a lab's tests (the validate: section of its topology) on its nodes."""
    from lab.names import is_valid_node_name

    _check_lab_id(lab)
    if node is not None and not is_valid_node_name(node):
        _fail([f"--node: invalid node name {node!r}"], EXIT_INVALID)
    if junit is not None and not junit.parent.is_dir():
        _fail([f"--junit: no folder {junit.parent}"], EXIT_INVALID)
    from flows.test_lab import requested, test_lab

    _run(lambda: _quiet_flow(True, lambda: requested(lab, list(tests or []), node)))  # invalid input: exit 2 at once
    result = _run_flow(as_json, test_lab, lab=lab, tests=list(tests or []), node=node)
    finish(result, as_json, junit)


def finish(result: dict[str, Any], as_json: bool, junit: Path | None = None, *, show: bool = True) -> None:
    """Write the JUnit file, print the results, name each failed test and node on stderr and
    exit 1 when one failed (also ``deploy --test``'s end, with the deploy's ``tests``)."""
    if junit is not None:
        write_junit(result, junit)
    if show:
        _emit(result, as_json, show_tests)
    failed = [r for r in result["results"] if r["result"] == "failed"]
    if failed:
        _fail([f"test {r['test']} failed on {r['node']}: {r['detail']}" for r in failed], EXIT_FAILED)


def show_tests(result: dict[str, Any]) -> None:
    counts = result["counts"]
    render._table(
        f"tests of {result['lab_id']}: {counts['passed']} passed, {counts['failed']} failed"
        + (f", {counts['not run']} not run" if counts["not run"] else ""),
        ["test", "node", "result", "tries", "seconds", "detail"],
        [[r["test"], r["node"], r["result"], str(r["tries"]), f"{r['seconds']:.1f}", _short(r["detail"])]
         for r in result["results"]],
    )


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def junit_tree(result: dict[str, Any]) -> ET.ElementTree:
    """A testsuite for the lab, a testcase per test and node (classname ``LAB.TEST``, name
    the node): a failed one carries a ``failure``, one not run a ``skipped``."""
    rows, counts = result["results"], result["counts"]
    total = f"{sum(r['seconds'] for r in rows):.2f}"
    attributes = {"tests": str(len(rows)), "failures": str(counts["failed"]), "errors": "0",
                  "skipped": str(counts["not run"]), "time": total}
    suites = ET.Element("testsuites", {"name": "archetype", **attributes})
    suite = ET.SubElement(suites, "testsuite", {"name": result["lab_id"], **attributes})
    for row in rows:
        case = ET.SubElement(suite, "testcase", {"classname": f"{result['lab_id']}.{row['test']}", "name": row["node"],
                                                 "time": f"{row['seconds']:.2f}"})
        if row["result"] == "failed":
            failure = ET.SubElement(case, "failure", {"message": row["detail"][:200], "type": "TestFailed"})
            failure.text = f"{row['detail']}\n(tries: {row['tries']}, host: {row.get('host', '')})"
        elif row["result"] == "not run":
            ET.SubElement(case, "skipped", {"message": row["detail"][:200]})
        else:
            ET.SubElement(case, "system-out").text = f"{row['detail']}\n(tries: {row['tries']})"
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(result: dict[str, Any], path: Path) -> None:
    try:
        junit_tree(result).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as err:
        _fail([f"--junit: cannot write {path}: {err}"], EXIT_FAILED)
