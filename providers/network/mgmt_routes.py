"""The coordinator host's way to a fleet lab's nodes: a host route per node's management
address, via the data-plane (underlay) address of the host it runs on.

Every host of the fleet makes the lab's one management subnet on its own bridge (connected
there); the coordinator, on the underlay, routes each node's /32 to its host, which forwards
it onto the bridge (the node answers through its gateway, that host, which knows the way
back). A /32 wins over the subnet's own connected route when the coordinator is itself one
of the lab's hosts.

Our routes carry their own protocol number (``PROTO``): they are found again by it and by the
lab's subnet (one per lab over the fleet), with no record of ours beside the kernel's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lab.errors import NetworkError

PROTO = 213  # rtm_protocol of our routes (unassigned in iproute2's rt_protos)
AF_INET = 2


def local_networks(except_device: str | None = None, *, node_routes: bool = True) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this host routes somewhere, but the default and those of
    ``except_device`` (the lab's own management bridge, when this host runs part of it);
    with our /32 routes to fleet nodes unless ``node_routes`` is False (the coordinator, which
    knows their labs' subnets from the server, where a lab's own routes must not count)."""
    networks = []
    with IPRoute() as ipr:
        skip = set(ipr.link_lookup(ifname=except_device)) if except_device else set()
        for route in ipr.get_routes(family=AF_INET, table=254):
            dst = route.get_attr("RTA_DST")
            if dst and route["dst_len"] > 0 and (node_routes or route["proto"] != PROTO) \
                    and route.get_attr("RTA_OIF") not in skip:
                networks.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False))
    return networks


def _ours_within(ipr: IPRoute, subnet: ipaddress.IPv4Network) -> dict[str, str]:
    found = {}
    for route in ipr.get_routes(family=AF_INET, table=254, proto=PROTO):
        dst = route.get_attr("RTA_DST")
        if dst and route["dst_len"] == 32 and ipaddress.ip_address(dst) in subnet:
            found[dst] = route.get_attr("RTA_GATEWAY") or ""
    return found


def ensure_routes(subnet: str, routes: Mapping[str, str]) -> list[str]:
    """Route each address of ``routes`` (node address -> host address) and no other address of
    ``subnet`` (a node that went, or moved). Returns problems (an address that cannot be routed:
    its host is not on this host's underlay), empty when all are routed."""
    net = ipaddress.ip_network(subnet)
    problems = []
    with IPRoute() as ipr:
        have = _ours_within(ipr, net)
        for address in set(have) - set(routes):
            _delete(ipr, address)
        for address, via in sorted(routes.items()):
            if have.get(address) == via:
                continue
            try:
                ipr.route("replace", dst=f"{address}/32", gateway=via, proto=PROTO)
            except NetlinkError as err:
                problems.append(f"no route to {address} via {via}: {err.args[-1] if err.args else err}")
    return problems


def set_route(address: str, via: str) -> None:
    """One node's route (it moved to the host at ``via``)."""
    with IPRoute() as ipr:
        try:
            ipr.route("replace", dst=f"{address}/32", gateway=via, proto=PROTO)
        except NetlinkError as err:
            raise NetworkError(f"no route to {address} via {via}: {err}") from err


def remove_routes(subnet: str) -> list[str]:
    """Our routes into ``subnet`` (the lab was destroyed); returns the addresses unrouted."""
    with IPRoute() as ipr:
        gone = sorted(_ours_within(ipr, ipaddress.ip_network(subnet)))
        for address in gone:
            _delete(ipr, address)
    return gone


def _delete(ipr: IPRoute, address: str) -> None:
    try:
        ipr.route("del", dst=f"{address}/32", proto=PROTO)
    except NetlinkError as err:
        if err.code != 3:  # ESRCH: gone already
            raise NetworkError(f"cannot remove the route to {address}: {err}") from err
