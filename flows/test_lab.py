"""test-lab: run a lab's tests (its topology's ``validate:``, recorded by its deploy): each
test on each of its nodes as a task retried until the test's ``wait`` runs out, tests in
their order (a failed ``stop_on_error`` test stops the ones after it). The results are the
table artifact ``lab-{lab}-tests``, beside the lab's state; the run fails when a test failed.

Nodes on other hosts of a fleet are tested there, by that host's ``test-slice`` run.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.settings import get_settings
from lab.state import LabState
from tasks.checks import CheckNotMet, count, load_checks, publish_results, retries_for, run_check
from tasks.controls import check_lab, node_record
from tasks.labs import live_node_refs
from tasks.state import load_lab_state
from topology import Lab
from topology.checks import Check

NOT_RUN = "not run"


@flow(name="test-lab", flow_run_name="test-lab/{lab}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def test_lab(lab: str, tests: list[str] | None = None, node: str | None = None) -> dict[str, Any]:
    """Run the lab's tests and publish their results.

    Args:
        lab: the lab id.
        tests: only these tests (default: every test of the lab's topology).
        node: only on this node.
    """
    state, checks = requested(lab, tests or [], node)
    here = get_settings().host_name
    placed = {record.name: record.host or here for record in state.nodes}
    hosts = sorted({placed[n] for c in checks for n in c.nodes} - {here})
    elsewhere = start_on_hosts(lab, checks, node, hosts) if hosts else {}
    rows = run_here(lab, checks, {n for n, h in placed.items() if h == here})
    rows += rows_from_hosts(elsewhere, checks, placed)
    order = [(c.name, n) for c in checks for n in c.nodes]  # the topology's order, whichever host ran it
    rows.sort(key=lambda r: order.index((r["test"], r["node"])) if (r["test"], r["node"]) in order else len(order))
    publish_results(lab, rows)
    counts = count(rows)
    result = {"lab_id": lab, "passed": counts["failed"] == 0, "counts": counts, "results": rows}
    if counts["failed"]:
        failed = [f"{r['test']} on {r['node']}" for r in rows if r["result"] == "failed"]
        return Failed(message=f"lab {lab}: {len(failed)} test(s) failed: {', '.join(failed)}"[:1000], data=result)
    return result


def requested(lab: str, tests: list[str], node: str | None) -> tuple[LabState, list[Check]]:
    """The lab's state and the tests to run; ``TopologyError`` (invalid input) for a lab not
    deployed, a node it does not have, a test it does not have."""
    state = check_lab(lab, load_lab_state(lab))
    if node is not None:
        node_record(state, node)
    return state, chosen_checks(lab, load_checks(lab), tests, node)


def chosen_checks(lab: str, recorded: list[Check] | None, names_: list[str], node: str | None) -> list[Check]:
    """The tests to run (only the named ones; only on ``node``), in the topology's order.
    Unknown tests, or none left to run: ``TopologyError`` (invalid input)."""
    if recorded is None:
        raise TopologyError([f"lab: {lab} has no tests recorded: deploy it again (its topology's validate: "
                             "section is recorded at deploy)"])
    if not recorded:
        raise TopologyError([f"lab: {lab} has no tests (its topology has no validate: section)"])
    known = [c.name for c in recorded]
    unknown = [t for t in names_ if t not in known]
    if unknown:
        raise TopologyError([f"tests: lab {lab} has no test {t!r} (its tests: {', '.join(known)})" for t in unknown])
    chosen = [c for c in recorded if not names_ or c.name in names_]
    if node is not None:
        chosen = [c.model_copy(update={"commands": {node: c.commands[node]}}) for c in chosen if node in c.commands]
        if not chosen:
            raise TopologyError([f"node: no test of lab {lab} runs on {node}"])
    return chosen


def run_here(lab: str, checks: list[Check], local: set[str]) -> list[dict[str, Any]]:
    """The tests on this host's nodes, test after test, each test's nodes at once."""
    wanted = {n for c in checks for n in c.nodes if n in local}
    if not wanted:
        return []
    refs, unknown = live_node_refs(lab)  # what runs here, with its catalog entry
    running = {ref.name: ref for ref in refs}
    host = get_settings().host_name
    rows: list[dict[str, Any]] = []
    stopped_by: str | None = None
    for check in checks:
        mine = [n for n in check.nodes if n in local]
        if stopped_by is not None:
            rows += [_row(check.name, n, host, NOT_RUN, 0, 0.0, f"{stopped_by} failed (stop_on_error)") for n in mine]
            continue
        started = time.time()
        futures = {n: run_check.with_options(**retries_for(check)).submit(lab, check, running[n], started)
                   for n in mine if n in running}
        for name in mine:
            if name not in running:
                why = unknown.get(name, "not running on this host")
                rows.append(_row(check.name, name, host, "failed", 0, 0.0, why))
            else:
                rows.append(_outcome(check, name, host, futures[name], started))
        if check.stop_on_error and any(r["result"] == "failed" for r in rows if r["test"] == check.name):
            stopped_by = check.name
    return rows


def _outcome(check: Check, node: str, host: str, future: Any, started: float) -> dict[str, Any]:
    future.wait()
    if future.state.is_completed():
        done = future.result()
        return _row(check.name, node, host, "passed", done["tries"], done["seconds"], done["detail"])
    err = future.result(raise_on_failure=False)
    seconds = round(time.time() - started, 2)
    if isinstance(err, CheckNotMet):
        return _row(check.name, node, host, "failed", err.tries, seconds, err.detail)
    return _row(check.name, node, host, "failed", 1, seconds, str(err) or err.__class__.__name__)


def _row(test: str, node: str, host: str, result: str, tries: int, seconds: float, detail: str) -> dict[str, Any]:
    return {"test": test, "node": node, "host": host, "result": result, "tries": tries, "seconds": seconds,
            "detail": detail[:1000]}


def start_on_hosts(lab: str, checks: list[Check], node: str | None, hosts: list[str]) -> dict[str, Any]:
    """Each other host's test-slice run (started now, while this host runs its own nodes'
    tests): host -> its future, or the reason it cannot be reached."""
    from flows.fleet import fleet_hosts, host_step

    if not fleet_hosts():
        return {h: f"on host {h}, and no fleet server to reach it" for h in hosts}
    names_ = [c.name for c in checks]
    return {h: host_step.submit("tests", "test-slice", h, {"lab_id": lab, "host": h, "tests": names_, "node": node},
                                lab) for h in hosts}


def rows_from_hosts(started: dict[str, Any], checks: list[Check], placed: dict[str, str]) -> list[dict[str, Any]]:
    """The other hosts' result rows; a host that failed its step fails each of its tests."""
    rows = []
    for host, future in started.items():
        report = {"error": future} if isinstance(future, str) else future.result()
        if "error" in report:
            rows += [_row(c.name, n, host, "failed", 0, 0.0, report["error"])
                     for c in checks for n in c.nodes if placed.get(n) == host]
        rows += report.get("results", [])
    return rows


@flow(name="test-slice", flow_run_name="test-slice/{lab_id}/{host}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def test_slice(lab_id: str, host: str, tests: list[str], node: str | None = None) -> dict[str, Any]:
    """This host's part of a multi-host lab's tests (run by the coordinating test-lab)."""
    from tasks.hosts import publish_report

    if host != get_settings().host_name:
        raise ArchetypeError(f"this step is for host {host}, and this is {get_settings().host_name}")
    state = check_lab(lab_id, load_lab_state(lab_id))
    checks = chosen_checks(lab_id, load_checks(lab_id), tests, node)
    rows = run_here(lab_id, checks, {r.name for r in state.nodes if r.host == host})
    report = {"results": rows}
    publish_report(names.host_report_key(lab_id, "tests", host), report)
    return report


def check_testable(lab: Lab) -> None:
    """``deploy --test`` of a topology without tests is invalid input, refused before anything is made."""
    if not lab.checks:
        raise TopologyError(["validate: the topology has no tests to run (--test / test=True)"])


def after_deploy(lab_id: str, outcome: Any) -> Any:
    """``deploy-lab --test``: the lab's tests once it is deployed; the deploy fails when one
    does. A failed deploy is not tested. The tests' result is the deploy's ``tests``."""
    if not isinstance(outcome, dict):  # a Failed state: the deploy failed
        return outcome
    try:
        state = test_lab(lab=lab_id, return_state=True)
        tests = state.result(raise_on_failure=False)
    except ArchetypeError as err:
        tests = err
    if isinstance(tests, BaseException):
        get_run_logger().error("tests of lab %s: %s", lab_id, tests)
        return Failed(message=f"lab {lab_id}: tests: {tests}"[:1000], data={**outcome, "errors": [f"tests: {tests}"]})
    outcome = {**outcome, "tests": tests}
    if not tests["passed"]:
        failed = ", ".join(f"{r['test']} on {r['node']}" for r in tests["results"] if r["result"] == "failed")
        return Failed(message=f"lab {lab_id}: test(s) failed: {failed}"[:1000], data=outcome)
    return outcome
