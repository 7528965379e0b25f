"""control-node: stop, start or restart one node of a running lab, keeping its links.

stop -> (start -> wire its links again -> wait for readiness -> post-boot, where the node
lost it -> its links' state and impairment) -> publish state. No redeploy: the same
VLANs, the same ports, the same container or domain.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect import flow

from lab.errors import TopologyError
from lab.locks import lab_lock
from lab.state import LabState, NodePhase, NodeRecord
from tasks import controls
from tasks.controls import apply_links, start_node, stop_node
from tasks.nodes import post_boot, wait_ready, wire_node
from tasks.state import load_lab_state, publish_lab_state

ACTIONS = ("stop", "start", "restart")


@flow(name="control-node", flow_run_name="control-node/{lab}/{node}/{action}")
def control_node(lab: str, node: str, action: Literal["stop", "start", "restart"]) -> dict[str, Any]:
    """Stop, start or restart a node of a deployed lab; its links come back as they were.

    Args:
        lab: the lab id.
        node: the node's name in the topology.
        action: stop, start or restart.
    """
    if action not in ACTIONS:
        raise TopologyError([f"action: {action!r} is not one of {', '.join(ACTIONS)}"])
    controls.check_lab_id(lab)  # before the lock: the id names its file
    started = time.monotonic()
    with lab_lock(lab):
        state = controls.check_lab(lab, load_lab_state(lab))
        record = controls.node_record(state, node)
        if action != "start":
            controls.check_can_stop(record)  # before anything is touched
            stop_node(lab, state, record)
            record.state, record.failed_stage, record.error = NodePhase.STOPPED, None, None
            publish_lab_state(state)
        notes: list[str] = []
        if action != "stop":
            notes = _bring_back(lab, state, record)
            publish_lab_state(state)
    return {
        "lab_id": lab, "node": node, "action": action, "state": record.shown_state,
        "ready_seconds": record.ready_seconds, "seconds": round(time.monotonic() - started, 2), "notes": notes,
    }


def _bring_back(lab: str, state: LabState, record: NodeRecord) -> list[str]:
    """Start the node and give it back what it had: links, readiness, post-boot, link controls."""
    node = controls.node_of(record)
    was_stopped = start_node(lab, record)
    wire_node(lab, node, controls.link_ends_of(state, record.name))
    record.ready_seconds = wait_ready(lab, node)
    if node.post_boot_commands:
        # A stopped node lost its runtime configuration (a VM rebooted; a container kept
        # only its startup config): post-boot again. A node that kept running keeps it.
        post_boot(lab, node, already_done=not was_stopped)
    record.state, record.failed_stage, record.error = NodePhase.READY, None, None
    return apply_links(lab, state, controls.links_of(state, record.name))
