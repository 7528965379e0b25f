"""Tasks of snapshots and restores: thin wrappers over ``providers.libvirt.snapshots`` (a
VM's memory and disks), the docker provider (the management network), the lab's
remembered topology, and, on a fleet, where each snapshot lives (a server variable per
snapshot) and the copy of a snapshot from one host to another (``providers.host_pipe``)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lab.errors import ArchetypeError
from lab.settings import get_settings
from lab.snapshot_transfer import copy_plain
from lab.snapshots import SnapshotError
from providers import get_provider
from providers.base import NodeState, NodeStatus
from providers.libvirt import snapshots as vm_snapshots
from tasks.retry import retry_if_transient
from topology import Lab
from topology.mgmt import MgmtNetwork, MgmtPlan
from topology.placement import HostFacts
from vendors.model import Provider

_ONCE = {"cache_policy": NO_CACHE}
SNAPSHOT_VARIABLE = "archetype-snapshot-{lab}_{name}"  # lab ids and names have no "_"

def is_running(node: NodeStatus) -> bool:
    """A discovered node runs (flows do not read providers' types themselves)."""
    return node.state is NodeState.RUNNING


@task(name="save-vm", task_run_name="save-vm/{node}", **_ONCE)
def save_vm(lab_id: str, node: str, folder: Path) -> dict[str, Any]:
    """The VM's memory, disks and serial log into ``folder``; it runs on (not retried: a
    save that failed half-way is not done twice over a VM)."""
    saved = vm_snapshots.save(get_settings().libvirt_uri, lab_id, node, folder)
    get_run_logger().info("%s: saved; paused %.1f s", node, saved.paused_seconds)
    return saved.to_dict()


@task(name="check-vm-snapshot", task_run_name="check-vm-snapshot/{saved[node]}", **_ONCE)
def check_vm_snapshot(lab_id: str, folder: Path, saved: dict[str, Any]) -> None:
    vm_snapshots.check(get_settings().libvirt_uri, lab_id, folder, vm_snapshots.SavedVm.from_dict(saved))


@task(name="restore-vm", task_run_name="restore-vm/{saved[node]}", **_ONCE)
def restore_vm(lab_id: str, folder: Path, saved: dict[str, Any], tags: dict[str, int]) -> float:
    seconds = vm_snapshots.restore(get_settings().libvirt_uri, lab_id, folder, vm_snapshots.SavedVm.from_dict(saved), tags)
    get_run_logger().info("%s: restored from its saved memory in %.1f s (no boot)", saved["node"], seconds)
    return seconds


@task(name="save-node-files", task_run_name="save-node-files/{node}", **_ONCE)
def save_node_files(lab_id: str, node: str, kind: str, binds: list[str], staging: Path) -> dict[str, Any]:
    """Into the snapshot: the sources of the node's binds, as its container mounts them (what
    our deploy bound, whatever its topology said then), and the files its kind says matter
    (``container.snapshot_files``), copied out of it. Returns the node's binds for the
    snapshot's topology, relative to the snapshot (a restore binds the saved copies in), and
    each copy's original mode and owner."""
    from providers.docker import files as docker_files
    from topology import NodeRef

    provider = get_provider(Provider.DOCKER)
    ref = NodeRef.of(node, kind)
    container = provider.node_runtime_name(lab_id, ref)  # type: ignore[attr-defined]
    mounts = docker_files.bind_mounts(provider.api, container)  # type: ignore[attr-defined]
    carried, bound = [], []
    owners: dict[Path, tuple[int, int, int]] = {}
    for index, spec in enumerate(binds):
        parts = spec.split(":")
        inside, mode = parts[1], parts[2] if len(parts) == 3 else "rw"
        if inside not in mounts:
            raise ArchetypeError(f"node {node}: its bind of {inside} is not mounted in {container}: deploy it again")
        source = mounts[inside][0]
        relative = f"binds/{node}/{index}/{'dir' if source.is_dir() else 'file'}"
        copy_plain(source, staging / relative, owners)
        carried.append(f"{relative}:{inside}:{mode}")
        bound.append(inside.rstrip("/"))
    assert ref.vendor.container is not None
    for path in ref.vendor.container.snapshot_files:
        if any(path == b or path.startswith(b + "/") for b in bound):
            continue  # the bind carries it
        relative = f"files/{node}{path}"
        if docker_files.copy_out(provider.api, container, path, staging / relative, owners):  # type: ignore[attr-defined]
            carried.append(f"{relative}:{path}:rw")
    if carried:
        get_run_logger().info("%s: kept %s", node, ", ".join(c.split(":")[1] for c in carried))
    return {"binds": carried, "owners": {p.relative_to(staging).as_posix(): list(o) for p, o in owners.items()}}


@task(name="mgmt-network-of", task_run_name="mgmt-network-of/{lab_id}", retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_if_transient, **_ONCE)
def lab_mgmt_network(lab_id: str, wanted: MgmtNetwork, node_count: int) -> MgmtPlan:
    """The lab's management network (its subnet goes into a snapshot; a restore makes it
    again with that subnet)."""
    return get_provider(Provider.DOCKER).ensure_mgmt_network(lab_id, wanted, node_count)  # type: ignore[attr-defined]


def remember_deployed_topology(lab: Lab) -> None:
    """The lab's topology, written back self-contained (startup configs inline, binds as
    their host paths: no file is read here), kept on the server as multi-host labs' is, so
    that ``snapshot`` can freeze it with the lab."""
    from dataclasses import replace

    import yaml

    from tasks.migration import remember_topology
    from topology.slices import slice_document

    host = get_settings().host_name
    unbound = replace(lab, nodes={name: replace(node, binds=()) for name, node in lab.nodes.items()})
    try:  # binds as the host paths they are (a snapshot copies them from the container's mounts)
        text, _files = slice_document(unbound, {name: node.host or host for name, node in lab.nodes.items()})
    except ArchetypeError as err:
        get_run_logger().warning("lab %s: its topology is not kept for snapshots: %s", lab.id, err)
        return
    document = yaml.safe_load(text)
    for name, node in lab.nodes.items():
        if node.binds:
            document["topology"]["nodes"][name]["binds"] = [f"{b.host}:{b.container}:{b.mode}" for b in node.binds]
    remember_topology(lab.id, yaml.safe_dump(document, sort_keys=False))


def deployed_topology(lab_id: str) -> str | None:
    from tasks.migration import placed_topology

    return placed_topology(lab_id)


# Snapshots of a fleet: where each one lives -------------------------------------------------


def in_fleet() -> bool:
    """This process talks to a fleet's server (hosts publish their facts there)."""
    import os

    from tasks.hosts import read_hosts

    return bool(os.environ.get("PREFECT_API_URL")) and bool(read_hosts())


def report_to_coordinator(step: str, lab: str, result: dict[str, Any]) -> None:
    """On a fleet, leave the run's result where a coordinator that started it on this host
    reads it (``flows.fleet.host_step``), and refresh this host's facts (its labs)."""
    from lab import names
    from tasks.hosts import publish_report, publish_this_host

    if in_fleet():
        publish_report(names.host_report_key(lab, step, get_settings().host_name), result)
        with contextlib.suppress(Exception):  # the periodic publication catches up
            publish_this_host()


def register_snapshot(result: dict[str, Any], nodes: list[str]) -> None:
    """Remember on the fleet's server which host holds the snapshot (``restore`` and
    ``snapshots`` from any host find it there); nothing on a single host."""
    from datetime import UTC, datetime

    from prefect.variables import Variable

    if not in_fleet():
        return
    record = {"lab_id": result["lab_id"], "name": result["name"], "host": get_settings().host_name,
              "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "size_bytes": result["size_bytes"], "nodes": sorted(nodes)}
    Variable.set(SNAPSHOT_VARIABLE.format(lab=result["lab_id"], name=result["name"]), record, overwrite=True)


def snapshot_record(lab_id: str, name: str) -> dict[str, Any] | None:
    """The fleet's record of the snapshot (its host...), or None."""
    from prefect.variables import Variable

    if not in_fleet():
        return None
    value = Variable.get(SNAPSHOT_VARIABLE.format(lab=lab_id, name=name))
    return value if isinstance(value, dict) and isinstance(value.get("host"), str) else None


def forget_snapshot(lab_id: str, name: str) -> None:
    from prefect.variables import Variable

    with contextlib.suppress(Exception):  # never recorded (a single host): nothing to forget
        Variable.unset(SNAPSHOT_VARIABLE.format(lab=lab_id, name=name))


def fleet_snapshots(lab_id: str | None = None) -> list[dict[str, Any]]:
    """The fleet's records of snapshots (of one lab, or all)."""
    from prefect.client.orchestration import get_client

    prefix = SNAPSHOT_VARIABLE.format(lab=lab_id, name="") if lab_id else "archetype-snapshot-"
    with get_client(sync_client=True) as client:
        variables = client.read_variables()
    return [v.value for v in variables if v.name.startswith(prefix) and isinstance(v.value, dict)]


def cli_of(host: HostFacts | None) -> list[str]:
    """argv prefix of the archetype CLI on a fleet host (its access), or here (None)."""
    from providers import host_pipe

    return host_pipe.remote_cli(list(host.access), host.address) if host else host_pipe.local_cli()


@task(name="copy-snapshot", task_run_name="copy-snapshot/{lab_id}/{name}", **_ONCE)
def copy_snapshot(lab_id: str, name: str, source: HostFacts | None, destination: HostFacts | None) -> dict[str, Any]:
    """Carry the snapshot from ``source``'s workspace to ``destination``'s (None: this
    host), as one tar stream between the two hosts' CLIs (checked on both ends)."""
    from providers import host_pipe

    cli = cli_of
    started = time.monotonic()
    try:
        out = host_pipe.pipe([*cli(source), "snapshot-send", lab_id, name], [*cli(destination), "snapshot-receive",
                             lab_id, name], timeout=get_settings().host_step_timeout)
    except host_pipe.PipeFailed as err:
        if 2 in err.codes:  # the snapshot itself is refused (damaged, foreign): invalid input
            raise SnapshotError(str(err)) from None
        raise
    result = json.loads(out.strip().splitlines()[-1])
    get_run_logger().info("snapshot %s of %s copied from %s to %s in %.1f s", name, lab_id,
                          source.name if source else "here", destination.name if destination else "here",
                          time.monotonic() - started)
    return result
