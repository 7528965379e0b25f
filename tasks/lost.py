"""A lost host's labs (DESIGN.md, "Draining and losing hosts"): the coordinator's side (a
deploy re-places the lost nodes on live hosts, from their saved configs) and the host's
own when it comes back (its copies of nodes that moved away go before it serves).
"""

from __future__ import annotations

import logging
from typing import Any

from lab.state import LabState, LabStatus
from topology import Lab
from topology.lost import lost_nodes, re_placed
from topology.placement import HostFacts

log = logging.getLogger("archetype.lost")


def _logger() -> Any:
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return log


# The coordinator: re-place --------------------------------------------------------------


def recover_lost(lab: Lab, hosts: list[HostFacts], previous: LabState | None) -> tuple[Lab, dict[str, str]]:
    """The lab with its nodes on lost hosts re-placed (their ``host:`` dropped) and starting
    from their last saved config (the lab's configs folder) where one is kept, else from the
    topology; and node -> the lost host it leaves."""
    recorded = {n.name: n.host for n in previous.nodes} if previous else {}
    lost = lost_nodes(lab, hosts, recorded)
    if not lost:
        return lab, {}
    lab, used = re_placed(lab, lost)
    logger = _logger()
    for node, host in sorted(lost.items()):
        logger.warning("%s: host %s is lost: re-placed on a live host, %s", node, host,
                       f"from its saved config {used[node]}" if node in used else "as the topology says (no saved config)")
    return lab, lost


# The host, back: its stale copies go -----------------------------------------------------


def stale_here(lab_id: str, here: list[str], state: LabState | None, host: str) -> tuple[list[str], bool]:
    """Of the lab's nodes on this host, those that are stale (the server's record has the lab
    destroyed, or puts the node on another host, or has no such node), and whether the whole
    of the lab here is (no node of the record is on this host). A lab the server has no
    record of is not ours to judge: nothing."""
    if state is None:
        return [], False
    if state.status is LabStatus.DESTROYED:
        return list(here), True
    mine = {n.name for n in state.nodes if n.host == host}
    return sorted(set(here) - mine), not mine


def copies_here() -> dict[str, list[str]]:
    """Every lab this host has anything of, with its nodes here (none: networks or files only)."""
    from providers import labs

    found = {lab.lab_id: [n.name for n in lab.nodes] for lab in labs.discover()}
    return {lab_id: found.get(lab_id, []) for lab_id in sorted(found.keys() | labs.labs_with_resources())}


def remove_copies(lab_id: str, stale: list[str], here: list[str]) -> dict[str, Any]:
    """The stale nodes of the lab removed from this host (its network stays: others use it)."""
    from providers import labs

    report = labs.remove_nodes_not_in(lab_id, set(here) - set(stale))
    return {"removed": report.removed, "errors": report.errors}
