"""Snapshots of a fleet's labs (DESIGN.md, "The lab after deploy"): a lab is frozen by the host
it runs on, and restored on any host of the fleet.

snapshot (from any host, the CLI or the UI): the lab runs on one host -> that host's
``snapshot-lab`` deployment takes it into its own workspace, and records on the server that
it holds it. A lab spread over several hosts is refused, nothing written (migrate its nodes onto one).

restore LAB NAME [--to HOST]: where the snapshot lives (this host's workspace, else the
server's record) -> the lab running anywhere is refused unless ``force`` (then destroyed on
every host) -> the snapshot's files go to HOST (a tar stream from the holder's CLI to HOST's,
checked on both ends; nothing is made from a damaged one) -> HOST's ``restore-lab``
deployment restores it there as a lab of that host, VMs resumed from their saved memory.
Each host's run leaves its result as a report the coordinator reads (as slices do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger

from lab import snapshots as store
from lab.errors import ArchetypeError, TopologyError
from lab.settings import get_settings
from lab.state import LabState, LabStatus
from tasks.hosts import read_hosts
from tasks.snapshots import cli_of, copy_snapshot, fleet_snapshots, forget_snapshot, in_fleet, snapshot_record
from tasks.state import load_lab_state, publish_lab_state
from topology.placement import HostFacts

__all__ = ["fleet_snapshot_rows", "forget_snapshot", "host_cli", "restore_on", "snapshot_on"]


class FleetSnapshotRefused(ArchetypeError):
    """The snapshot or restore cannot be done on the fleet as asked (nothing was made)."""


# The coordinator's side -------------------------------------------------------------------


def lab_host(lab: str) -> str | None:
    """The one host the lab runs on, from its state (None: not deployed, or not on a fleet).
    A lab on several hosts is refused: a snapshot freezes a lab on one host."""
    state = load_lab_state(lab)
    if state is None or not state.is_known:
        return None
    by_host: dict[str, list[str]] = {}
    for node in state.nodes:
        by_host.setdefault(node.host or get_settings().host_name, []).append(node.name)
    if len(by_host) > 1:
        spread = "; ".join(f"{host}: {', '.join(sorted(nodes))}" for host, nodes in sorted(by_host.items()))
        raise FleetSnapshotRefused(f"lab {lab} runs on several hosts ({spread}): a snapshot freezes a lab on one "
                                   "host; move its nodes onto one (archetype migrate), then take it")
    return next(iter(by_host), None)


def _step(step: str, flow_name: str, host: str, parameters: dict[str, Any], lab: str) -> dict[str, Any]:
    from flows.fleet import host_step

    report = host_step.fn(step, flow_name, host, parameters, lab)
    if "error" in report:
        raise ArchetypeError(report["error"])
    if report.get("errors") and not report.get("nodes"):
        raise ArchetypeError("; ".join(report["errors"]))
    return report


def snapshot_on(host: str, lab: str, name: str) -> dict[str, Any]:
    """The lab runs on ``host``, not here: that host takes the snapshot."""
    _alive(host, "the lab's host")
    get_run_logger().info("lab %s runs on %s: the snapshot is taken there", lab, host)
    return {**_step("snapshot", "snapshot-lab", host, {"lab": lab, "name": name}, lab), "host": host}


def snapshot_holder(lab: str, name: str) -> str:
    """The host whose workspace holds the snapshot: this one, else the fleet's record."""
    here = get_settings().host_name
    if store.snapshot_dir(lab, name).is_dir():
        return here
    record = snapshot_record(lab, name)
    if record is None:
        raise store.SnapshotError(f"lab {lab} has no snapshot {name!r} (archetype snapshots {lab})")
    return record["host"]


def _alive(host: str, what: str) -> HostFacts:
    found = {h.name: h for h in read_hosts()}
    facts = found.get(host)
    if facts is None:
        raise TopologyError([f"{what}: no host {host!r} in the fleet (archetype hosts)"])
    if not facts.alive:
        raise FleetSnapshotRefused(f"{what}: host {host} is not alive (its worker publishes no facts): nothing was made")
    return facts


def restore_on(lab: str, name: str, source: str, destination: str, force: bool,
               restore_here: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Restore on ``destination`` a snapshot that ``source`` holds (one of them, or both,
    another host than this one); ``restore_here``: restore-lab's own, when it is this host."""
    from flows.fleet import destroy_across_hosts

    here = get_settings().host_name
    logger = get_run_logger()
    target = None if destination == here else _alive(destination, "to_host")
    holder = None if source == here else _alive(source, f"snapshot {name} (held by {source})")
    state = load_lab_state(lab)
    running = sorted(f"{n.name}@{n.host}" for n in state.nodes) if state and state.is_known else []
    if running and not force:
        raise FleetSnapshotRefused(f"lab {lab} runs (nodes {', '.join(running)}): restore over it with --force "
                                   "(it is destroyed first, on every host)")
    copied = None
    if source != destination:  # checked on both ends before the running lab is touched
        copied = copy_snapshot(lab, name, holder, target)
    if running:
        logger.warning("lab %s runs: destroyed on every host before the restore (force)", lab)
        report = destroy_across_hosts(lab, read_hosts())
        publish_lab_state(LabState(lab_id=lab, status=LabStatus.DESTROYED, errors=report["errors"]))
        if report["errors"]:
            raise ArchetypeError(f"lab {lab} was not removed before the restore: " + "; ".join(report["errors"]))
    if target is None:
        result = restore_here()
    else:
        result = _step("restore", "restore-lab", destination,
                       {"lab": lab, "name": name, "force": False, "to_host": destination}, lab)
    return {**result, "host": destination, "copied_from": source if copied else None}


# Listing and deleting from any host -----------------------------------------------------------


def fleet_snapshot_rows(lab: str | None) -> list[dict[str, Any]]:
    """The fleet's records of snapshots (as ``lab.snapshots.list_snapshots`` rows); none on
    a single host."""
    from datetime import UTC, datetime

    if not in_fleet():
        return []
    now = datetime.now(UTC)
    return [{**r, "age_seconds": round((now - datetime.fromisoformat(r["created_at"])).total_seconds()), "path": None}
            for r in fleet_snapshots(lab)]


def host_cli(host: str) -> list[str]:
    """argv prefix of the archetype CLI on an alive host of the fleet (its access)."""
    return cli_of(_alive(host, "host"))
