"""Snapshots from the command line: ``snapshot LAB [--name NAME] | --delete NAME``,
``snapshots [LAB]`` and ``restore LAB NAME [--to HOST] [--force]``. Taking and restoring
run the snapshot-lab and restore-lab flows here; listing and deleting read the workspace
(on a fleet, also the server's record of which host holds each snapshot, and that host's
workspace through its access). ``snapshot-send`` / ``snapshot-receive`` (hidden) carry a
snapshot between two hosts' workspaces as a tar stream on stdout / stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated, Any

import typer

from archetype.app import (
    EXIT_FAILED,
    EXIT_INVALID,
    JsonOption,
    _check_lab_id,
    _emit,
    _fail,
    _run,
    _run_flow,
    app,
)


def _check_name(name: str, option: str) -> None:
    from lab.snapshots import NAME_RE

    if not NAME_RE.match(name):
        _fail([f"{option}: invalid snapshot name {name!r} (lowercase letters, digits and dashes, "
               "starting with a letter, at most 20)"], EXIT_INVALID)


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _age(seconds: int) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds // span}{unit} ago"
    return f"{seconds}s ago"


def show_snapshot(result: dict[str, Any]) -> None:
    if result.get("deleted"):
        typer.echo(f"deleted snapshot {result['name']} of {result['lab_id']}")
        return
    paused = ", ".join(f"{n} {s:.1f} s" for n, s in result.get("paused_seconds", {}).items())
    typer.echo(f"snapshot {result['name']} of {result['lab_id']}: {_size(result['size_bytes'])} in "
               f"{result['seconds']:.1f} s at {result['path']}" + (f" (VMs paused: {paused})" if paused else ""))


def show_snapshots(result: dict[str, Any]) -> None:
    rows = result["snapshots"]
    if not rows:
        typer.echo("no snapshots")
        return
    typer.echo(f"{'LAB':<20} {'NAME':<20} {'SIZE':>10}  {'AGE':<10} {'HOST':<16} NODES")
    for row in rows:
        typer.echo(f"{row['lab_id']:<20} {row['name']:<20} {_size(row['size_bytes']):>10}  "
                   f"{_age(row['age_seconds']):<10} {row.get('host') or '-':<16} {' '.join(row['nodes'])}")


def show_restored(result: dict[str, Any]) -> None:
    vms = ", ".join(f"{n} {s:.1f} s" for n, s in result.get("vm_restore_seconds", {}).items())
    where = f" on {result['host']}" + (f" (copied from {result['copied_from']})" if result.get("copied_from") else "")
    typer.echo(f"lab {result['lab_id']} restored from {result['snapshot']}{where if result.get('host') else ''} in "
               f"{result['seconds']:.1f} s" + (f" (VMs resumed: {vms})" if vms else ""))
    for node in result.get("nodes", []):
        typer.echo(f"  {node['name']:<16} {node['kind']:<12} {node['state']}")


@app.command()
def snapshot(
    lab: str,
    name: Annotated[str | None, typer.Option("--name", help="The snapshot's name [default: sYYYYMMDD-HHMMSS]")] = None,
    delete: Annotated[str | None, typer.Option("--delete", help="Remove this snapshot of the lab instead")] = None,
    as_json: JsonOption = False,
) -> None:
    """Freeze a running lab (VM memory and disks, container configs, links, addresses)."""
    _check_lab_id(lab)
    for value, option in ((name, "--name"), (delete, "--delete")):
        if value is not None:
            _check_name(value, option)
    if delete is not None:
        if name is not None:
            _fail(["--name and --delete: one or the other"], EXIT_INVALID)
        _emit(_delete(lab, delete), as_json, show_snapshot)
        return
    from flows.snapshot_lab import snapshot_lab

    result = _run_flow(as_json, snapshot_lab, lab=lab, name=name)
    _emit(result, as_json, show_snapshot)


@app.command()
def snapshots(lab: Annotated[str | None, typer.Argument()] = None, as_json: JsonOption = False) -> None:
    """The snapshots of a lab (or of every lab), with their size and age."""
    if lab is not None:
        _check_lab_id(lab)
    from lab.snapshots import list_snapshots

    rows = _run(lambda: list_snapshots(lab))
    rows += [r for r in _fleet_rows(lab) if (r["lab_id"], r["name"]) not in {(x["lab_id"], x["name"]) for x in rows}]
    if as_json:
        typer.echo(json.dumps({"snapshots": rows}, indent=2))
    else:
        show_snapshots({"snapshots": rows})


@app.command()
def restore(
    lab: str,
    name: str,
    to: Annotated[str | None, typer.Option("--to", help="The host to restore on [default: this host]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Restore over the lab if it runs (it is destroyed first)")] = False,
    as_json: JsonOption = False,
) -> None:
    """Bring a lab back from a snapshot: VMs resume (no boot), containers from their saved configs."""
    _check_lab_id(lab)
    _check_name(name, "NAME")
    from lab import names

    if to is not None and not names.is_valid_host_name(to):
        _fail([f"--to: invalid host name {to!r}"], EXIT_INVALID)
    restore_from(lab, name, as_json, force=force, to=to)


def restore_from(lab: str, name: str, as_json: bool, *, force: bool = False, to: str | None = None) -> None:
    """The restore-lab flow, its document or table, exit 1 on errors (``restore`` and
    ``deploy FILE --snapshot NAME``)."""
    _check_name(name, "snapshot name")
    from flows.restore_lab import restore_lab

    result = _run_flow(as_json, restore_lab, lab=lab, name=name, force=force, to_host=to)
    _emit(result, as_json, show_restored)
    if result.get("errors"):
        _fail(result["errors"], EXIT_FAILED)


def _fleet_rows(lab: str | None) -> list[dict[str, Any]]:
    """The fleet's records of snapshots other hosts hold (none on a single host: no
    PREFECT_API_URL, and listing starts no local server)."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        return []
    from flows.snapshot_fleet import fleet_snapshot_rows

    return _run(lambda: fleet_snapshot_rows(lab))


def _delete(lab: str, name: str) -> dict[str, Any]:
    """Remove the snapshot here, or on the fleet host that holds it (its CLI, through its
    access), and the fleet's record of it."""
    from lab import snapshots as store

    if store.snapshot_dir(lab, name).is_dir():
        path = _run(lambda: store.delete_snapshot(lab, name))
        if _fleet_rows(lab):
            from flows.snapshot_fleet import forget_snapshot

            forget_snapshot(lab, name)
        return {"lab_id": lab, "name": name, "deleted": True, "path": str(path)}
    holder = next((r["host"] for r in _fleet_rows(lab) if r["name"] == name), None)
    if holder is None:
        _fail([f"lab {lab} has no snapshot {name!r} (archetype snapshots {lab})"], EXIT_INVALID)
    from flows.snapshot_fleet import forget_snapshot, host_cli

    argv = _run(lambda: host_cli(holder))
    done = subprocess.run([*argv, "snapshot", lab, "--delete", name, "--json"],  # noqa: S603 - our CLI's argv
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode == EXIT_INVALID:  # gone from there already (removed by hand): only the record was left
        forget_snapshot(lab, name)
    if done.returncode != 0:
        _fail([f"host {holder}: {done.stderr.strip() or 'delete failed'}"], done.returncode)
    forget_snapshot(lab, name)
    return {"lab_id": lab, "name": name, "deleted": True, "path": None, "host": holder}


@app.command("snapshot-send", hidden=True)
def snapshot_send(lab: str, name: str) -> None:
    """Write a snapshot of this host's workspace to stdout, as a tar stream (checked first)."""
    _check_lab_id(lab)
    _check_name(name, "NAME")
    from lab import snapshot_transfer

    _run(lambda: snapshot_transfer.send(lab, name, sys.stdout.buffer))
    sys.stdout.buffer.flush()


@app.command("snapshot-receive", hidden=True)
def snapshot_receive(lab: str, name: str) -> None:
    """Read a snapshot's tar stream on stdin into this host's workspace (checked, then renamed in)."""
    _check_lab_id(lab)
    _check_name(name, "NAME")
    from lab import snapshot_transfer

    result = _run(lambda: snapshot_transfer.receive(lab, name, sys.stdin.buffer))
    typer.echo(json.dumps(result))
