"""Lab-wide operations, over every provider, with one owner: discover, destroy, remove the
nodes a topology no longer has, find orphans, reach a node wherever it runs.

Providers remove only their own runtime resources (``NodeProvider.remove_lab_nodes``,
``remove_node``). The lab's network (OVS ports, veths, VLAN record) and its workspace
folders are released here, once, after no node of the lab remains: a VM that would not
go keeps its taps, its VLANs and its disks (releasing them under a running domain would
cut its links, hand its tags to another lab and corrupt its disks).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass

from lab import names
from lab.errors import ArchetypeError
from lab.locks import lab_is_busy
from providers import all_providers, get_provider, network
from providers.base import CleanupReport, DiscoveredLab, NodeStatus
from providers.workspace import remove_lab_files, workspace_labs

log = logging.getLogger("archetype.labs")


# Discovery -------------------------------------------------------------------------------


def discover(only_lab: str | None = None) -> list[DiscoveredLab]:
    """Every lab with nodes on this host, merged across providers, from live markers,
    sorted by lab id, each lab's nodes by name. A runtime that does not answer raises."""
    nodes: dict[str, list[NodeStatus]] = {}
    for provider in all_providers():
        for lab in provider.discover_labs():
            if only_lab is None or lab.lab_id == only_lab:
                nodes.setdefault(lab.lab_id, []).extend(lab.nodes)
    return [
        DiscoveredLab(lab_id, sorted(found, key=lambda n: n.name)) for lab_id, found in sorted(nodes.items())
    ]


def lab_nodes(lab_id: str) -> list[NodeStatus]:
    """The lab's nodes on this host, in every runtime."""
    return [node for lab in discover(lab_id) for node in lab.nodes]


def find_node(lab_id: str, node_name: str) -> NodeStatus:
    for node in lab_nodes(lab_id):
        if node.name == node_name:
            return node
    raise ArchetypeError(f"no node {node_name!r} in lab {lab_id!r} on this host")


def node_session(lab_id: str, node_name: str) -> tuple[list[str], AbstractContextManager[None]]:
    """argv of an interactive session on the node, and the guard to hold while it lasts."""
    found = find_node(lab_id, node_name)
    provider, ref = get_provider(found.provider), found.ref()
    return provider.connect_command(lab_id, ref), provider.connect_guard(lab_id, ref)


# The picture of a running lab ------------------------------------------------------------


def live_picture(lab_id: str):  # noqa: ANN201 - topology.picture.LabPicture
    """The picture of a running lab: its nodes from the live runtimes (with their management
    addresses), its links and VLANs from the host's VLAN record."""
    from providers.network import vlans
    from topology.picture import LabPicture, PictureLink, PictureNode

    found = lab_nodes(lab_id)
    if not found:
        raise ArchetypeError(f"no lab {lab_id!r} on this host")
    nodes = [PictureNode(n.name, n.kind, n.provider.value, "", n.mgmt_ipv4, n.state.value) for n in found]
    known = {n.name for n in nodes}
    links = []
    reservation = vlans.load_reservation(lab_id)
    for link_id, entry in sorted((reservation.links if reservation else {}).items()):
        ends = _link_ends(link_id, known)
        if ends is not None:
            (a, a_if), (b, b_if) = ends
            links.append(PictureLink(a, a_if, b, b_if, entry.vlan))
    return LabPicture(lab_id=lab_id, nodes=nodes, links=links)


def _link_ends(link_id: str, nodes: set[str]) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """``a:ifa--b:ifb`` (``lab.names.link_id``) split where both halves name a node of the lab
    (node names may hold dashes, so the first ``--`` is not always the separator)."""
    start = 0
    while (i := link_id.find("--", start)) != -1:
        first, second = link_id[:i], link_id[i + 2:]
        start = i + 1
        if ":" in first and ":" in second:
            a, a_if = first.split(":", 1)
            b, b_if = second.split(":", 1)
            if a in nodes and b in nodes:
                return (a, a_if), (b, b_if)
    return None


# Removal ---------------------------------------------------------------------------------


def destroy_lab(lab_id: str) -> CleanupReport:
    """Every provider removes its nodes of the lab; then, once no node of it remains, its
    network and its files go. One failure does not stop the rest: all are in the report."""
    report = CleanupReport()
    for provider in all_providers():
        try:
            report.merge(provider.remove_lab_nodes(lab_id))
        except Exception as err:  # noqa: BLE001 - reported, the others still run
            report.errors.append(f"{provider.name}: lab {lab_id}: {err}")
    release_if_empty(lab_id, report)
    return report


def release_if_empty(lab_id: str, report: CleanupReport) -> bool:
    """Release the lab's network and files if no node of it remains; whether released."""
    try:
        remaining = sorted(node.name for node in lab_nodes(lab_id))
    except ArchetypeError as err:
        report.errors.append(f"lab {lab_id}: cannot tell which nodes remain ({err}): its network and files are kept")
        return False
    if remaining:
        report.errors.append(
            f"lab {lab_id}: nodes {', '.join(remaining)} remain: its network (ports, VLANs) and files are kept"
        )
        return False
    try:
        report.merge(network.release_lab(lab_id))
    except Exception as err:  # noqa: BLE001 - reported; the files still go
        report.errors.append(f"lab {lab_id}: cannot release its OVS ports, veths and VLANs: {err!r}")
    report.merge(remove_lab_files(lab_id))
    return True


def remove_nodes_not_in(lab_id: str, wanted: set[str] | list[str]) -> CleanupReport:
    """Remove the lab's nodes that are not in ``wanted`` (a converging deploy), each by its
    own provider; the lab's network stays (its other nodes use it)."""
    report = CleanupReport()
    for node in lab_nodes(lab_id):
        if node.name not in wanted:
            report.merge(get_provider(node.provider).remove_node(lab_id, node.name))
    return report


# Orphans ---------------------------------------------------------------------------------


def labs_with_resources() -> set[str]:
    """Every lab that owns anything on this host: nodes or other runtime resources (a
    management network left without containers...), OVS ports, VLAN records, workspace
    folders. Orphan cleanup looks at all of them."""
    labs = network.network_labs() | workspace_labs()
    for provider in all_providers():
        labs |= provider.labs_with_resources()
    return labs


@dataclass(frozen=True)
class Orphans:
    labs: list[str]  # to remove
    busy: list[str]  # not known, but a deploy or destroy of it holds its lock now: left alone


def find_orphans(known: set[str] | list[str]) -> Orphans:
    """Labs that own something on this host and are not known."""
    unknown = sorted(labs_with_resources() - set(known))
    busy = [lab for lab in unknown if names.is_valid_lab_id(lab) and lab_is_busy(lab)]
    return Orphans(labs=[lab for lab in unknown if lab not in busy], busy=busy)
