"""Tasks of a running lab's controls: stop and start a node, put links' state and
impairment on the host, run a command on a node, capture a link to a file."""

from __future__ import annotations

import os
import subprocess
import time

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lab import names
from lab.errors import ArchetypeError, ProviderError
from lab.state import LabState, LinkRecord, NodePhase, NodeRecord
from providers import controls, get_provider, provider_of
from providers.base import CommandResult, NodeState
from providers.controls import (  # noqa: F401 - the flows' look-ups and checks, through this layer
    LINK_STATES,
    captures_dir,
    check_can_stop,
    check_lab,
    check_lab_id,
    find_link,
    is_here,
    link_ends_of,
    link_view,
    links_of,
    live_node,
    live_port,
    new_conditions,
    node_of,
    node_record,
)
from providers.network import relays
from tasks.retry import retry_if_transient
from topology import NodeRef

_RETRYING = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}


@task(name="stop-node", task_run_name="stop-node/{record.name}", **_RETRYING)
def stop_node(lab_id: str, state: LabState, record: NodeRecord) -> None:
    """Stop the node, then the relays of its impaired links (their port went with it). In
    that order: what the node says as it goes (a BGP NOTIFICATION) still reaches its peers."""
    get_provider(record.provider).stop_node(lab_id, record.name)
    for link in controls.links_of(state, record.name):
        relays.stop_relay(lab_id, link.id)
    get_run_logger().info("%s stopped", record.name)


@task(name="start-node", task_run_name="start-node/{record.name}", **_RETRYING)
def start_node(lab_id: str, record: NodeRecord) -> bool:
    """Start the node if it is stopped; True when it was (its runtime config is then gone)."""
    provider = get_provider(record.provider)
    status = provider.node_status(lab_id, record.name)
    if status.state is NodeState.MISSING:
        raise ProviderError(f"node {record.name} of lab {lab_id} no longer exists: deploy the lab again")
    if status.state is NodeState.RUNNING:
        get_run_logger().info("%s is running already", record.name)
        return False
    provider.start_node(lab_id, record.name)
    get_run_logger().info("%s started", record.name)
    return True


@task(name="apply-links", task_run_name="apply-links/{lab_id}", **_RETRYING)
def apply_links(lab_id: str, state: LabState, links: list[LinkRecord]) -> list[str]:
    """Put each link's recorded state and impairment on this host's ends (idempotent)."""
    logger = get_run_logger()
    stopped = _stopped_elsewhere(lab_id, state, links)
    notes = []
    for link in links:
        notes += controls.apply_link(lab_id, state, link, stopped)
        logger.info("link %s: %s%s", link.id, link.state, f", {link.conditions.text()}" if link.conditions.active else "")
    for note in notes:
        logger.info(note)
    return notes


def _stopped_elsewhere(lab_id: str, state: LabState, links: list[LinkRecord]) -> frozenset[str]:
    """The links' nodes on other hosts that the lab's record says are stopped or failed (the
    coordinator records a stop before the peers' hosts take their carrier; a host's carrier
    watcher, a node that stopped outside any flow)."""
    elsewhere = {node for link in links for node in (e.partition(":")[0] for e in link.endpoints)
                 if not controls.is_here(state, node)}
    if not elsewhere:
        return frozenset()
    from tasks.state import load_lab_state

    whole = load_lab_state(lab_id)
    return frozenset(n.name for n in (whole.nodes if whole else []) if n.name in elsewhere
                     and n.state in (NodePhase.STOPPED, NodePhase.FAILED))


def links_with_controls(state: LabState) -> list[LinkRecord]:
    """Links whose record asks for more than a plain VLAN (down, or impaired); those with an
    end here whose carrier a stopped peer took (a redeploy starts every node); and those of
    a node that failed (not running, it takes its peers' carrier)."""
    held = controls.carrier_held(state.lab_id)
    failed = {n.name for n in state.nodes if n.state is NodePhase.FAILED}
    return [link for link in state.links if link.state == "down" or link.conditions.active
            or any(names.host_port_name(state.lab_id, *e.split(":", 1)) in held or e.partition(":")[0] in failed
                   for e in link.endpoints)]


def keep_link_controls(previous: LabState | None, state: LabState) -> None:
    """Carry each link's recorded state and impairment into a redeploy's new state record."""
    if previous is None:
        return
    before = {link.id: link for link in previous.links}
    for link in state.links:
        if link.id in before:
            link.state, link.conditions = before[link.id].state, before[link.id].conditions


@task(name="run-command", task_run_name="run-command/{node.name}", cache_policy=NO_CACHE)
def run_command(lab_id: str, node: NodeRef, command: list[str], timeout: float) -> CommandResult:
    result = provider_of(node).run_command(lab_id, node, command, timeout)
    get_run_logger().info("%s: %s -> %s in %.2f s", node.name, result.command,
                          "timed out" if result.exit_code is None else result.exit_code, result.seconds)
    return result


@task(name="capture", task_run_name="capture/{port_name}", cache_policy=NO_CACHE)
def capture_to_file(port_name: str, path: str, count: int, seconds: float) -> int:
    """tcpdump on the host port into ``path`` until ``count`` packets or ``seconds`` passed;
    returns the packets captured."""
    argv = controls.tcpdump_argv(port_name, path, count)
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(2)  # SIGINT: tcpdump flushes the file and says how many it took
        _, err = process.communicate(timeout=10)
    if process.returncode not in (0, -2, 130) or not os.path.exists(path):
        raise ArchetypeError(f"tcpdump on {port_name} failed ({process.returncode}): {err.strip()[-500:]}")
    os.chmod(path, 0o600)
    captured = controls.captured_count(err)
    get_run_logger().info("%d packets from %s in %.1f s into %s", captured, port_name, time.monotonic() - started, path)
    return captured
