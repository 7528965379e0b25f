"""The ``archetype`` command line (DESIGN.md, "Command line contract").

Exit codes: 0 success, 1 an operation failed, 2 invalid input (``error: ...`` on stderr).
``--json`` prints exactly one JSON document on stdout. Read-only commands (``validate``,
``vendors``, ``status``) never start Prefect; the others run the flows.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from archetype import render
from archetype.app import (
    EXIT_FAILED,
    EXIT_INVALID,
    JsonOption,
    _check_lab_id,
    _emit,
    _exit_on_errors,
    _fail,
    _run,
    _run_flow,
    app,
)


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
    from archetype.cli_fleet import fleet_labs, on_this_host
    from providers.labs import discover

    labs = fleet_labs(lab)  # a fleet: every host's labs, from the facts they publish
    if labs is None:  # this host alone
        labs = _run(lambda: on_this_host([found.as_dict() for found in discover(lab)]))
        _with_config_errors(labs)
    if lab is not None and not labs:
        _fail([f"no lab {lab!r} on this host"], EXIT_FAILED)
    _emit({"labs": labs}, as_json, render.show_status)


def _with_config_errors(labs: list[dict]) -> None:
    """Each node's startup-config lines its device refused, as this host recorded them."""
    from lab import config_errors

    for lab in labs:
        for node in lab["nodes"]:
            node["config_errors"] = config_errors.as_json(config_errors.load(lab["lab_id"], node["name"]))


@app.command()
def deploy(
    file: Path,
    from_configs: Annotated[
        bool, typer.Option("--from-configs", help="Start each node from its last extracted config (archetype configs)")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="A startup-config line a device refuses fails its node "
                           "(default: the node is ready with the rest applied and lists the line in config_errors)")
    ] = False,
    test: Annotated[bool, typer.Option("--test", help="Then run the lab's tests (validate:); a failed test fails the deploy")] = False,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Bring the lab back from this snapshot of it instead (archetype restore)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy (or converge) a lab through the deploy-lab flow."""
    from topology import load_topology

    lab = _run(lambda: load_topology(file))  # invalid input: exit 2 before Prefect starts
    if snapshot is not None:  # the file names the lab; the snapshot holds the rest
        from archetype.cli_snapshot import restore_from

        restore_from(lab.id, snapshot, as_json)
        return
    if test and not lab.checks:
        _fail(["--test: the topology has no tests (no validate: section)"], EXIT_INVALID)
    from flows.deploy_lab import deploy_lab

    result = _run_flow(as_json, deploy_lab, topology=str(file.resolve()), from_configs=from_configs, strict=strict,
                       test=test)
    _emit(result, as_json, render.show_deployed)
    _exit_on_errors(result)
    if test:
        from archetype.cli_test import finish

        finish(result["tests"], as_json, show=not as_json)  # --json: the deploy's document holds them


@app.command()
def destroy(lab: str, as_json: JsonOption = False) -> None:
    """Remove every node, port, disk and VLAN record of a lab."""
    _check_lab_id(lab)
    from flows.destroy_lab import destroy_lab

    result = _run_flow(as_json, destroy_lab, lab=lab)
    _emit(result, as_json, render.show_cleanup)
    _exit_on_errors(result)


@app.command()
def configs(
    lab: str,
    out: Annotated[str | None, typer.Option("--out", help="Folder under the workspace's configs folder (a name, or a path inside it)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Pull every node's running configuration (files and Prefect artifacts)."""
    _check_lab_id(lab)
    from flows.extract_configs import extract_configs, output_folder

    _run(lambda: output_folder(lab, out))  # an --out outside the configs folder: exit 2 at once
    result = _run_flow(as_json, extract_configs, lab=lab, out_dir=out)
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
    from archetype.cli_fleet import connect_remote
    from providers.labs import node_session

    connect_remote(lab, node)  # a node on another host of a fleet: its own CLI there
    argv, guard = _run(lambda: node_session(lab, node))

    def attached() -> int:
        with guard:  # a VM's console: Archetype's own sessions wait while the person is on it
            return subprocess.call(argv)

    raise typer.Exit(_run(attached))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address of the local Prefect server (when PREFECT_API_URL is unset)")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port of the local Prefect server [default: ARCHETYPE_SERVER_PORT, 4200]")] = None,
) -> None:
    """Serve every flow as a deployment on this host (cleanup-orphans on a cron schedule).

    With PREFECT_API_URL set, the deployments go to that server; otherwise to the local
    server the CLI uses (started if none answers; API auth on; loopback unless --host).
    """
    from deployments.serve import serve_all

    _run(lambda: serve_all(host, port))


def main() -> None:
    from lab.errors import SettingsError
    from lab.settings import get_settings

    try:
        workspace = get_settings().workspace
    except SettingsError as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(EXIT_INVALID) from None
    # Embedded mode keeps Prefect's database with the host's labs, not in ~/.prefect.
    os.environ.setdefault("PREFECT_HOME", str(workspace / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    app()


import archetype.cli_controls  # noqa: E402,F401 - registers `node`, `link`, `exec`, `capture`
import archetype.cli_fleet  # noqa: E402,F401 - registers `hosts` (multi-host)
import archetype.cli_mgmt  # noqa: E402,F401 - registers inventory, save, graph
import archetype.cli_migrate  # noqa: E402,F401 - registers `migrate` (moving nodes)
import archetype.cli_server  # noqa: E402,F401 - registers `archetype server`
import archetype.cli_snapshot  # noqa: E402,F401 - registers snapshot, snapshots, restore
import archetype.cli_test  # noqa: E402,F401 - registers `test` (a lab's validate: tests)
