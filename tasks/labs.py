"""Lab-wide tasks over every provider: discovery, destroy and orphan cleanup."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lab.locks import lab_is_busy
from providers import all_providers, inventory, network
from providers.base import CleanupReport
from providers.workspace import remove_lab_files
from tasks.retry import retry_if_transient

_RETRYING = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}


@task(name="discover-labs", cache_policy=NO_CACHE)
def discover_labs_live(only_lab: str | None = None) -> list[dict]:
    return inventory.discover_all(only_lab)


@task(name="destroy-lab", task_run_name="destroy-lab/{lab_id}", **_RETRYING)
def destroy_lab_everywhere(lab_id: str) -> CleanupReport:
    """Every provider removes what it has of the lab; then its network and files go, once
    no node of it remains (a VM that would not go keeps its disks: deleting them under a
    running domain would corrupt it). One failure does not stop the rest: all of them are
    in the report."""
    report = CleanupReport()
    for provider in all_providers():
        try:
            report.merge(provider.destroy_lab(lab_id))
        except Exception as err:  # noqa: BLE001 - reported, the others still run
            report.errors.append(f"{provider.name}: {err}")
    remaining = [node["name"] for lab in inventory.discover_all(lab_id) for node in lab["nodes"]]
    if remaining:
        report.errors.append(f"lab {lab_id}: nodes {', '.join(remaining)} remain: its files are kept")
    else:
        report.merge(network.release_lab(lab_id))
        report.merge(remove_lab_files(lab_id))
    _log(report)
    return report


@task(name="find-orphans", cache_policy=NO_CACHE)
def find_orphan_labs(known: list[str]) -> list[str]:
    """Labs that own something on this host (nodes, ports, VLANs, files) and are not known."""
    orphans = []
    for lab in sorted(inventory.labs_with_resources() - set(known)):
        if lab_is_busy(lab):  # a deploy/destroy of it is running right now: not an orphan
            get_run_logger().info("lab %s is being deployed or destroyed: left alone", lab)
        else:
            orphans.append(lab)
    return orphans


def _log(report: CleanupReport) -> None:
    logger = get_run_logger()
    for resource, names in report.removed.items():
        logger.info("removed %d %s: %s", len(names), resource, ", ".join(map(str, names)))
    for error in report.errors:
        logger.error(error)
