"""The ``archetype`` command line (DESIGN.md, "Command line contract").

Exit codes: 0 success, 1 an operation failed, 2 invalid input (``error: ...`` on stderr).
``--json`` prints exactly one JSON document on stdout. Read-only commands (``validate``,
``vendors``, ``status``) never start Prefect; the others run the flows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from archetype import render
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


@app.command()
def validate(file: Path, as_json: JsonOption = False) -> None:
    """Check a topology file; report every problem at once."""
    from topology import load_topology

    lab = _run(lambda: load_topology(file))
    for warning in lab.warnings:
        typer.echo(f"warning: {warning}", err=True)
    result = render.lab_summary(lab)
    _emit(result, as_json, render.show_validated)


@app.command()
def vendors(as_json: JsonOption = False) -> None:
    """The device catalog: each kind with its provider and capabilities."""
    _emit(render.catalog_summary(), as_json, render.show_vendors)


@app.command()
def status(lab: Annotated[str | None, typer.Argument(help="Only this lab")] = None, as_json: JsonOption = False) -> None:
    """What Archetype runs on this host, from the live runtimes."""
    from providers.inventory import discover_all

    labs = _run(lambda: discover_all(lab))
    if lab is not None and not labs:
        _fail([f"no lab {lab!r} on this host"], EXIT_FAILED)
    _emit({"labs": labs}, as_json, render.show_status)


@app.command()
def deploy(
    file: Path,
    from_configs: Annotated[
        bool, typer.Option("--from-configs", help="Start each node from its last extracted config (archetype configs)")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Deploy (or converge) a lab through the deploy-lab flow."""
    from topology import load_topology

    _run(lambda: load_topology(file))  # invalid input: exit 2 before Prefect starts
    from flows.deploy_lab import deploy_lab

    result = _run_flow(as_json, deploy_lab, topology=str(file.resolve()), from_configs=from_configs)
    _emit(result, as_json, render.show_deployed)
    _exit_on_errors(result)


@app.command()
def destroy(lab: str, as_json: JsonOption = False) -> None:
    """Remove every node, port, disk and VLAN record of a lab."""
    _check_lab_id(lab)
    from flows.destroy_lab import destroy_lab

    result = _run_flow(as_json, destroy_lab, lab=lab)
    _emit(result, as_json, render.show_cleanup)
    _exit_on_errors(result)


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


@app.command()
def configs(
    lab: str,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the config files")] = None,
    as_json: JsonOption = False,
) -> None:
    """Pull every node's running configuration (files and Prefect artifacts)."""
    _check_lab_id(lab)
    from flows.extract_configs import extract_configs

    out_dir = str(out.resolve()) if out else None
    result = _run_flow(as_json, extract_configs, lab=lab, out_dir=out_dir)
    _emit(result, as_json, render.show_configs)
    if not result["configs"] or not all(c["ok"] for c in result["configs"].values()):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def cleanup(
    known: Annotated[list[str] | None, typer.Option("--known", help="A lab to keep (repeatable)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove Archetype-owned resources whose lab is not known."""
    for lab in known or []:
        _check_lab_id(lab)
    from flows.cleanup_orphans import cleanup_orphans

    result = _run_flow(as_json, cleanup_orphans, known_lab_ids=known or [], dry_run=dry_run)
    _emit(result, as_json, render.show_cleanup)
    _exit_on_errors(result)


@app.command()
def connect(lab: str, node: str) -> None:
    """An interactive session on a node: its shell (container) or serial console (VM); Ctrl-] detaches."""
    from providers.inventory import connect_session

    argv, guard = _run(lambda: connect_session(lab, node))

    def attached() -> int:
        with guard:  # a VM's console: Archetype's own sessions wait while the person is on it
            return subprocess.call(argv)

    raise typer.Exit(_run(attached))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address of the local Prefect server (when PREFECT_API_URL is unset)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the local Prefect server")] = 4200,
) -> None:
    """Serve every flow as a deployment on this host (cleanup-orphans on a cron schedule).

    With PREFECT_API_URL set, the deployments go to that server; otherwise a server is
    started on loopback first.
    """
    from deployments.serve import serve_all

    serve_all(host, port)


def _check_lab_id(lab: str) -> None:
    from lab.names import is_valid_lab_id

    if not is_valid_lab_id(lab):
        _fail([f"invalid lab id {lab!r}"], EXIT_INVALID)


def _exit_on_errors(result: dict[str, Any]) -> None:
    if result.get("errors"):
        _fail(result["errors"], EXIT_FAILED)


def _quiet_flow(as_json: bool, run: Callable[[], Any]) -> Any:
    """With --json, stdout carries only the document: Prefect's console logs go to stderr."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # Prefect's heartbeat thread makes every flow run end on its next whole second (0.5 s
    # more on average, docs/performance.md). It feeds the zombie detection of worker runs;
    # the user of a command-line run sees its end: none here.
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        if not as_json:
            return render.with_progress(run)
        stdout = sys.stdout
        sys.stdout = sys.stderr
        try:
            return run()
        finally:
            sys.stdout = stdout


def main() -> None:
    from lab.settings import get_settings

    # Embedded mode keeps Prefect's database with the host's labs, not in ~/.prefect.
    os.environ.setdefault("PREFECT_HOME", str(get_settings().workspace / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    app()


from archetype import cli_mgmt  # noqa: E402,F401 - registers inventory, save, graph
