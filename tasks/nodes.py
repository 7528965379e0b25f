"""Per-node tasks, one per node per stage: thin wrappers over the node's provider.

Timeouts live in the providers (the vendor's readiness, command and extraction timeouts),
not on the tasks: Prefect cannot interrupt a task running in a worker thread, so a task
timeout would only fire after the blocking call returned. A provider timeout raises a
transient error, which the task's retry policy then handles.
"""

from __future__ import annotations

import time

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lab.errors import ArchetypeError
from providers import labs, provider_of
from providers.base import CleanupReport, CommandResult, LinkEnd, NodeStatus
from tasks.labs import log_report
from tasks.retry import retry_if_transient
from topology import Node, NodeRef

_RETRYING = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}
POST_BOOT_RETRIES = 1
POST_BOOT_RETRY_DELAY = 2.0


# Discovery asks every runtime: a daemon restarting (libvirtd, with a containers-only lab)
# must not fail the deploy, hence the retries.
@task(name="running-nodes", task_run_name="running-nodes/{lab_id}", **_RETRYING)
def running_nodes(lab_id: str) -> set[str]:
    """The lab's nodes running right now, before this run touches anything."""
    return labs.running_nodes(lab_id)


def runtime_name(lab_id: str, node: NodeRef) -> str:
    return provider_of(node).runtime_name(lab_id, node.name)


@task(name="create-node", task_run_name="create-node/{node.name}", **_RETRYING)
def create_node(lab_id: str, node: Node, ends: list[LinkEnd]) -> NodeStatus:
    started = time.monotonic()
    status = provider_of(node).create_node(lab_id, node, ends)
    get_run_logger().info("%s %s (%s) in %.1f s", status.runtime_name, status.state, node.kind, time.monotonic() - started)
    return status


@task(name="wire-node", task_run_name="wire-node/{node.name}", **_RETRYING)
def wire_node(lab_id: str, node: Node, ends: list[LinkEnd]) -> None:
    provider_of(node).wire_node(lab_id, node, ends)
    if ends:
        get_run_logger().info("wired %s", ", ".join(f"{e.interface}@vlan{e.vlan}" for e in ends))


@task(name="wait-ready", task_run_name="wait-ready/{node.name}", **{**_RETRYING, "retries": 1})
def wait_ready(lab_id: str, node: NodeRef) -> float:
    seconds = provider_of(node).wait_ready(lab_id, node)
    get_run_logger().info("%s ready after %.1f s", node.name, seconds)
    return seconds


@task(name="post-boot", task_run_name="post-boot/{node.name}", cache_policy=NO_CACHE)
def post_boot(lab_id: str, node: Node, already_done: bool = False) -> list[CommandResult]:
    """The vendor's post-boot commands and the node's ``exec``, once per node's life: a node
    that a previous deploy configured and that kept running is not configured again (its
    ``exec`` lines need not be idempotent, as in containerlab).

    Retried here, not by Prefect, because a retry must know how far the commands got: a
    transient failure (the console dropped, a command timed out) resumes at the command
    that failed; a command that ran and failed is not run again, nor is any before it."""
    logger = get_run_logger()
    if already_done:
        logger.info("%s was configured by a previous deploy and kept running: post-boot skipped", node.name)
        return []
    done: list[CommandResult] = []  # filled as commands succeed: a retry starts after them
    for attempt in range(POST_BOOT_RETRIES + 1):
        try:
            provider_of(node).run_post_boot(lab_id, node, done)
            break
        except ArchetypeError as err:
            if not err.transient or attempt == POST_BOOT_RETRIES:
                raise
            logger.warning("%s: %s; retrying from command %d", node.name, err, len(done) + 1)
            time.sleep(POST_BOOT_RETRY_DELAY)
    for result in done:
        logger.info("%s: %r -> %s in %.2f s", node.name, result.command, result.exit_code, result.seconds)
    return done


@task(name="extract-config", task_run_name="extract-config/{node.name}", **{**_RETRYING, "retries": 1})
def extract_config(lab_id: str, node: NodeRef) -> str:
    return provider_of(node).extract_config(lab_id, node)


@task(name="remove-stale-nodes", task_run_name="remove-stale-nodes/{lab_id}", **_RETRYING)
def remove_nodes_not_in(lab_id: str, wanted: list[str]) -> CleanupReport:
    """A converging deploy removes the lab's nodes that its topology no longer has."""
    report = labs.remove_nodes_not_in(lab_id, wanted)
    log_report(report)
    return report
