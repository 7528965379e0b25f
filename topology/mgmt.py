"""Management addressing: containerlab's top-level ``mgmt:`` and a node's ``mgmt-ipv4`` /
``mgmt-ipv6``, validated; and the per-node addresses of a lab once its subnet is known.

Every node of a lab (container or VM) gets one address on the lab's management network.
Addresses are ours: a container's management veth gets its address at wiring
(``providers.network.mgmt``), VMs are configured with theirs. Nodes use the lower half of
the subnet; the upper half was docker's own allocation range when the network was docker's,
and stays unused (a lab made then keeps its addresses). Pure functions: nothing here
touches the host.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from topology.problems import Problems

MGMT_FIELDS = frozenset({"network", "ipv4-subnet", "ipv6-subnet", "ipv4_subnet", "ipv6_subnet"})
# containerlab mgmt keys Archetype reads but does not use: a warning, not an error.
IGNORED_MGMT_FIELDS = frozenset(
    {"bridge", "ipv4-gw", "ipv6-gw", "ipv4-range", "ipv6-range", "mtu", "external-access", "driver-opts"}
)
# docker network names: letters, digits, '_', '.', '-' (docker's own rule), kept short.
NETWORK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RESERVED_NETWORKS = frozenset({"bridge", "host", "none", "default"})


@dataclass(frozen=True)
class MgmtNetwork:
    """The lab's management network as the topology asks for it (None: Archetype chooses)."""

    network: str | None = None  # the network's name (containerlab's; our bridge keeps it in its marker)
    ipv4_subnet: str | None = None  # e.g. "172.20.20.0/24"
    ipv6_subnet: str | None = None


@dataclass(frozen=True)
class MgmtPlan:
    """The lab's management network as it is on the host: the subnets really used."""

    network: str  # its name (containerlab's mgmt.network, else archetype-<lab>-mgmt)
    bridge: str  # its Linux bridge (container veths and VM management NICs join it)
    ipv4_subnet: str
    ipv4_gateway: str
    ipv6_subnet: str | None = None
    ipv6_gateway: str | None = None


# Parsing ----------------------------------------------------------------------------------


def parse_mgmt(value: Any, problems: Problems) -> MgmtNetwork:
    """The top-level ``mgmt:`` block (every problem reported under ``mgmt``)."""
    if value is None:
        return MgmtNetwork()
    if not isinstance(value, dict):
        problems.error("mgmt", "must be a mapping (network, ipv4-subnet, ipv6-subnet)")
        return MgmtNetwork()
    for key in value:
        if key in IGNORED_MGMT_FIELDS:
            problems.warn(f"mgmt.{key}", "containerlab field not used by Archetype, ignored")
        elif key not in MGMT_FIELDS:
            problems.error(f"mgmt.{key}", f"unknown field {key!r}")
    network = value.get("network")
    if network is not None and (
        not isinstance(network, str) or not NETWORK_NAME_RE.match(network) or network in RESERVED_NETWORKS
    ):
        problems.error("mgmt.network", f"bad docker network name {network!r}")
        network = None
    v4 = _subnet(_either(value, "ipv4-subnet"), 4, "mgmt.ipv4-subnet", problems)
    v6 = _subnet(_either(value, "ipv6-subnet"), 6, "mgmt.ipv6-subnet", problems)
    return MgmtNetwork(network=network, ipv4_subnet=v4, ipv6_subnet=v6)


def _either(mapping: dict[str, Any], dashed: str) -> Any:
    return mapping.get(dashed, mapping.get(dashed.replace("-", "_")))


def _subnet(value: Any, version: int, where: str, problems: Problems) -> str | None:
    if value is None:
        return None
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as err:
        problems.error(where, f"bad IPv{version} subnet {value!r}: {err}")
        return None
    if net.version != version:
        problems.error(where, f"{value!r} is not an IPv{version} subnet")
        return None
    smallest = 29 if version == 4 else 125
    if net.prefixlen > smallest:
        problems.error(where, f"{value!r} is too small: at most /{smallest}")
        return None
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        problems.error(where, f"{value!r} cannot be a management subnet")
        return None
    return str(net)


def node_address(value: Any, version: int, where: str, problems: Problems) -> str | None:
    """A node's ``mgmt-ipv4`` / ``mgmt-ipv6``: a plain address (containerlab's form)."""
    if value is None:
        return None
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        problems.error(where, f"bad IPv{version} address {value!r}")
        return None
    if address.version != version:
        problems.error(where, f"{value!r} is not an IPv{version} address")
        return None
    return str(address)


def check_node_addresses(mgmt: MgmtNetwork, nodes: dict[str, Any], problems: Problems) -> None:
    """Static addresses: inside the lab's subnet (when it is given), in the part of it that
    is for nodes, and each used once."""
    for version, subnet, attr in ((4, mgmt.ipv4_subnet, "mgmt_ipv4"), (6, mgmt.ipv6_subnet, "mgmt_ipv6")):
        seen: dict[str, str] = {}
        for node in nodes.values():
            address = getattr(node, attr)
            if address is None:
                continue
            where = f"topology.nodes.{node.name}.mgmt-ipv{version}"
            if subnet is None:
                problems.error(where, f"a static address needs the lab's subnet: give mgmt.ipv{version}-subnet")
            elif ipaddress.ip_address(address) not in node_range(subnet):
                problems.error(where, f"{address} is not a node address of the management subnet {subnet} "
                                      f"(nodes use {_describe(node_range(subnet))})")
            if address in seen:
                problems.error(where, f"{address} is already node {seen[address]}'s address")
            else:
                seen[address] = node.name
            if version == 6 and node.vendor.container is None:
                problems.warn(where, "VMs get an IPv4 management address only: not configured")
    if mgmt.ipv4_subnet:
        auto = sum(1 for n in nodes.values() if n.mgmt_ipv4 is None)
        free = capacity(mgmt.ipv4_subnet) - sum(1 for n in nodes.values() if n.mgmt_ipv4 is not None)
        if auto > free:
            problems.error("mgmt.ipv4-subnet", f"{mgmt.ipv4_subnet} has room for {capacity(mgmt.ipv4_subnet)} "
                                               f"nodes; the lab has {len(nodes)}")


# Addresses ------------------------------------------------------------------------------


class _Range:
    def __init__(self, first: Any, last: Any) -> None:
        self.first, self.last = first, last

    def __contains__(self, address: Any) -> bool:
        return address.version == self.first.version and self.first <= address <= self.last


def _describe(span: _Range) -> str:
    return f"{span.first}-{span.last}"


def node_range(subnet: str) -> _Range:
    """Addresses for nodes: the lower half of the subnet, after the network address and
    the gateway (the first host). The upper half is docker's own allocation range."""
    net = ipaddress.ip_network(subnet)
    half = net.num_addresses // 2
    return _Range(net.network_address + 2, net.network_address + half - 1)


def docker_range(subnet: str) -> str:
    """The upper half of the subnet: what docker may hand out by itself."""
    net = ipaddress.ip_network(subnet)
    return str(list(net.subnets(prefixlen_diff=1))[1])


def gateway(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet).network_address + 1)


def capacity(subnet: str) -> int:
    span = node_range(subnet)
    return int(span.last) - int(span.first) + 1


def prefix_for(node_count: int, smallest: int = 24) -> int:
    """The longest IPv4 prefix (at most ``smallest``) whose node range fits the lab."""
    prefix = smallest
    while prefix > 16 and (2 ** (32 - prefix)) // 2 - 2 < node_count:
        prefix -= 1
    return prefix
