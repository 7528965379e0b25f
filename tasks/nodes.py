"""Per-node tasks: thin wrappers over the node's provider, reporting each stage reached
to the deploy's progress (``lab.progress``).

Timeouts live in the providers (the vendor's readiness, command and extraction timeouts),
not on the tasks: Prefect cannot interrupt a task running in a worker thread, so a task
timeout would only fire after the blocking call returned. A provider timeout raises a
transient error, which the task's retry policy then handles.
"""

from __future__ import annotations

import time

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lab import config_errors, progress
from lab.config_errors import ConfigError, ConfigRefusedError
from lab.errors import ArchetypeError
from lab.state import Stage
from providers import labs, provider_of
from providers.base import CleanupReport, CommandResult, LinkEnd, NodeState
from tasks.labs import log_report
from tasks.retry import retry_if_transient
from topology import Node, NodeRef

_RETRYING = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}
POST_BOOT_RETRIES = 1
POST_BOOT_RETRY_DELAY = 2.0


# Discovery asks every runtime: a daemon restarting (libvirtd, with a containers-only lab)
# must not fail the deploy, hence the retries.
@task(name="lab-nodes", task_run_name="lab-nodes/{lab_id}", **_RETRYING)
def lab_nodes(lab_id: str) -> dict[str, bool]:
    """The lab's nodes on this host right now, before this run touches anything: name ->
    running (one discovery serves both what kept running and what is no longer wanted)."""
    return {node.name: node.state is NodeState.RUNNING for node in labs.lab_nodes(lab_id)}


def runtime_name(lab_id: str, node: Node) -> str:
    return provider_of(node).node_runtime_name(lab_id, node)


STAGE_ATTRIBUTE = "archetype_stage"  # set on an error leaving bring-up: the Stage it failed in


def failed_stage(err: BaseException, default: Stage = Stage.CREATE) -> Stage:
    return getattr(err, STAGE_ATTRIBUTE, default)


def _retry_bring_up(task: object, task_run: object, state: object) -> bool:
    """Transient errors are retried (twice); a readiness timeout only once, as before the
    stages shared a task: a node that never answers fails in two timeouts, not three."""
    if not retry_if_transient(task, task_run, state):
        return False
    try:
        state.result()  # type: ignore[attr-defined]
    except Exception as err:  # noqa: BLE001 - classified only
        return failed_stage(err) is not Stage.READY or getattr(task_run, "run_count", 1) < 2
    return False


# One task per node for the idempotent stages (create, wire, readiness): a retry starts
# again from the create, which finds the container made (and only starts it if it
# stopped), and the wiring converges. One task run instead of three cuts what each node
# costs the Prefect server (docs/performance.md); the stages show in the run's progress.
@task(name="bring-up", task_run_name="bring-up/{node.name}", **{**_RETRYING, "retry_condition_fn": _retry_bring_up})
def bring_up_node(lab_id: str, node: Node, ends: list[LinkEnd]) -> float:
    """Create, wire and wait for the node; returns the seconds it took to answer. An
    error leaving it names the stage (``failed_stage``)."""
    logger = get_run_logger()
    provider = provider_of(node)
    stage = Stage.CREATE
    if node.startup_delay:  # containerlab's startup-delay
        logger.info("%s: startup-delay %.1f s", node.name, node.startup_delay)
        time.sleep(node.startup_delay)
    try:
        started = time.monotonic()
        status = provider.create_node(lab_id, node, ends)
        progress.advance(lab_id, node.name, "created")
        logger.info("%s %s (%s) in %.1f s", status.runtime_name, status.state, node.kind, time.monotonic() - started)
        stage = Stage.WIRE
        provider.wire_node(lab_id, node, ends)
        progress.advance(lab_id, node.name, "wired")
        if ends:
            logger.info("wired %s", ", ".join(f"{e.interface}@vlan{e.vlan}" for e in ends))
        stage = Stage.READY
        seconds = provider.wait_ready(lab_id, node)
    except Exception as err:
        setattr(err, STAGE_ATTRIBUTE, stage)
        raise
    progress.advance(lab_id, node.name, "ready" if node.post_boot_commands else "configured")
    logger.info("%s ready after %.1f s", node.name, seconds)
    return seconds


@task(name="wire-node", task_run_name="wire-node/{node.name}", **_RETRYING)
def wire_node(lab_id: str, node: Node, ends: list[LinkEnd]) -> None:
    """Wire a node again (a restarted container has a new network namespace)."""
    provider_of(node).wire_node(lab_id, node, ends)
    if ends:
        get_run_logger().info("wired %s", ", ".join(f"{e.interface}@vlan{e.vlan}" for e in ends))


@task(name="wait-ready", task_run_name="wait-ready/{node.name}", **{**_RETRYING, "retries": 1})
def wait_ready(lab_id: str, node: NodeRef) -> float:
    seconds = provider_of(node).wait_ready(lab_id, node)
    get_run_logger().info("%s ready after %.1f s", node.name, seconds)
    return seconds


def refused_lines(results: list[CommandResult]) -> list[ConfigError]:
    """The node's config errors among its post-boot results: a provider leaves a failed
    result only for a startup-config line the device refused (``run_post_boot``)."""
    return [ConfigError.refused(result.command, result.output) for result in results if not result.ok]


@task(name="post-boot", task_run_name="post-boot/{node.name}", cache_policy=NO_CACHE)
def post_boot(lab_id: str, node: Node, already_done: bool = False, strict: bool = False) -> list[CommandResult]:
    """The vendor's post-boot commands and the node's ``exec``, once per node's life: a node
    that a previous deploy configured and that kept running is not configured again (its
    ``exec`` lines need not be idempotent, as in containerlab).

    Startup-config lines the device refuses are the node's config errors (``refused_lines``
    of the result): a warning each, kept on this host for ``status``; ``strict`` makes them
    fail the node instead.

    Retried here, not by Prefect, because a retry must know how far the commands got: a
    transient failure (the console dropped, a command timed out) resumes at the command
    that failed; a command that ran and failed is not run again, nor is any before it."""
    logger = get_run_logger()
    if already_done:
        logger.info("%s was configured by a previous deploy and kept running: post-boot skipped", node.name)
        progress.advance(lab_id, node.name, "configured")
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
    refused = refused_lines(done)
    for error in refused:
        logger.warning("%s: startup-config line refused: %s", node.name, error.text())
    config_errors.save(lab_id, node.name, refused)
    if refused and strict:
        raise ConfigRefusedError(node.name, refused)
    progress.advance(lab_id, node.name, "configured")
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
