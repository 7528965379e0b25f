"""deploy-lab: validate -> recover network -> allocate VLANs -> per node, in parallel:
bring-up (create -> wire -> wait for readiness) -> post-boot commands -> publish state.

Each node's stage (created, wired, ready, configured) is tracked as it is reached
(``lab.progress``): the command line shows it live, the run shows a progress artifact
and the lab's state table as it fills; the result gives every stage's time.

Idempotent: run again on a lab that is half there, it converges, reusing the nodes and
VLANs that exist.
"""

from __future__ import annotations

import contextvars
import heapq
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from lab import config_errors, names
from lab.config_errors import ConfigRefusedError
from lab.locks import lab_lock
from lab.progress import DeployProgress, Snapshot
from lab.settings import get_settings
from lab.state import LabState, LabStatus, LinkRecord, NodePhase, NodeRecord, Stage
from tasks.controls import apply_links, keep_link_controls, links_with_controls
from tasks.mgmt import ensure_mgmt_network, publish_lab_picture, starting_from_saved_configs
from tasks.network import allocate_vlans, plan_host_ends, plan_link_ends, remove_links_not_in, wire_host_ends
from tasks.nodes import (
    bring_up_node,
    failed_stage,
    lab_nodes,
    post_boot,
    refused_lines,
    remove_nodes_not_in,
    runtime_name,
)
from tasks.state import ProgressArtifacts, load_lab_state, publish_lab_state
from topology import Lab, load_topology
from topology.addressing import assign
from topology.stages import BRING_UP, POST_BOOT, stage_waits


def _run_name() -> str:
    """``deploy-lab/<lab>`` from the ``name:`` line of YAML text, or from a file's name: no
    file is opened and nothing is parsed before validation (DESIGN.md, Security)."""
    from prefect.runtime import flow_run

    topology = str(flow_run.parameters.get("topology", ""))
    if "\n" in topology:
        found = re.search(r"^name:\s*['\"]?([a-z][a-z0-9-]{0,19})['\"]?\s*$", topology, re.MULTILINE)
        name = found.group(1) if found else "invalid"
    else:
        name = PurePath(topology).stem
    return f"deploy-lab/{name if names.is_valid_lab_id(name) else 'invalid'}"


# A submitted task holds a pool thread while it waits for its upstream task, so a lab
# needs up to 2 threads per node to start every node at once: with 32, a 20-node lab
# created 8 nodes at a time (docs/performance.md). Threads are only made when needed.
STAGE_THREADS = 512


@flow(name="deploy-lab", flow_run_name=_run_name, task_runner=ThreadPoolTaskRunner(max_workers=STAGE_THREADS))
def deploy_lab(topology: str, from_configs: bool = False, strict: bool = False, test: bool = False) -> dict[str, Any]:
    """Deploy a lab of containers and VMs, or converge one that is half there.

    Args:
        topology: a path to a topology file on the lab host, or the YAML text itself.
        from_configs: start each node from its last extracted config (the lab's configs
            folder) instead of the topology's startup-config; nodes without one start as
            the topology says.
        strict: a startup-config line a device refuses fails its node. Otherwise the node
            comes up ready with the rest applied, and carries the line in `config_errors`.
        test: run the lab's tests (its topology's `validate:`) once it is deployed (a
            test-lab run); a failed test fails the deploy.
    """
    flow_started_at = time.time()
    lab = load_topology(topology)  # invalid input fails the run here, before anything exists
    for warning in lab.warnings:
        get_run_logger().warning(warning)
    if from_configs:
        lab = starting_from_saved_configs(lab)
    from flows import fleet
    from flows.test_lab import after_deploy, check_testable
    from tasks.checks import publish_checks

    if test:
        check_testable(lab)
    publish_checks(lab.id, lab.checks)  # what test-lab runs (beside the lab's state)
    hosts = fleet.fleet_hosts()
    if hosts:  # a fleet shares this server: place the lab; a lab on other hosts is coordinated
        outcome = fleet.deploy_across_hosts(lab, hosts, strict=strict)
        if outcome is not None:
            return after_deploy(lab.id, outcome) if test else outcome
    result, failure = converge_here(lab, flow_started_at=flow_started_at, strict=strict)
    from tasks.snapshots import remember_deployed_topology

    remember_deployed_topology(lab)  # what snapshot-lab freezes the lab's topology from
    if failure:  # the run shows failed; its result still says which nodes came up
        return Failed(message=failure, data=result)
    return after_deploy(lab.id, result) if test else result


def converge_here(
    lab: Lab, *, state_key: str | None = None, whole: Lab | None = None, tunnels: tuple = (),
    flow_started_at: float | None = None, strict: bool = False,
) -> tuple[dict[str, Any], str | None]:
    """Deploy (or converge) the lab's nodes on this host: (result, failure message or None).
    A host's slice of a multi-host lab passes its own ``state_key``, the ``whole`` lab (its
    nodes on other hosts, and the address plan over all nodes) and the tunnels of its
    cross-host links (link id, node, VNI, remote)."""
    from tasks.network import wire_tunnels

    flow_started_at = flow_started_at or time.time()
    with lab_lock(lab.id):
        remote_nodes = frozenset(whole.nodes) - frozenset(lab.nodes) if whole else frozenset()
        previous = load_lab_state(lab.id, state_key)
        remembered = {n.name: n.mgmt_ipv4 for n in previous.nodes if n.mgmt_ipv4} if previous else {}
        # every node's management address (those a previous deploy gave stay)
        lab = assign(lab, ensure_mgmt_network(whole or lab), whole, remembered)
        vlans = allocate_vlans(lab, previous, remote_nodes)
        publish_lab_picture(lab, vlans, return_state=True)  # a picture that fails fails no deploy
        ends = plan_link_ends(lab, vlans)
        host_ends = plan_host_ends(lab, vlans)
        present = lab_nodes(lab.id)
        configured = _configured_before(previous, {name for name, running in present.items() if running})
        state = _planned_state(lab, vlans, {**ends, "": host_ends}, configured)
        _keep_config_errors(previous, state)
        keep_link_controls(previous, state)  # a link's state and impairment survive a redeploy
        publish_lab_state(state, state_key)  # the allocation is remembered before any port exists
        if set(present) - set(lab.nodes):  # a converging deploy: nodes the topology no longer has
            remove_nodes_not_in(lab.id, list(lab.nodes))
        remove_links_not_in(lab)
        if whole is not None or tunnels or _had_tunnels(previous):  # a lab on one host only never had one
            wire_tunnels(lab.id, list(tunnels), vlans, get_settings().data_address)
        if host_ends:
            host_wired = wire_host_ends(lab.id, host_ends, return_state=True)
            if not host_wired.is_completed():
                state.errors.append(f"host interfaces: {host_wired.message}")
        progress = _progress(lab, state, state_key)
        with progress.running():  # the progress artifact and the state table fill as it goes
            _bring_up(lab, ends, state, configured, progress, strict)
        _apply_link_controls(state)
        state.status = LabStatus.FAILED if state.errors else LabStatus.DEPLOYED
        publish_lab_state(state, state_key)
    result = _result(state, progress, flow_started_at)
    return result, (f"lab {lab.id}: " + "; ".join(state.errors)[:1000] if state.errors else None)


def _had_tunnels(previous: LabState | None) -> bool:
    """The lab's record has cross-host links: it ran on several hosts (all on this one now)."""
    return previous is not None and any(link.vni or link.vnis for link in previous.links)


def _configured_before(previous: LabState | None, running: set[str]) -> set[str]:
    """Nodes a previous deploy brought to ready and that kept running since."""
    if previous is None:
        return set()
    return {n.name for n in previous.nodes if n.state is NodePhase.READY and n.name in running}


def _keep_config_errors(previous: LabState | None, state: LabState) -> None:
    """A node configured by a previous deploy is not configured again: what its device
    refused then still stands."""
    before = {n.name: n.config_errors for n in previous.nodes} if previous else {}
    for record in state.nodes:
        if record.state is NodePhase.READY:
            record.config_errors = list(before.get(record.name, []))


def _planned_state(lab: Lab, vlans: dict[str, int], ends: dict, configured: set[str]) -> LabState:
    """The lab as this run will make it. Nodes still configured from a previous run stay
    "ready", so that a run killed from here on does not forget it (their post-boot
    commands may not be idempotent)."""
    ports = {end.link_id: [] for node_ends in ends.values() for end in node_ends}
    for node_ends in ends.values():
        for end in node_ends:
            ports[end.link_id].append(end.port_name)
    return LabState(
        lab_id=lab.id,
        status=LabStatus.ALLOCATED,
        nodes=[
            NodeRecord(name=n.name, kind=n.kind, provider=n.vendor.provider.value,
                       runtime_name=runtime_name(lab.id, n),
                       state=NodePhase.READY if n.name in configured else NodePhase.PLANNED,
                       host=get_settings().host_name, exec_lines=list(n.exec), mgmt_ipv4=n.mgmt_ipv4)
            for n in lab.nodes.values()
        ],
        links=[
            LinkRecord(id=link.id, endpoints=[str(end) for end in link.ends], vlan=vlans[link.id],
                       ports=ports.get(link.id, []))
            for link in lab.links
        ],
    )


def _progress(lab: Lab, planned: LabState, state_key: str | None = None) -> DeployProgress:
    """The deploy's progress, written to the run as a progress artifact and as the lab's
    state table with each node's state as it is reached."""
    planned = planned.model_copy(deep=True)

    def state_table(snapshot: Snapshot) -> None:
        if not snapshot.finished:  # the flow publishes the final state itself
            publish_lab_state(_filling(planned, snapshot), state_key)

    return DeployProgress(lab.id, list(lab.nodes), ProgressArtifacts(names.progress_artifact_key(lab.id), state_table))


def _filling(planned: LabState, snapshot: Snapshot) -> LabState:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    state = planned.model_copy(deep=True, update={"status": LabStatus.CREATING, "updated_at": now})
    stages = {n.name: n for n in snapshot.nodes}
    for record in state.nodes:
        node = stages.get(record.name)
        if node is None or record.state is NodePhase.READY:  # configured by a previous deploy: stays ready
            continue
        if node.failed:
            record.fail(Stage(node.failed.partition(":")[0]), node.failed.partition(": ")[2])
        elif "configured" in node.reached:
            record.state = NodePhase.READY
        elif node.reached:
            record.state = NodePhase.RUNNING
    return state


def _bring_up(
    lab: Lab, ends: dict, state: LabState, configured: set[str], progress: DeployProgress, strict: bool = False
) -> None:
    """Each node runs its own chain, so containers are ready while VMs still boot."""
    up, booted = _submit(lab, ends, configured, strict)
    for name, future in up.items():  # failures show at once, not when the loop below gets there
        _on_failure(future, lambda f, name=name: _show_failure(progress, name, f, Stage.CREATE))
    for name, future in booted.items():
        _on_failure(future, lambda f, name=name: _show_failure(progress, name, f, Stage.POST_BOOT))

    for record in state.nodes:
        name = record.name
        up[name].wait()
        if _failed(up[name]):
            stage = _stage_of(up[name], Stage.CREATE)
            record.fail(stage, _error_of(up[name]))
            state.errors.append(f"{name}: {stage}: {record.error}")
            continue
        record.ready_seconds = up[name].result()
        if name in booted:
            booted[name].wait()
            if _failed(booted[name]):
                record.fail(Stage.POST_BOOT, _error_of(booted[name]))
                state.errors.append(f"{name}: {Stage.POST_BOOT}: {record.error}")
                continue
            if name not in configured:  # one configured before keeps what it had
                record.config_errors = refused_lines(booted[name].result())
        elif name not in configured:  # no post-boot: what its provider found at readiness (an FRR node)
            record.config_errors = config_errors.load(lab.id, name)
            if strict and record.config_errors:
                record.fail(Stage.READY, str(ConfigRefusedError(name, record.config_errors)))
                state.errors.append(f"{name}: {Stage.READY}: {record.error}")
                continue
        record.state = NodePhase.READY


def _on_failure(future: PrefectFuture, show: Callable[[PrefectFuture], None]) -> None:
    """Call ``show`` when the future is done, in a copy of this thread's context: the pool
    thread that completes it has left the task's context, and a Prefect client made there
    without the run's settings (PREFECT_API_URL set by the command line) would start a
    temporary server of its own."""
    context = contextvars.copy_context()
    future.add_done_callback(lambda f: context.run(show, f))


def _failed(future: PrefectFuture) -> bool:
    """Failed, crashed, or never run (it waited for a node, per ``stages``, that failed)."""
    return not future.state.is_completed()


def _submit(
    lab: Lab, ends: dict, configured: set[str], strict: bool = False
) -> tuple[dict[str, PrefectFuture], dict[str, PrefectFuture]]:
    """Each node's bring-up and post-boot (a node with no post-boot command gets no
    post-boot task), each waiting for what the node's containerlab ``stages``/``wait-for``
    name. Every bring-up is submitted before any post-boot where the waits allow, so that
    bring-ups never queue behind post-boots waiting for their node, even when the pool is
    smaller than the lab."""
    booting = {name for name, node in lab.nodes.items() if node.post_boot_commands}
    waits = stage_waits(lab.nodes, booting)
    up: dict[str, PrefectFuture] = {}
    booted: dict[str, PrefectFuture] = {}
    futures = {BRING_UP: up, POST_BOOT: booted}
    for name, step in _submission_order(waits, list(lab.nodes)):
        node, after = lab.nodes[name], [futures[s][n] for n, s in waits[(name, step)]]
        if step == BRING_UP:
            up[name] = bring_up_node.submit(lab.id, node, ends[name], wait_for=after)
        else:
            booted[name] = post_boot.submit(lab.id, node, already_done=name in configured, strict=strict,
                                            wait_for=after)
    return up, booted


def _submission_order(waits: dict[tuple[str, str], list[tuple[str, str]]], nodes: list[str]) -> list[tuple[str, str]]:
    """An order in which every wait comes first: bring-ups, then post-boots, in node order
    where the waits allow (the topology refuses wait-for cycles, so every step is reached)."""
    rank = {key: ((BRING_UP, POST_BOOT).index(key[1]), nodes.index(key[0])) for key in waits}
    pending = {key: set(deps) for key, deps in waits.items()}
    ready = [(rank[key], key) for key, deps in pending.items() if not deps]
    heapq.heapify(ready)
    order: list[tuple[str, str]] = []
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for other, deps in pending.items():
            if key in deps:
                deps.discard(key)
                if not deps:
                    heapq.heappush(ready, (rank[other], other))
    return order


def _stage_of(future: PrefectFuture, default: Stage) -> Stage:
    try:
        future.result()
    except Exception as err:  # noqa: BLE001 - we only read which stage it came from
        return failed_stage(err, default)
    return default


def _show_failure(progress: DeployProgress, name: str, future: PrefectFuture, default: Stage) -> None:
    # Done already, so this returns at once and keeps the task's final state: without it,
    # ``future.state`` asks the API, which may not have recorded the end yet (task states
    # travel as events) and says "Running": a node shown failed after it was configured.
    future.wait()
    if _failed(future):
        progress.fail(name, _stage_of(future, default).value, _error_of(future))


def _apply_link_controls(state: LabState) -> None:
    links = links_with_controls(state)
    if not links:
        return
    try:
        apply_links(state.lab_id, state, links)
    except Exception as err:  # noqa: BLE001 - reported with the run's other errors
        state.errors.append(f"link state and impairment: {err}")


def _error_of(future: PrefectFuture) -> str:
    try:
        future.result()
    except Exception as err:  # noqa: BLE001 - we report it
        return str(err) or err.__class__.__name__
    return "unknown error"


def _result(state: LabState, progress: DeployProgress, flow_started_at: float) -> dict[str, Any]:
    stages = progress.timings()
    return {
        "lab_id": state.lab_id,
        "nodes": [
            {"name": n.name, "kind": n.kind, "provider": n.provider, "state": n.shown_state,
             "ready_seconds": n.ready_seconds, "stages": stages.get(n.name, {}), "host": n.host,
             "mgmt_ipv4": n.mgmt_ipv4, "config_errors": config_errors.as_json(n.config_errors)}
            for n in state.nodes
        ],
        "links": [{"endpoints": link.endpoints, "vlan": link.vlan} for link in state.links],
        "errors": state.errors,
        # Wall-clock times (epoch seconds) of the flow's own steps, to line up with a
        # caller's clock (benchmarks/run.py): node stages above count from bring_up_started_at.
        "timings": {"flow_started_at": flow_started_at, "bring_up_started_at": progress.started_at,
                    "finished_at": time.time()},
    }
