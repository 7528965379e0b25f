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
