"""Tasks of a lab's tests (topology/checks.py): the tests recorded at deploy, one test on one
node as a task retried until its ``wait`` runs out, and the results as a table artifact."""

from __future__ import annotations

import json
import math
import shlex
import time
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import Artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from lab.errors import ArchetypeError
from lab.settings import get_settings
from providers import provider_of
from topology import NodeRef
from topology.checks import Check

RETRY_SECONDS = 2.0  # between two tries of a test that has a `wait`


def checks_key(lab_id: str) -> str:
    """The lab's tests as its deploy recorded them (beside ``lab-{lab}-state``)."""
    return f"lab-{lab_id}-checks"


def results_key(lab_id: str) -> str:
    """The last test run's results."""
    return f"lab-{lab_id}-tests"


def publish_checks(lab_id: str, checks: tuple[Check, ...] | list[Check]) -> None:
    """The topology's tests, one row each: a person reads them in the UI, ``test-lab``
    reads the ``spec`` column back. A lab without tests gets an empty table (a redeploy
    without them forgets the old ones)."""
    rows = [{"test": c.name, "description": c.description, "nodes": " ".join(c.nodes),
             "expect": "; ".join(e.describe() for e in c.expect) or "the command succeeds",
             "wait_s": c.wait, "stop_on_error": c.stop_on_error, "spec": c.model_dump_json()} for c in checks]
    create_table_artifact(rows, key=checks_key(lab_id),
                          description=f"Tests of lab **{lab_id}** (`validate:` of its topology), run by test-lab")


def load_checks(lab_id: str) -> list[Check] | None:
    """The tests the lab's last deploy recorded; None when no deploy recorded any (a lab
    deployed before tests were recorded)."""
    artifact = Artifact.get(checks_key(lab_id))
    if artifact is None or artifact.data is None:
        return None
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return [Check.model_validate_json(str(row["spec"])) for row in rows]


def publish_results(lab_id: str, rows: list[dict[str, Any]]) -> None:
    counts = count(rows)
    create_table_artifact(
        rows, key=results_key(lab_id),
        description=f"Tests of lab **{lab_id}**: " + ", ".join(f"{n} {what}" for what, n in counts.items() if n),
    )


def count(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {what: sum(r["result"] == what for r in rows) for what in ("passed", "failed", "not run")}


class CheckNotMet(ArchetypeError):
    """A try of a test found the node not as expected (``detail``); retried until ``deadline``."""

    def __init__(self, detail: str, deadline: float, tries: int) -> None:
        super().__init__(detail)
        self.detail, self.deadline, self.tries = detail, deadline, tries

    def __reduce__(self) -> tuple[Any, ...]:  # a failed task's exception is stored as its result
        return (CheckNotMet, (self.detail, self.deadline, self.tries))


class Mismatch(Exception):
    """The command failed, or its output is not as a test expects."""


def _until_deadline(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a test whose expectation was not met while its wait lasts; nothing else."""
    err = state.result(raise_on_failure=False)
    return isinstance(err, CheckNotMet) and time.time() + RETRY_SECONDS <= err.deadline


def try_check(lab_id: str, check: Check, node: NodeRef) -> str:
    """One try: the command on the node, then every expectation. Returns the output's
    parts that matched; raises ``Mismatch`` saying what was found instead."""
    command = check.commands[node.name]
    argv = shlex.split(command) if node.vendor.container is not None else [command]
    result = provider_of(node).run_command(lab_id, node, argv, get_settings().command_timeout)
    if result.exit_code is None:
        raise Mismatch(f"{command!r} timed out after {result.seconds:.0f} s")
    if result.exit_code != 0:
        raise Mismatch(f"{command!r} exited with {result.exit_code}: {' '.join(result.output.split())[-300:]}")
    matched = []
    for expectation in check.expect:
        holds, detail = expectation.holds(result.output)
        if not holds:
            raise Mismatch(f"expected {expectation.describe()}: {detail}")
        matched.append(detail)
    return "; ".join(matched) or f"{command!r} exited with 0"


def retries_for(check: Check) -> dict[str, Any]:
    """Task options: as many retries as the wait holds (the deadline ends them exactly)."""
    return {"retries": math.ceil(check.wait / RETRY_SECONDS) + 1 if check.wait else 0,
            "retry_delay_seconds": RETRY_SECONDS, "retry_condition_fn": _until_deadline}


@task(name="run-test", task_run_name="test/{check.name}/{node.name}", cache_policy=NO_CACHE)
def run_check(lab_id: str, check: Check, node: NodeRef, started: float) -> dict[str, Any]:
    """One test on one node; a try that finds the node not as expected fails the task run,
    which Prefect retries until the test's wait (from ``started``) runs out."""
    from prefect.runtime import task_run

    try:
        detail = try_check(lab_id, check, node)
    except (Mismatch, ArchetypeError) as err:  # a node not reachable yet is a try that failed too
        raise CheckNotMet(str(err), started + check.wait, task_run.run_count) from None  # Prefect logs it
    get_run_logger().info("%s on %s passed (try %d): %s", check.name, node.name, task_run.run_count, detail)
    return {"tries": task_run.run_count, "seconds": round(time.time() - started, 2), "detail": detail}
