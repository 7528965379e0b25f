"""deploy-lab: validate -> recover network -> allocate VLANs -> per node, in parallel:
create -> wire -> wait for readiness -> post-boot commands -> publish state.

Idempotent: run again on a lab that is half there, it converges, reusing the nodes and
VLANs that exist.
"""

from __future__ import annotations

from typing import Any

import yaml
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from lab.errors import ArchetypeError
from lab.locks import lab_lock
from lab.state import LabState, LabStatus, LinkRecord, NodeRecord
from lab.topology import Lab, load_topology
from tasks.network import allocate_vlans, plan_link_ends
from tasks.nodes import create_node, post_boot, remove_nodes_not_in, wait_ready, wire_node
from tasks.state import load_lab_state, publish_lab_state

STAGES = ("create", "wire", "ready", "post-boot")


class DeployError(ArchetypeError):
    """Some nodes did not come up; the state artifact says which and why."""


def _run_name() -> str:
    from prefect.runtime import flow_run

    try:
        document = yaml.safe_load(_topology_text(flow_run.parameters.get("topology", "")))
        return f"deploy-lab/{document['name']}"
    except Exception:  # noqa: BLE001 - a bad topology still gets a run, which then fails clearly
        return "deploy-lab/invalid"


def _topology_text(topology: str) -> str:
    if "\n" in topology:
        return topology
    with open(topology) as handle:
        return handle.read()


@flow(name="deploy-lab", flow_run_name=_run_name, task_runner=ThreadPoolTaskRunner(max_workers=32))
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
        state = _planned_state(lab, vlans, ends)
        publish_lab_state(state)  # the allocation is remembered before any port exists
        remove_nodes_not_in(lab.id, list(lab.nodes))
        outcome = _bring_up(lab, ends, state)
        state.status = LabStatus.FAILED if state.errors else LabStatus.DEPLOYED
        publish_lab_state(state)
    result = _result(state, outcome)
    if state.errors:
        raise DeployError(f"lab {lab.id}: " + "; ".join(state.errors))
    return result


def _planned_state(lab: Lab, vlans: dict[str, int], ends: dict) -> LabState:
    from lab.names import container_name, domain_name  # runtime names, for the record

    def runtime(node) -> str:
        return container_name(lab.id, node.name) if node.vendor.container else domain_name(lab.id, node.name)

    ports = {end.link_id: [] for node_ends in ends.values() for end in node_ends}
    for node_ends in ends.values():
        for end in node_ends:
            ports[end.link_id].append(end.port_name)
    return LabState(
        lab_id=lab.id,
        status=LabStatus.ALLOCATED,
        nodes=[
            NodeRecord(name=n.name, kind=n.kind, provider=n.vendor.provider.value, runtime_name=runtime(n))
            for n in lab.nodes.values()
        ],
        links=[
            LinkRecord(id=link.id, endpoints=[str(link.a), str(link.b)], vlan=vlans[link.id], ports=ports.get(link.id, []))
            for link in lab.links
        ],
    )


def _bring_up(lab: Lab, ends: dict, state: LabState) -> dict[str, dict[str, PrefectFuture]]:
    """Each node runs its own chain, so containers are ready while VMs still boot."""
    chains: dict[str, dict[str, PrefectFuture]] = {}
    for name, node in lab.nodes.items():
        created = create_node.submit(lab.id, node, ends[name])
        wired = wire_node.submit(lab.id, node, ends[name], wait_for=[created])
        ready = wait_ready.submit(lab.id, node, wait_for=[wired])
        booted = post_boot.submit(lab.id, node, wait_for=[ready])
        chains[name] = dict(zip(STAGES, (created, wired, ready, booted), strict=True))

    records = {record.name: record for record in state.nodes}
    for chain in chains.values():
        chain["create"].wait()
    state.status = LabStatus.CREATING
    _record_stage(records, chains, "create")
    publish_lab_state(state)  # after node creation

    for name, chain in chains.items():
        record = records[name]
        for stage in STAGES:
            future = chain[stage]
            future.wait()
            if future.state.is_failed() or future.state.is_crashed():
                record.state, record.error = f"failed ({stage})", _error_of(future)
                state.errors.append(f"{name}: {stage}: {record.error}")
                break
            if future.state.is_completed() and stage == "ready":
                record.ready_seconds = future.result()
        else:
            record.state = "ready"
    return chains


def _record_stage(records: dict[str, NodeRecord], chains: dict, stage: str) -> None:
    for name, chain in chains.items():
        future = chain[stage]
        if future.state.is_completed():
            records[name].state = future.result().state.value


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
            {"name": n.name, "kind": n.kind, "provider": n.provider, "state": n.state, "ready_seconds": n.ready_seconds}
            for n in state.nodes
        ],
        "links": [{"endpoints": link.endpoints, "vlan": link.vlan} for link in state.links],
        "errors": state.errors,
    }
