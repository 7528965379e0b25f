"""A lost host's nodes (DESIGN.md, "Draining and losing hosts"): pure logic over the hosts'
facts and the lab's last record.

A node is lost when its lab's record puts it on a lost host, or its ``host:`` names one.
A deploy re-places it on a live host (its ``host:`` is dropped: placement picks one), from
its last saved config (the lab's configs folder, ``archetype configs``) when there is one,
else from the topology's startup-config.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from topology.document import Lab
from topology.placement import HostFacts
from topology.saved_configs import with_saved_configs


def lost_nodes(lab: Lab, hosts: list[HostFacts], recorded: dict[str, str | None]) -> dict[str, str]:
    """node -> the lost host it ran on (its record) or is pinned to (its ``host:``)."""
    lost = {h.name for h in hosts if h.lost}
    found = {}
    for name, node in lab.nodes.items():
        where = recorded.get(name) if recorded.get(name) in lost else node.host if node.host in lost else None
        if where is not None:
            found[name] = where
    return found


def re_placed(lab: Lab, lost: dict[str, str], folder: Path | None = None) -> tuple[Lab, dict[str, str]]:
    """The lab with each lost node unpinned (placement puts it on a live host) and starting
    from its saved config where one is kept; also node -> the saved config used."""
    nodes = {name: replace(node, host=None) if name in lost else node for name, node in lab.nodes.items()}
    return with_saved_configs(replace(lab, nodes=nodes), folder, only=set(lost))
