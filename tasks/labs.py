"""Lab-wide tasks: thin wrappers over ``providers.labs``, which owns these operations."""

from __future__ import annotations

import contextlib
import shutil

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from lab.errors import ArchetypeError
from providers import labs
from providers.base import CleanupReport, DiscoveredLab
from tasks.retry import retry_if_transient
from topology import NodeRef
from vendors import catalog

_RETRYING = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}


@task(name="discover-labs", cache_policy=NO_CACHE)
def discover_labs_live(only_lab: str | None = None) -> list[DiscoveredLab]:
    return labs.discover(only_lab)


def live_node_refs(lab_id: str) -> tuple[list[NodeRef], dict[str, str]]:
    """The lab's nodes on this host, each with its catalog entry, and the nodes whose kind
    the catalog does not know (name -> why). Raises when the lab has no node here."""
    found = discover_labs_live(lab_id)
    if not found:
        raise ArchetypeError(f"no lab {lab_id!r} on this host")
    refs, unknown = [], {}
    for status in found[0].nodes:
        vendor = catalog().find(status.kind)
        if vendor is None:
            unknown[status.name] = f"kind {status.kind!r} is not in the catalog"
        else:
            refs.append(NodeRef(status.name, vendor))
    return refs, unknown


def failure_of(future: PrefectFuture) -> str:
    """Why a finished per-node task did not complete (its error's words)."""
    try:
        future.result()
    except Exception as err:  # noqa: BLE001 - reported per node
        return str(err) or err.__class__.__name__
    return "not completed"


@task(name="destroy-lab", task_run_name="destroy-lab/{lab_id}", **_RETRYING)
def destroy_lab_everywhere(lab_id: str) -> CleanupReport:
    """Every provider removes its nodes of the lab; the lab's network and files go once no
    node of it remains. Every failure is in the report."""
    report = labs.destroy_lab(lab_id)
    log_report(report)
    return report


@task(name="find-orphans", cache_policy=NO_CACHE)
def find_orphan_labs(known: list[str]) -> labs.Orphans:
    """Labs that own something on this host (nodes, ports, VLANs, files) and are not known;
    those a run holds the lock of are left alone (``busy``)."""
    orphans = labs.find_orphans(known)
    for lab in orphans.busy:
        get_run_logger().info("lab %s is being deployed or destroyed: left alone", lab)
    return orphans


def log_report(report: CleanupReport) -> None:
    logger = get_run_logger()
    for resource, names in report.removed.items():
        logger.info("removed %d %s: %s", len(names), resource, ", ".join(map(str, names)))
    for error in report.errors:
        logger.error(error)


def leave_lab_here(lab_id: str, host: str) -> CleanupReport:
    """Everything of a multi-host lab on this host goes (its slice's nodes, network, files),
    and its slice state says so. The caller holds the lab's lock."""
    from lab import names
    from lab.state import LabState, LabStatus
    from tasks.state import publish_lab_state

    report = destroy_lab_everywhere(lab_id)
    shutil.rmtree(names.slice_files_dir(lab_id), ignore_errors=True)
    with contextlib.suppress(OSError):
        names.lab_files_dir(lab_id).rmdir()  # only when nothing else is there (the user's own files stay)
    publish_lab_state(LabState(lab_id=lab_id, status=LabStatus.DESTROYED, errors=report.errors),
                      names.slice_state_key(lab_id, host))
    return report
