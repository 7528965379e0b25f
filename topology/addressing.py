"""Every node's management addresses once the lab's management subnet is known (at deploy)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from topology.document import Lab
from topology.mgmt import MgmtPlan, node_range


def assign(lab: Lab, plan: MgmtPlan, whole: Lab | None = None, remembered: dict[str, str] | None = None) -> Lab:
    """The lab with every node's management addresses: the static ones as given; then the
    IPv4 address a previous deploy gave the node (``remembered``, from the lab's state),
    where it is still in the subnet and free; the others in node order from the start of
    the node range, skipping those. Deterministic: the same topology on the same subnet
    gives the same addresses, and a node added to a deployed lab does not shift the
    addresses of the nodes that run (a running node keeps its address, and a saved VM
    config that holds it stays right).

    A host's slice of a multi-host lab passes the ``whole`` lab: addresses are planned over
    every node of it, so that no two nodes share one, and a node moved to another host
    keeps its address there (where that host's management subnet is the same)."""
    everyone = whole or lab
    v4 = _allocate(everyone, "mgmt_ipv4", plan.ipv4_subnet, remembered=remembered or {})
    # IPv6: containers only (docker gives it them; no VM kind has IPv6 management commands)
    v6 = _allocate(everyone, "mgmt_ipv6", plan.ipv6_subnet, containers_only=True) if plan.ipv6_subnet else {}
    nodes = {
        name: replace(node, mgmt_ipv4=v4.get(name), mgmt_ipv6=v6.get(name),
                      mgmt_prefixlen=ipaddress.ip_network(plan.ipv4_subnet).prefixlen)
        for name, node in lab.nodes.items()
    }
    return replace(lab, nodes=nodes)


def _allocate(lab: Lab, attr: str, subnet: str, *, containers_only: bool = False,
              remembered: dict[str, str] | None = None) -> dict[str, str]:
    span = node_range(subnet)
    nodes = [n for n in lab.nodes.values() if not containers_only or n.vendor.container is not None]
    taken = {getattr(n, attr) for n in lab.nodes.values() if getattr(n, attr)}
    result = {n.name: getattr(n, attr) for n in nodes if getattr(n, attr)}
    for node in nodes:
        address = (remembered or {}).get(node.name)
        if node.name not in result and address and address not in taken and _within(address, span):
            result[node.name] = address
            taken.add(address)
    candidate = span.first
    for node in nodes:
        if node.name in result:
            continue
        while str(candidate) in taken:
            candidate += 1
        if candidate not in span:
            raise ValueError(f"lab {lab.id}: the management subnet {subnet} has no room for node {node.name}")
        result[node.name] = str(candidate)
        taken.add(str(candidate))
    return result


def _within(address: str, span: Any) -> bool:
    try:
        return ipaddress.ip_address(address) in span
    except ValueError:
        return False
