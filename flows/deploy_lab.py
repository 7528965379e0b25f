"""deploy-lab: validate -> recover network -> allocate VLANs -> per node, in parallel:
create -> wire -> wait for readiness -> post-boot commands -> publish state.

Idempotent: run again on a lab that is half there, it converges, reusing the nodes and
VLANs that exist.
"""

from __future__ import annotations

import heapq
import re
from pathlib import PurePath
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from lab import names
from lab.locks import lab_lock
from lab.state import LabState, LabStatus, LinkRecord, NodePhase, NodeRecord, Stage
from tasks.network import allocate_vlans, plan_host_ends, plan_link_ends, remove_links_not_in, wire_host_ends
from tasks.nodes import (
    create_node,
    post_boot,
    remove_nodes_not_in,
    running_nodes,
    runtime_name,
    wait_ready,
    wire_node,
)
from tasks.state import load_lab_state, publish_lab_state
from topology import Lab, load_topology


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


# A submitted stage holds a pool thread while it waits for its upstream stage, so a lab
# needs up to 4 threads per node to start every node at once: with 32, a 20-node lab
# created 8 nodes at a time (docs/performance.md). Threads are only made when needed.
STAGE_THREADS = 512


@flow(name="deploy-lab", flow_run_name=_run_name, task_runner=ThreadPoolTaskRunner(max_workers=STAGE_THREADS))
def deploy_lab(topology: str) -> dict[str, Any]:
    """Deploy a lab of containers and VMs, or converge one that is half there.

    Args:
        topology: a path to a topology file on the lab host, or the YAML text itself.
    """
    lab = load_topology(topology)  # invalid input fails the run here, before anything exists
    for warning in lab.warnings:
        get_run_logger().warning(warning)
    with lab_lock(lab.id):
        previous = load_lab_state(lab.id)
        vlans = allocate_vlans(lab, previous)
        ends = plan_link_ends(lab, vlans)
        host_ends = plan_host_ends(lab, vlans)
        configured = _configured_before(previous, running_nodes(lab.id))
        state = _planned_state(lab, vlans, {**ends, "": host_ends}, configured)
        publish_lab_state(state)  # the allocation is remembered before any port exists
        remove_nodes_not_in(lab.id, list(lab.nodes))
        remove_links_not_in(lab)
        if host_ends:
            host_wired = wire_host_ends(lab.id, host_ends, return_state=True)
            if not host_wired.is_completed():
                state.errors.append(f"host interfaces: {host_wired.message}")
        outcome = _bring_up(lab, ends, state, configured)
        state.status = LabStatus.FAILED if state.errors else LabStatus.DEPLOYED
        publish_lab_state(state)
    result = _result(state, outcome)
    if state.errors:  # the run shows failed; its result still says which nodes came up
        return Failed(message=f"lab {lab.id}: " + "; ".join(state.errors)[:1000], data=result)
    return result


def _configured_before(previous: LabState | None, running: set[str]) -> set[str]:
    """Nodes a previous deploy brought to ready and that kept running since."""
    if previous is None:
        return set()
    return {n.name for n in previous.nodes if n.state is NodePhase.READY and n.name in running}


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
                       state=NodePhase.READY if n.name in configured else NodePhase.PLANNED)
            for n in lab.nodes.values()
        ],
        links=[
            LinkRecord(id=link.id, endpoints=[str(end) for end in link.ends], vlan=vlans[link.id],
                       ports=ports.get(link.id, []))
            for link in lab.links
        ],
    )


def _bring_up(lab: Lab, ends: dict, state: LabState, configured: set[str]) -> dict[str, dict[Stage, PrefectFuture | None]]:
    """Each node runs its own chain, so containers are ready while VMs still boot."""
    chains = _submit_stages(lab, ends, configured)
    records = {record.name: record for record in state.nodes}
    for chain in chains.values():
        chain[Stage.CREATE].wait()
    state.status = LabStatus.CREATING
    _record_created(records, chains)
    publish_lab_state(state)  # after node creation

    for name, chain in chains.items():
        record = records[name]
        for stage in Stage:
            future = chain[stage]
            if future is None:  # nothing to run at that stage
                continue
            future.wait()
            if not future.state.is_completed():  # failed, crashed, or never run (it waited for a failure)
                record.fail(stage, _error_of(future))
                state.errors.append(f"{name}: {stage}: {record.error}")
                break
            if future.state.is_completed() and stage is Stage.READY:
                record.ready_seconds = future.result()
        else:
            record.state = NodePhase.READY
    return chains


def _submit_stages(lab: Lab, ends: dict, configured: set[str]) -> dict[str, dict[Stage, PrefectFuture | None]]:
    """Each node's stages as tasks, each waiting for its own previous stage and for the
    stages of other nodes its containerlab ``stages``/``wait-for`` name. Submitted stage by
    stage where the waits allow (every create first), so that creates are never queued
    behind other nodes' waiting stages even when the pool is smaller than the lab."""
    booting = {name for name, node in lab.nodes.items() if node.post_boot_commands}  # the others get no task

    def present(name: str, stage: str) -> Stage:  # a wait for a post-boot that is not run: its ready
        return Stage.READY if stage == Stage.POST_BOOT and name not in booting else Stage(stage)

    waits: dict[tuple[str, Stage], list[tuple[str, Stage]]] = {}
    for name, node in lab.nodes.items():
        own = [s for s in Stage if present(name, s) == s]
        for i, stage in enumerate(own):
            waits[(name, stage)] = [(name, own[i - 1])] if i else []
        for wait in node.wait_for:
            key, dep = (name, present(name, wait.stage)), (wait.node, present(wait.node, wait.node_stage))
            if dep != key and dep not in waits[key]:
                waits[key].append(dep)
    submit = {
        Stage.CREATE: lambda name, node, after: create_node.submit(lab.id, node, ends[name], wait_for=after),
        Stage.WIRE: lambda name, node, after: wire_node.submit(lab.id, node, ends[name], wait_for=after),
        Stage.READY: lambda name, node, after: wait_ready.submit(lab.id, node, wait_for=after),
        Stage.POST_BOOT: lambda name, node, after: post_boot.submit(
            lab.id, node, already_done=name in configured, wait_for=after),
    }
    futures: dict[tuple[str, Stage], PrefectFuture] = {}
    for key in _stage_order(waits, list(lab.nodes)):
        name, stage = key
        futures[key] = submit[stage](name, lab.nodes[name], [futures[dep] for dep in waits[key]])
    return {name: {stage: futures.get((name, stage)) for stage in Stage} for name in lab.nodes}


def _stage_order(waits: dict[tuple[str, Stage], list[tuple[str, Stage]]], nodes: list[str]) -> list[tuple[str, Stage]]:
    """A submission order in which every wait comes first: by stage, then node order (the
    topology refuses wait-for cycles, so every stage is reached)."""
    rank = {key: (list(Stage).index(key[1]), nodes.index(key[0])) for key in waits}
    pending = {key: set(deps) for key, deps in waits.items()}
    ready = [(rank[key], key) for key, deps in pending.items() if not deps]
    heapq.heapify(ready)
    order: list[tuple[str, Stage]] = []
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for other, deps in pending.items():
            if key in deps:
                deps.discard(key)
                if not deps:
                    heapq.heappush(ready, (rank[other], other))
    return order


def _record_created(records: dict[str, NodeRecord], chains: dict) -> None:
    for name, chain in chains.items():
        future = chain[Stage.CREATE]
        if future.state.is_completed() and records[name].state is not NodePhase.READY:  # ready: configured before
            running = future.result().state.value == NodePhase.RUNNING.value
            records[name].state = NodePhase.RUNNING if running else NodePhase.STOPPED


def _error_of(future: PrefectFuture) -> str:
    try:
        future.result()
    except Exception as err:  # noqa: BLE001 - we report it
        return str(err) or err.__class__.__name__
    return "unknown error"


def _result(state: LabState, _outcome: dict) -> dict[str, Any]:
    return {
        "lab_id": state.lab_id,
        "nodes": [
            {"name": n.name, "kind": n.kind, "provider": n.provider, "state": n.shown_state,
             "ready_seconds": n.ready_seconds}
            for n in state.nodes
        ],
        "links": [{"endpoints": link.endpoints, "vlan": link.vlan} for link in state.links],
        "errors": state.errors,
    }
