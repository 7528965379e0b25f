"""`archetype migrate LAB NODE --to HOST`: move a node to another host of the fleet
(DESIGN.md, "Moving nodes"); the migrate-node flow, run here like deploy and destroy."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from archetype.app import (
    EXIT_INVALID,
    JsonOption,
    _check_lab_id,
    _emit,
    _exit_on_errors,
    _fail,
    _run_flow,
    app,
)


def show_migrated(result: dict[str, Any]) -> None:
    downtime = result.get("downtime_seconds")
    typer.echo(
        f"{result['node']} of {result['lab_id']}: {result['from']} -> {result['to']} ({result['mode']}) "
        f"in {result['seconds']:.1f} s" + ("" if downtime is None else f", downtime {downtime:.3f} s")
    )
    for error in result.get("errors", []):
        typer.echo(f"  warning: {error}", err=True)


@app.command()
def migrate(
    lab: str,
    node: str,
    to: Annotated[str, typer.Option("--to", help="The host it moves to (archetype hosts)")],
    as_json: JsonOption = False,
) -> None:
    """Move a running node to another host: a VM live (not rebooted), keeping its links."""
    from lab import names

    _check_lab_id(lab)
    problems = []
    if not names.is_valid_node_name(node):
        problems.append(f"invalid node name {node!r}")
    if not names.is_valid_host_name(to):
        problems.append(f"invalid host name {to!r}")
    if problems:
        _fail(problems, EXIT_INVALID)
    from flows.migrate_node import migrate_node

    result = _run_flow(as_json, migrate_node, lab=lab, node=node, to_host=to)
    _emit(result, as_json, show_migrated)
    _exit_on_errors(result)
