"""What every ``archetype`` command shares: the Typer app, the exit codes of the contract
(0 success, 1 an operation failed, 2 invalid input), JSON output and running a flow.

Command modules (``archetype/cli*.py``) import from here, never from each other, so that
``archetype.cli`` can register them without an import cycle.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from archetype import handoff, render
from lab.errors import ArchetypeError, TopologyError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Deploy network labs of containers and VMs.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]

EXIT_FAILED = 1
EXIT_INVALID = 2


def _fail(messages: list[str], code: int) -> None:
    for message in messages:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(operation: Callable[[], Any]) -> Any:
    """Run an operation, turning our errors into the exit codes of the contract."""
    try:
        return operation()
    except TopologyError as err:
        _fail(err.problems, EXIT_INVALID)
    except ArchetypeError as err:
        _fail([str(err)], EXIT_FAILED)


def _emit(result: dict[str, Any], as_json: bool, show: Callable[[dict[str, Any]], None]) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        show(result)


def _run_flow(as_json: bool, flow: Any, **parameters: Any) -> dict[str, Any]:
    """Run a flow in this process and return its result. A run that ended failed with its
    report as result (a deploy with failed nodes, a destroy that left something) returns
    that report; a run that failed with an error raises it (exit codes by ``_run``)."""
    state = _run(lambda: _quiet_flow(as_json, lambda: flow(**parameters, return_state=True)))

    def result_of() -> dict[str, Any]:
        result = state.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            raise result
        return result

    return _run(result_of)


def _check_lab_id(lab: str) -> None:
    from lab.names import is_valid_lab_id

    if not is_valid_lab_id(lab):
        _fail([f"invalid lab id {lab!r}"], EXIT_INVALID)


def _exit_on_errors(result: dict[str, Any]) -> None:
    if result.get("errors"):
        _fail(result["errors"], EXIT_FAILED)


def _quiet_flow(as_json: bool, run: Callable[[], Any]) -> Any:
    """With --json, stdout carries only the document: Prefect's console logs go to stderr."""
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    api = _prefect_api()
    # Prefect's heartbeat thread makes every flow run end on its next whole second (0.5 s
    # more on average, docs/performance.md). It feeds the zombie detection of worker runs;
    # the user of a command-line run sees its end: none here.
    settings = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_API_URL: api["PREFECT_API_URL"]}
    if api.get("PREFECT_API_AUTH_STRING"):
        settings[PREFECT_API_AUTH_STRING] = api["PREFECT_API_AUTH_STRING"]
    with temporary_settings(settings):
        if not as_json:
            return render.with_progress(run)
        stdout = sys.stdout
        sys.stdout = sys.stderr
        try:
            return run()
        finally:
            sys.stdout = stdout


def _prefect_api() -> dict[str, str]:
    """The Prefect API the flows report to: PREFECT_API_URL, or the long-lived local server
    (started by the first command that needs it, never once per command)."""
    from deployments.local_server import api_env

    def starting(address: str) -> None:
        typer.echo(handoff.SERVER_STARTING.format(address=address), err=True)

    api = _run(lambda: api_env(on_start=starting))
    os.environ.update(api)  # for anything this process starts
    return api
