"""Tasks of snapshots and restores: thin wrappers over ``providers.libvirt.snapshots`` (a
VM's memory and disks), the docker provider (the management network) and the lab's
remembered topology."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lab.errors import ArchetypeError
from lab.settings import get_settings
from providers import get_provider
from providers.base import NodeState, NodeStatus
from providers.libvirt import snapshots as vm_snapshots
from tasks.retry import retry_if_transient
from topology import Lab
from topology.mgmt import MgmtNetwork, MgmtPlan
from vendors.model import Provider

_ONCE = {"cache_policy": NO_CACHE}

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


@task(name="mgmt-network-of", task_run_name="mgmt-network-of/{lab_id}", retries=2, retry_delay_seconds=[2, 5],
      retry_condition_fn=retry_if_transient, **_ONCE)
def lab_mgmt_network(lab_id: str, wanted: MgmtNetwork, node_count: int) -> MgmtPlan:
    """The lab's management network (its subnet goes into a snapshot; a restore makes it
    again with that subnet)."""
    return get_provider(Provider.DOCKER).ensure_mgmt_network(lab_id, wanted, node_count)  # type: ignore[attr-defined]


def remember_deployed_topology(lab: Lab) -> None:
    """The lab's topology, written back self-contained (startup configs inline), kept on
    the server as multi-host labs' is, so that ``snapshot`` can freeze it with the lab. A
    lab with binds is deployed all the same; its snapshot says why it cannot be taken."""
    from tasks.migration import remember_topology
    from topology.slices import slice_document

    host = get_settings().host_name
    bound = sorted(name for name, node in lab.nodes.items() if node.binds)
    if bound:  # a snapshot does not carry host files (nor reads them at every deploy)
        get_run_logger().info("lab %s: nodes %s bind host files: no snapshots of it", lab.id, ", ".join(bound))
        return
    try:
        text, _files = slice_document(lab, {name: node.host or host for name, node in lab.nodes.items()})
    except ArchetypeError as err:
        get_run_logger().warning("lab %s: its topology is not kept for snapshots: %s", lab.id, err)
        return
    remember_topology(lab.id, text)


def deployed_topology(lab_id: str) -> str | None:
    from tasks.migration import placed_topology

    return placed_topology(lab_id)
