"""Questions asked of every provider at once: what runs here, how to reach a node."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from lab.errors import ArchetypeError
from providers import all_providers, get_provider


def discover_all(only_lab: str | None = None) -> list[dict[str, Any]]:
    """Every lab with nodes on this host, merged across providers, from live markers."""
    labs: dict[str, list[dict[str, Any]]] = {}
    for provider in all_providers():
        for lab in provider.discover_labs():
            if only_lab is not None and lab.lab_id != only_lab:
                continue
            labs.setdefault(lab.lab_id, []).extend(
                {
                    "name": n.name,
                    "kind": n.kind,
                    "provider": n.provider,
                    "state": n.state.value,
                    "runtime_name": n.runtime_name,
                    "mgmt_ipv4": n.mgmt_ipv4,
                    "mgmt_ipv6": n.mgmt_ipv6,
                }
                for n in lab.nodes
            )
    return [{"lab_id": lab_id, "nodes": sorted(nodes, key=lambda n: n["name"])} for lab_id, nodes in sorted(labs.items())]


def labs_with_resources() -> set[str]:
    """Every lab that owns anything on this host: nodes or other runtime resources (a
    management network left without containers...), OVS ports, VLAN records, workspace
    folders. Orphan cleanup looks at all of them."""
    from providers import network
    from providers.workspace import workspace_labs

    labs = network.network_labs() | workspace_labs()
    for provider in all_providers():
        labs |= provider.labs_with_resources()
    return labs


def connect_session(lab_id: str, node_name: str) -> tuple[list[str], AbstractContextManager[None]]:
    """argv of an interactive session on the node, and the guard to hold while it lasts."""
    for lab in discover_all(lab_id):
        for node in lab["nodes"]:
            if node["name"] == node_name:
                from topology import Node
                from vendors import get_vendor

                vendor = get_vendor(node["kind"])
                stub = Node(name=node_name, kind=vendor.kind, image=vendor.default_image)
                provider = get_provider(node["provider"])
                return provider.connect_command(lab_id, stub), provider.connect_guard(lab_id, stub)
    raise ArchetypeError(f"no node {node_name!r} in lab {lab_id!r} on this host")


def live_picture(lab_id: str):  # noqa: ANN201 - topology.picture.LabPicture
    """The picture of a running lab: its nodes from the live runtimes (with their management
    addresses), its links and VLANs from the host's VLAN record."""
    from providers.network import vlans
    from topology.picture import LabPicture, PictureLink, PictureNode

    labs = discover_all(lab_id)
    if not labs:
        raise ArchetypeError(f"no lab {lab_id!r} on this host")
    nodes = [PictureNode(n["name"], n["kind"], n["provider"], "", n.get("mgmt_ipv4"), n["state"]) for n in labs[0]["nodes"]]
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
