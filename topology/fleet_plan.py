"""A fleet lab's plan, chosen once by the coordinator: a VXLAN id per cross-host link, and one
management subnet for the whole lab with every node's address in it.

Pure: the caller reads what the other labs hold (their state records on the server) and the
coordinator host's own routes, holds the fleet's allocation lease while it chooses, and
records the choice (the lab's state) before it lets go (``tasks.fleet_plan``).
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lab.errors import ArchetypeError, TopologyError
from topology.addressing import assign
from topology.document import Lab
from topology.mgmt import MgmtPlan, gateway, prefix_for

VNI_MIN, VNI_MAX = 4096, 2**24 - 1


def pick_vnis(link_ids: Iterable[str], previous: Mapping[str, int], used: set[int]) -> dict[str, int]:
    """A VNI per link: the one the link had, when no other lab holds it; else the lowest one
    from ``VNI_MIN`` that nobody holds. Sequential on purpose: two labs choosing at once
    without the lease would collide at once, not once in 16 million."""
    taken = set(used)
    vnis: dict[str, int] = {}
    fresh = sorted(link for link in set(link_ids) if previous.get(link) is None or previous[link] in taken)
    for link in sorted(set(link_ids) - set(fresh)):
        vnis[link] = previous[link]
        taken.add(previous[link])
    candidate = VNI_MIN
    for link in fresh:
        while candidate in taken:
            candidate += 1
        if candidate > VNI_MAX:
            raise ArchetypeError(f"no free VXLAN id left for link {link}: {len(taken)} in use")
        vnis[link] = candidate
        taken.add(candidate)
    return vnis


@dataclass(frozen=True)
class Taken:
    """An IPv4 network a lab's management subnet must not overlap, and whose it is."""

    network: ipaddress.IPv4Network
    owner: str  # "lab x" or "a route of the coordinator host"


def pick_subnet(lab_id: str, node_count: int, pool: str, taken: Iterable[Taken], *,
                asked: str | None = None, previous: str | None = None) -> str:
    """The lab's one management subnet: the topology's (``asked``), which must overlap nothing
    taken; else the one it had (``previous``) while nothing else took it; else the first free
    one of ``pool`` large enough for the lab, searched from a place given by the lab id (so
    that a lab usually gets the same subnet again)."""
    taken = list(taken)
    if asked is not None:
        clash = _clash(ipaddress.ip_network(asked), taken)
        if clash is not None:
            raise TopologyError([f"mgmt.ipv4-subnet: {asked} overlaps {clash.network} of {clash.owner}"])
        return asked
    if previous is not None and _clash(ipaddress.ip_network(previous), taken) is None:
        return previous
    net = ipaddress.ip_network(pool)
    prefix = max(prefix_for(node_count), net.prefixlen)
    candidates = list(net.subnets(new_prefix=prefix))
    start = zlib.crc32(lab_id.encode()) % len(candidates)
    for i in range(len(candidates)):
        subnet = candidates[(start + i) % len(candidates)]
        if _clash(subnet, taken) is None:
            return str(subnet)
    raise ArchetypeError(f"lab {lab_id}: no free /{prefix} left in the management pool {pool} over the fleet "
                         "(setting mgmt_ipv4_pool)")


def _clash(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network, taken: list[Taken]) -> Taken | None:
    return next((t for t in taken if subnet.version == t.network.version and subnet.overlaps(t.network)), None)


def with_addresses(lab: Lab, subnet: str, remembered: Mapping[str, str]) -> Lab:
    """The lab with every node's management address in ``subnet``, planned over all its
    nodes at once (each host's slice then gets the same addresses: none is used twice)."""
    plan = MgmtPlan(network="", bridge="", ipv4_subnet=subnet, ipv4_gateway=gateway(subnet),
                    ipv6_subnet=lab.mgmt.ipv6_subnet, ipv6_gateway=gateway(lab.mgmt.ipv6_subnet) if lab.mgmt.ipv6_subnet else None)
    try:
        return assign(lab, plan, remembered=dict(remembered))
    except ValueError as err:
        raise TopologyError([f"mgmt: {err}"]) from None


def routes_to_nodes(lab: Lab, placement: Mapping[str, str], addresses: Mapping[str, str | None]) -> dict[str, str]:
    """Each node's management address -> the data-plane address of the host it runs on (how
    the coordinator host reaches it); nodes whose host has no known address are left out."""
    routes = {}
    for name, node in lab.nodes.items():
        via = addresses.get(placement[name])
        if node.mgmt_ipv4 and via:
            routes[node.mgmt_ipv4] = via
    return routes
