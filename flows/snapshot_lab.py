"""snapshot-lab: freeze a running lab under ``snapshots/<lab>/<name>/`` in the workspace.

Under the lab's lock (a deploy running: the snapshot waits for it) -> each container's
running config (its kind's config extraction), the sources of its binds (as its container
mounts them) and the files its kind says matter (``container.snapshot_files``) -> each VM saved (memory, disks, serial
log; it runs on) -> the topology (self-contained, with the management subnet and every
node's address), the lab's state (links, VLANs) -> a manifest with every file's size and
sha256 -> the folder renamed into place. A snapshot that fails half-way leaves nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from lab import names
from lab import snapshots as store
from lab.errors import ArchetypeError
from lab.locks import lab_lock
from lab.private import private_dir, write_private
from lab.settings import get_settings
from tasks.labs import discover_labs_live, failure_of
from tasks.nodes import extract_config
from tasks.snapshots import (
    NodeStatus,
    deployed_topology,
    is_running,
    lab_mgmt_network,
    register_snapshot,
    report_to_coordinator,
    save_node_files,
    save_vm,
)
from tasks.state import load_lab_state
from topology.mgmt import MgmtNetwork
from vendors.model import ExtractionMethod


class SnapshotRefused(ArchetypeError):
    """The lab cannot be frozen as it is (nothing was written)."""


def _run_name() -> str:
    from prefect.runtime import flow_run

    lab = str(flow_run.parameters.get("lab", ""))
    return f"snapshot-lab/{lab if names.is_valid_lab_id(lab) else 'invalid'}"


@flow(name="snapshot-lab", flow_run_name=_run_name, task_runner=ThreadPoolTaskRunner(max_workers=8))
def snapshot_lab(lab: str, name: str | None = None) -> dict[str, Any]:
    """Freeze a running lab: each VM's memory and disks (it runs on), each container's
    running config, the topology, links, VLANs and management addresses.

    Args:
        lab: the lab id.
        name: the snapshot's name (as a lab id: lowercase letters, digits, dashes);
            default: the time, ``sYYYYMMDD-HHMMSS``.
    """
    name = name or store.default_name()
    store.check_names(lab, name)  # invalid input fails the run before anything is read
    from flows.snapshot_fleet import lab_host, snapshot_on

    host = lab_host(lab)
    if host is not None and host != get_settings().host_name:  # a fleet's lab: its host takes it
        return snapshot_on(host, lab, name)
    logger = get_run_logger()
    started = time.monotonic()
    with lab_lock(lab):  # a deploy or destroy of the lab runs: wait for it
        topology = deployed_topology(lab)
        nodes = _live_nodes(lab)
        _check_can_freeze(lab, topology, nodes)
        staging = store.start_staging(lab, name)
        try:
            result = _freeze(lab, name, staging, topology, nodes)
        except BaseException:
            store.abandon_staging(staging)
            raise
    result["seconds"] = round(time.monotonic() - started, 2)
    register_snapshot(result, [n.name for n in nodes])  # on a fleet: any host finds where it is
    report_to_coordinator("snapshot", lab, result)
    logger.info("lab %s frozen as %s (%.1f MiB) in %.1f s", lab, name, result["size_bytes"] / 2**20, result["seconds"])
    return result


def _live_nodes(lab: str) -> list[NodeStatus]:
    found = discover_labs_live(lab)
    return found[0].nodes if found else []


def _check_can_freeze(lab: str, topology: str | None, nodes: list[NodeStatus]) -> None:
    if not nodes:
        raise SnapshotRefused(f"no lab {lab!r} runs on this host: nothing to freeze")
    if topology is None:
        raise SnapshotRefused(f"lab {lab}: its topology is not on the server (deployed before snapshots existed): "
                              "deploy it again, then take the snapshot")
    document = yaml.safe_load(topology)
    here = get_settings().host_name
    elsewhere = sorted(n for n, fields in document["topology"]["nodes"].items() if fields.get("host", here) != here)
    if elsewhere:  # its state said this host: its topology says otherwise (a move not recorded)
        raise SnapshotRefused(f"lab {lab}: nodes {', '.join(elsewhere)} run on other hosts by its last deployed "
                              "topology: a snapshot freezes a lab on one host (archetype migrate them here first)")
    stopped = sorted(n.name for n in nodes if not is_running(n))
    if stopped:
        raise SnapshotRefused(f"lab {lab}: nodes {', '.join(stopped)} are not running: start them first")
    missing = sorted(set(document["topology"]["nodes"]) - {n.name for n in nodes})
    if missing:
        raise SnapshotRefused(f"lab {lab}: nodes {', '.join(missing)} of its topology do not exist: deploy it first")
    unknown = sorted({n.name for n in nodes} - set(document["topology"]["nodes"]))
    if unknown:
        raise SnapshotRefused(f"lab {lab}: nodes {', '.join(unknown)} run but are not in its last deployed topology: "
                              "deploy it again first")


def _freeze(lab: str, name: str, staging: Path, topology: str, nodes: list[NodeStatus]) -> dict[str, Any]:
    mgmt = lab_mgmt_network(lab, MgmtNetwork(), len(nodes))
    containers = [n for n in nodes if n.provider.value == "docker"]
    vms = [n for n in nodes if n.provider.value == "libvirt"]
    configs = {n.name: extract_config.submit(lab, n.ref()) for n in containers
               if n.ref().vendor.config_extraction.method is not ExtractionMethod.NONE}
    problems = []
    for node, future in configs.items():
        future.wait()
        if not future.state.is_completed():
            problems.append(f"{node}: no running config: {failure_of(future)}")
        else:
            write_private(staging / "configs" / f"{node}.cfg", future.result())
    if problems:
        raise SnapshotRefused(f"lab {lab}: " + "; ".join(problems))
    document = yaml.safe_load(topology)
    owners: dict[str, list[int]] = {}
    for node in containers:  # its binds' sources and its kind's files, bound in again by a restore
        fields = document["topology"]["nodes"][node.name]
        try:
            kept = save_node_files(lab, node.name, node.kind, list(fields.get("binds") or []), staging)
        except ArchetypeError as err:
            raise SnapshotRefused(f"lab {lab}: node {node.name}: {err}") from None
        fields.pop("binds", None)
        if kept["binds"]:
            fields["binds"] = kept["binds"]
        owners.update(kept["owners"])
    if owners:
        store.write_json(staging / store.OWNERS, owners)
    saved = {}
    for vm in vms:  # one at a time: each is paused for its own save only
        folder = private_dir(staging / "vms" / vm.name)
        saved[vm.name] = save_vm(lab, vm.name, folder)
        store.write_json(folder / "vm.json", saved[vm.name])
    document["mgmt"] = {"ipv4-subnet": mgmt.ipv4_subnet}
    for node in nodes:
        if node.mgmt_ipv4:
            document["topology"]["nodes"][node.name]["mgmt-ipv4"] = node.mgmt_ipv4
    write_private(staging / "topology.yml", yaml.safe_dump(document, sort_keys=False))
    state = load_lab_state(lab)
    write_private(staging / "state.json", state.model_dump_json(indent=2) if state else "{}")
    manifest = store.Manifest(
        lab_id=lab, name=name, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        host=get_settings().host_name, mgmt_ipv4_subnet=mgmt.ipv4_subnet,
        nodes=[store.SnapshotNode(name=n.name, kind=n.kind, provider=n.provider.value, mgmt_ipv4=n.mgmt_ipv4)
               for n in nodes],
        files={},
    )
    final = store.finish_staging(staging, manifest)
    return {
        "lab_id": lab, "name": name, "path": str(final),
        "size_bytes": sum(e.size for e in manifest.files.values()),
        "containers": sorted(configs), "vms": sorted(saved),
        "paused_seconds": {node: s["paused_seconds"] for node, s in saved.items()},
    }
