"""control-node: stop, start or restart one node of a running lab, keeping its links.

stop -> the peers' ends lose carrier -> (start -> wire its links again -> wait for readiness
-> post-boot, where the node lost it -> its links' state and impairment, the peers' carrier
back) -> publish state. No redeploy: the same VLANs, the same ports, the same container or
domain.

A lab spread over hosts: the run (on any host) gives each host its part as a child run of
``control-node/<host>`` with ``host`` set: the node's host stops or starts the node and sets
its ends there; each host with a peer of the node sets the peer's carrier. The lab's record
says the node is stopped before the peers' hosts look (they read it), and started before
they give carrier back.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect import flow

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.locks import lab_lock
from lab.settings import get_settings
from lab.state import LabState, NodePhase, NodeRecord
from tasks import controls
from tasks.controls import apply_links, start_node, stop_node
from tasks.hosts import publish_report
from tasks.nodes import post_boot, wait_ready, wire_node
from tasks.state import load_lab_state, publish_lab_state

ACTIONS = ("stop", "start", "restart")


@flow(name="control-node", flow_run_name="control-node/{lab}/{node}/{action}")
def control_node(
    lab: str, node: str, action: Literal["stop", "start", "restart"], host: str | None = None,
) -> dict[str, Any]:
    """Stop, start or restart a node of a deployed lab; its links come back as they were.
    While it is stopped, its peers' ends have no carrier.

    Args:
        lab: the lab id.
        node: the node's name in the topology.
        action: stop, start or restart.
        host: leave empty. (A lab spread over hosts: the run gives each host its part, with
            its name here.)
    """
    if action not in ACTIONS:
        raise TopologyError([f"action: {action!r} is not one of {', '.join(ACTIONS)}"])
    controls.check_lab_id(lab)  # before the lock: the id names its file
    if host:
        return _host_part(lab, node, action, host)
    started = time.monotonic()
    with lab_lock(lab):
        state = controls.check_lab(lab, load_lab_state(lab))
        record = controls.node_record(state, node)
        if action != "start":
            controls.check_can_stop(record)  # before anything is touched
        spread = _elsewhere(state)
        notes = _across_hosts(state, record, action) if spread else _here(state, record, action)
    return {
        "lab_id": lab, "node": node, "action": action, "state": record.shown_state,
        "ready_seconds": record.ready_seconds, "seconds": round(time.monotonic() - started, 2), "notes": notes,
    }


def _here(state: LabState, record: NodeRecord, action: str) -> list[str]:
    """A lab on this host: the node, then its links (its peers' carrier follows it)."""
    lab, notes = state.lab_id, []
    if action != "start":
        stop_node(lab, state, record)
        record.state, record.failed_stage, record.error = NodePhase.STOPPED, None, None
        notes = apply_links(lab, state, controls.links_of(state, record.name))
        publish_lab_state(state)
    if action != "stop":
        notes = _bring_back(lab, state, record)
        publish_lab_state(state)
    return notes


def _bring_back(lab: str, state: LabState, record: NodeRecord) -> list[str]:
    """Start the node and give it back what it had: links, readiness, post-boot, link controls."""
    node = controls.node_of(record, lab)
    was_stopped = start_node(lab, record)
    wire_node(lab, node, controls.link_ends_of(state, record.name))
    record.ready_seconds = wait_ready(lab, node)
    if node.post_boot_commands:
        # A stopped node lost its runtime configuration (a VM rebooted; a container kept
        # only its startup config): post-boot again. A node that kept running keeps it.
        post_boot(lab, node, already_done=not was_stopped)
    record.state, record.failed_stage, record.error = NodePhase.READY, None, None
    return apply_links(lab, state, controls.links_of(state, record.name))


# A lab spread over hosts -------------------------------------------------------------------


def _elsewhere(state: LabState) -> bool:
    """Some of the lab's nodes run on another host than this one."""
    here = get_settings().host_name
    return any(n.host and n.host != here for n in state.nodes)


def _peer_hosts(state: LabState, record: NodeRecord) -> list[str]:
    """The hosts of the node's peers, other than its own."""
    hosts = {n.name: n.host for n in state.nodes}
    peers = {e.partition(":")[0] for link in controls.links_of(state, record.name) for e in link.endpoints}
    return sorted({hosts[p] for p in peers if hosts.get(p) and hosts[p] != record.host})


def _across_hosts(state: LabState, record: NodeRecord, action: str) -> list[str]:
    if not record.host:
        raise ArchetypeError(f"node {record.name}: the lab's record does not say which host runs it")
    peer_hosts = _peer_hosts(state, record)
    notes: list[str] = []
    if action != "start":
        _on_host(state.lab_id, record, "stop", record.host)
        record.state, record.failed_stage, record.error = NodePhase.STOPPED, None, None
        publish_lab_state(state)  # the peers' hosts read it: the node is stopped
        notes = [n for host in peer_hosts for n in _on_host(state.lab_id, record, "stop", host)["notes"]]
    if action != "stop":
        report = _on_host(state.lab_id, record, "start", record.host)
        record.state, record.failed_stage, record.error = NodePhase.READY, None, None
        record.ready_seconds = report.get("ready_seconds")
        publish_lab_state(state)  # the peers' hosts read it: the node runs again
        notes = report["notes"] + [n for host in peer_hosts for n in _on_host(state.lab_id, record, "start", host)["notes"]]
    return notes


def _on_host(lab: str, record: NodeRecord, action: str, host: str) -> dict[str, Any]:
    """One host's part, as a child run of ``control-node/<host>``; its report."""
    from flows.fleet import host_step

    report = host_step(f"control-{action}", "control-node", host,
                       {"lab": lab, "node": record.name, "action": action, "host": host}, lab)
    if "error" in report:
        raise ArchetypeError(f"{action} {record.name}: {report['error']}")
    return report


def _host_part(lab: str, node: str, action: str, host: str) -> dict[str, Any]:
    """This host's part of a control of a lab spread over hosts (run by the run that
    coordinates it): the node if it is here, its peers' ends here."""
    if action not in ("stop", "start"):
        raise TopologyError([f"action: a host's part is stop or start, not {action!r}"])
    if host != get_settings().host_name:
        raise ArchetypeError(f"this part is for host {host}, and this is {get_settings().host_name}")
    key = names.slice_state_key(lab, host)
    with lab_lock(lab):
        state = controls.check_lab(lab, load_lab_state(lab, key))
        result: dict[str, Any] = {"lab_id": lab, "node": node, "action": action, "host": host}
        if controls.is_here(state, node):
            record = controls.node_record(state, node)
            notes = _here_part(state, record, action)
            publish_lab_state(state, key)
            result.update(state=record.shown_state, ready_seconds=record.ready_seconds)
        else:
            notes = apply_links(lab, state, controls.links_of(state, node))
        result["notes"] = notes
    publish_report(names.host_report_key(lab, f"control-{action}", host), result)
    return result


def _here_part(state: LabState, record: NodeRecord, action: str) -> list[str]:
    if action == "start":
        return _bring_back(state.lab_id, state, record)
    controls.check_can_stop(record)
    stop_node(state.lab_id, state, record)
    record.state, record.failed_stage, record.error = NodePhase.STOPPED, None, None
    return apply_links(state.lab_id, state, controls.links_of(state, record.name))
