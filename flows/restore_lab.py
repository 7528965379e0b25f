"""restore-lab: bring a lab back from a snapshot (``snapshot-lab``) on this host (on another
host of a fleet: flows.snapshot_fleet copies the snapshot there and runs this flow there).

Check everything first (the manifest, every file's size and sha256, the lab and node
names, each VM's saved memory, the topology) -> a running lab is refused unless ``force``
(then it is destroyed) -> under the lab's lock: the management network with its old
subnet, the VLANs (the snapshot's tags where free), each VM restored from its saved memory
(no boot, no post-boot: what lived only in its memory is still there) -> the rest as a
deploy converges it: containers created from their saved running configs, every link
wired, the VMs found running and configured. Anything failing after the first thing was
made removes what the restore made: never half a lab.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from lab import names
from lab import snapshots as store
from lab.errors import ArchetypeError, TopologyError
from lab.locks import lab_lock
from lab.private import private_dir
from lab.settings import get_settings
from lab.snapshot_transfer import give_back
from lab.state import LabState, LabStatus, LinkRecord, NodePhase, NodeRecord
from tasks.labs import destroy_lab_everywhere
from tasks.network import allocate_vlans, plan_link_ends
from tasks.nodes import lab_nodes
from tasks.snapshots import (
    check_vm_snapshot,
    lab_mgmt_network,
    remember_deployed_topology,
    report_to_coordinator,
    restore_vm,
)
from tasks.state import publish_lab_state
from topology import Lab, load_topology
from topology.saved_configs import with_saved_configs


class RestoreRefused(ArchetypeError):
    """The snapshot cannot be restored as asked (nothing was made)."""


def _run_name() -> str:
    from prefect.runtime import flow_run

    lab, name = str(flow_run.parameters.get("lab", "")), str(flow_run.parameters.get("name", ""))
    valid = names.is_valid_lab_id(lab) and bool(store.NAME_RE.match(name))
    return f"restore-lab/{lab}/{name}" if valid else "restore-lab/invalid"


@flow(name="restore-lab", flow_run_name=_run_name)
def restore_lab(lab: str, name: str, force: bool = False, to_host: str | None = None) -> dict[str, Any]:
    """Bring a lab back from one of its snapshots: VMs resume from their saved memory
    (no boot), containers start from their saved configs, links and addresses as they were.

    Args:
        lab: the lab id.
        name: the snapshot's name (archetype snapshots LAB).
        force: restore over the lab if it runs (it is destroyed first).
        to_host: the fleet host to restore on (default: the host that holds the snapshot);
            the snapshot's files are copied there first.
    """
    store.check_names(lab, name)
    if to_host is not None and not names.is_valid_host_name(to_host):
        raise TopologyError([f"to_host: invalid host name {to_host!r}"])
    here = get_settings().host_name
    if to_host in (None, here) and store.snapshot_dir(lab, name).is_dir():
        return restore_here(lab, name, force)
    from flows.snapshot_fleet import restore_on, snapshot_holder

    source = snapshot_holder(lab, name)
    return restore_on(lab, name, source, to_host or source, force, lambda: restore_here(lab, name, force=False))


def restore_here(lab: str, name: str, force: bool) -> dict[str, Any]:
    """The restore on this host, from a snapshot in its workspace."""
    logger = get_run_logger()
    started = time.monotonic()
    folder, manifest = store.verify(lab, name)  # every file, before anything is made
    files = _node_files_here(lab, name, folder, manifest)  # what the nodes bind: checked with the topology
    try:
        lab_model, saved_vms, previous = _read_snapshot(folder, manifest, files)
        for saved in saved_vms.values():
            check_vm_snapshot(lab, folder / "vms" / saved["node"], saved)
        running = _running_unless_forced(lab, force)
    except BaseException:
        _drop(files)
        raise
    checked = time.monotonic() - started
    if running:
        logger.warning("lab %s runs here: destroyed before the restore (force)", lab)
        with lab_lock(lab):
            destroy_lab_everywhere(lab)  # the lab's files go with it, the ones just checked too: again
        files = _node_files_here(lab, name, folder, manifest)
        lab_model, saved_vms, previous = _read_snapshot(folder, manifest, files)
    try:
        vm_seconds = _restore_vms(lab_model, folder, saved_vms, previous)
        from flows.deploy_lab import converge_here

        result = _converged(converge_here(lab_model), lab, name)
    except BaseException:
        logger.error("restore of %s from %s failed: removing what it made", lab, name)  # noqa: TRY400 - re-raised below
        with lab_lock(lab):
            report = destroy_lab_everywhere(lab)
            publish_lab_state(LabState(lab_id=lab, status=LabStatus.DESTROYED, errors=report.errors))
        _drop(files)
        raise
    for older in names.lab_files_dir(lab).glob(f"{RESTORED_PREFIX}*"):  # an earlier restore's, bound by nothing now
        if older != files:
            _drop(older)
    remember_deployed_topology(lab_model)  # a later snapshot of the restored lab
    seconds = time.monotonic() - started
    logger.info("lab %s restored from %s in %.1f s (checks %.1f s, VMs %s)", lab, name, seconds, checked,
                ", ".join(f"{n} {s:.1f} s" for n, s in vm_seconds.items()) or "none")
    result = {**result, "snapshot": name, "host": get_settings().host_name, "seconds": round(seconds, 2),
              "check_seconds": round(checked, 2), "vm_restore_seconds": {n: round(s, 2) for n, s in vm_seconds.items()}}
    report_to_coordinator("restore", lab, result)
    return result


def _converged(outcome: tuple[dict[str, Any], str | None], lab: str, name: str) -> dict[str, Any]:
    result, failure = outcome
    if failure:
        raise ArchetypeError(f"restore of {lab} from {name}: {failure}")
    return result


RESTORED_PREFIX = "_restored-"


def _running_unless_forced(lab: str, force: bool) -> dict[str, bool]:
    running = lab_nodes(lab)
    if running and not force:
        raise RestoreRefused(f"lab {lab} runs on this host (nodes {', '.join(sorted(running))}): "
                             "restore over it with --force (it is destroyed first)")
    return running


def _node_files_here(lab: str, name: str, folder: Path, manifest: store.Manifest) -> Path | None:
    """The snapshot's node files (binds' sources, kind files) copied into the lab's files
    folder, with their modes and owners as they were: what the restored nodes bind. None
    when the snapshot has none."""
    kept = [rel for rel in manifest.files if rel.startswith(store.NODE_FILES)]
    if not kept:
        return None
    files = private_dir(names.lab_files_dir(lab)) / f"{RESTORED_PREFIX}{name}-{time.time_ns()}"
    try:
        for rel in kept:
            store.private_copy(folder / rel, files / rel)
        owners = folder / store.OWNERS
        if owners.is_file():
            give_back(json.loads(owners.read_text()), files)
    except BaseException:
        _drop(files)
        raise
    return files


def _drop(files: Path | None) -> None:
    if files is not None:
        shutil.rmtree(files, ignore_errors=True)


def _read_snapshot(folder: Path, manifest: store.Manifest,
                   files: Path | None = None) -> tuple[Lab, dict[str, dict], LabState | None]:
    """The lab as the snapshot froze it (containers on their saved configs, binding the
    saved node files in ``files``), each VM's save record, and the lab's state then.
    TopologyError / SnapshotError: nothing made."""
    try:
        lab_model = load_topology((folder / "topology.yml").read_text(), base_dir=files)
    except TopologyError as err:
        raise store.SnapshotError(f"snapshot {manifest.name} of lab {manifest.lab_id}: its topology is refused: "
                                  + "; ".join(err.problems)) from None
    problems = []
    if lab_model.id != manifest.lab_id:
        problems.append(f"its topology is lab {lab_model.id!r}, not {manifest.lab_id!r}")
    frozen = {n.name: n for n in manifest.nodes}
    if set(frozen) != set(lab_model.nodes):
        problems.append(f"its nodes ({', '.join(sorted(frozen))}) are not its topology's "
                        f"({', '.join(sorted(lab_model.nodes))})")
    for node_name, node in lab_model.nodes.items():
        if node_name in frozen and node.vendor.provider.value != frozen[node_name].provider:
            problems.append(f"node {node_name}: {frozen[node_name].provider} in the manifest, "
                            f"{node.vendor.provider.value} in the topology")
    saved_vms = {}
    for vm in manifest.vms:
        record = folder / "vms" / vm.name / "vm.json"
        if not record.is_file():
            problems.append(f"node {vm.name}: no vms/{vm.name}/vm.json")
            continue
        saved = json.loads(record.read_text())
        if saved.get("node") != vm.name:
            problems.append(f"vms/{vm.name}/vm.json is node {saved.get('node')!r}'s")
        saved_vms[vm.name] = saved
    if problems:
        raise store.SnapshotError(f"snapshot {manifest.name} of lab {manifest.lab_id} refused: " + "; ".join(problems))
    containers_on_configs, _used = with_saved_configs(lab_model, folder / "configs")
    here = get_settings().host_name  # a snapshot taken on another host of the fleet is restored here
    nodes = {n: replace(containers_on_configs.nodes[n] if lab_model.nodes[n].vendor.provider.value == "docker"
                        else node, host=here)
             for n, node in lab_model.nodes.items()}
    state_text = (folder / "state.json").read_text() if (folder / "state.json").is_file() else "{}"
    previous = LabState.model_validate_json(state_text) if state_text.strip() not in ("", "{}") else None
    if previous is not None and previous.lab_id != manifest.lab_id:
        raise store.SnapshotError(f"snapshot {manifest.name}: its state.json is lab {previous.lab_id!r}'s")
    return replace(lab_model, nodes=nodes), saved_vms, previous


def _restore_vms(lab: Lab, folder: Path, saved_vms: dict[str, dict], previous: LabState | None) -> dict[str, float]:
    """Under the lab's lock: the management network (the snapshot's subnet), the VLANs (its
    tags where free), the state a deploy then converges from (the VMs ready: their
    post-boot is not run again), and each VM restored from its memory."""
    seconds: dict[str, float] = {}
    with lab_lock(lab.id):
        lab_mgmt_network(lab.id, lab.mgmt, len(lab.nodes))
        vlans = allocate_vlans(lab, _with_no_ports(previous))
        ends = plan_link_ends(lab, vlans)
        publish_lab_state(_restoring_state(lab, vlans, set(saved_vms)))
        for node, saved in saved_vms.items():
            tags = {end.port_name: end.vlan for end in ends[node]}
            seconds[node] = restore_vm(lab.id, folder / "vms" / node, saved, tags)
    return seconds


def _with_no_ports(previous: LabState | None) -> LabState | None:
    """The snapshot's links as a previous allocation to prefer (their ports are another
    run's names on another day: only the tags count)."""
    if previous is None:
        return None
    return previous.model_copy(update={"links": [link.model_copy(update={"ports": []}) for link in previous.links]})


def _restoring_state(lab: Lab, vlans: dict[str, int], vms: set[str]) -> LabState:
    host = get_settings().host_name
    return LabState(
        lab_id=lab.id, status=LabStatus.CREATING,
        nodes=[NodeRecord(name=n.name, kind=n.kind, provider=n.vendor.provider.value,
                          runtime_name=names.domain_name(lab.id, n.name) if n.name in vms
                          else names.container_name(lab.id, n.name, n.name_prefix),
                          state=NodePhase.READY if n.name in vms else NodePhase.PLANNED,
                          host=host, exec_lines=list(n.exec), mgmt_ipv4=n.mgmt_ipv4)
               for n in lab.nodes.values()],
        links=[LinkRecord(id=link.id, endpoints=[str(end) for end in link.ends], vlan=vlans[link.id])
               for link in lab.links],
    )
