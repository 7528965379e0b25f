"""Links of a topology: containerlab's two link formats, ``host:IF`` ends and multi-access
segments, resolved against the nodes.

- Brief format: ``endpoints: ["r1:eth1", "r2:eth1"]``.
- Extended format: ``type: veth`` with ``endpoints: [{node: r1, interface: eth1}, ...]``;
  ``type: host`` with ``endpoint: {node, interface}`` and ``host-interface``; the other
  types (``mgmt-net``, ``macvlan``, ``vxlan``, ``vxlan-stitch``, ``dummy``) are refused with
  the reason.
- ``host:IF``: a veth named IF in the host's namespace, on the link's VLAN (as containerlab
  makes it, but through our bridge, so containers and VMs alike).
- A node of kind ``bridge`` or ``ovs-bridge`` is not a node: it is a multi-access segment,
  one VLAN on our OVS bridge, and every link to it adds one end to that segment (nothing
  is made on the host for it, unlike containerlab which needs the bridge made by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from lab import names
from topology.problems import Problems
from vendors import VendorConfig


class Node(Protocol):
    """What link resolution reads of a resolved node."""

    @property
    def kind(self) -> str: ...

    @property
    def vendor(self) -> VendorConfig: ...

# containerlab kinds that are a multi-access segment rather than a node.
SEGMENT_KINDS = frozenset({"bridge", "ovs-bridge"})
# containerlab link types and special endpoint nodes we do not make, and why.
REFUSED_LINK_TYPES = {
    "mgmt-net": "a link into the management network is not made (use the node's management interface)",
    "macvlan": "macvlan links onto a host interface are not made (use a 'host:IF' end or a bridge segment)",
    "vxlan": "VXLAN links to outside hosts are not made (multi-host labs tunnel their cross-host links themselves)",
    "vxlan-stitch": "VXLAN links to outside hosts are not made (multi-host labs tunnel their cross-host links themselves)",
    "dummy": "dummy (unconnected) interfaces are not made (connect the interface to a bridge segment instead)",
}
REFUSED_ENDPOINT_NODES = {"mgmt-net": REFUSED_LINK_TYPES["mgmt-net"], "macvlan": REFUSED_LINK_TYPES["macvlan"]}
IGNORED_LINK_FIELDS = frozenset({"mtu", "vars", "labels"})
IGNORED_ENDPOINT_FIELDS = frozenset({"mac", "vars"})
HOST_PORT = 0  # the port number of a host end (no vendor naming applies)


@dataclass(frozen=True)
class Endpoint:
    node: str  # a node, or names.HOST_NODE for a veth in the host's namespace
    interface: str  # as the user wrote it
    port: int  # data port number (1-based) per the vendor's naming; HOST_PORT for a host end

    @property
    def is_host(self) -> bool:
        return self.node == names.HOST_NODE

    def __str__(self) -> str:
        return f"{self.node}:{self.interface}"


@dataclass(frozen=True)
class Link:
    """A point-to-point link (two ends) or a multi-access segment (``segment`` names it;
    any number of ends, one VLAN). Either way: one id, one VLAN, N ends."""

    index: int
    ends: tuple[Endpoint, ...]
    segment: str | None = None

    @property
    def id(self) -> str:
        if self.segment is not None:
            return names.segment_link_id(self.segment)
        return names.link_id(str(self.ends[0]), str(self.ends[1]))

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self.ends

    @property
    def a(self) -> Endpoint:
        return self.ends[0]

    @property
    def b(self) -> Endpoint:
        return self.ends[1]

    @property
    def node_ends(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.ends if not e.is_host)

    @property
    def host_ends(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.ends if e.is_host)


def segment_names(raw_nodes: dict[str, Any], problems: Problems) -> dict[str, str]:
    """Nodes of a segment kind: name -> kind. Their other fields mean nothing to us."""
    found = {}
    for name, raw in raw_nodes.items():
        if isinstance(raw, dict) and raw.get("kind") in SEGMENT_KINDS:
            found[str(name)] = str(raw["kind"])
            extra = sorted(set(raw) - {"kind", "labels"})
            if extra:
                problems.warn(f"topology.nodes.{name}", f"a {raw['kind']} is a segment of our OVS bridge: "
                              f"{', '.join(extra)} not used, ignored")
    return found


def resolve_links(
    raw_links: Any, raw_nodes: dict, nodes: dict[str, Node], segments: dict[str, str], problems: Problems
) -> list[Link]:
    if raw_links is None:
        return []
    if not isinstance(raw_links, list):
        problems.error("topology.links", "must be a list")
        return []
    used: dict[tuple[str, int | str], int] = {}
    links: list[Link] = []
    segment_ends: dict[str, list[Endpoint]] = {}
    segment_first: dict[str, int] = {}
    for i, raw in enumerate(raw_links):
        where = f"links[{i}]"
        pair = _link_ends(raw, where, problems)
        if pair is None:
            continue
        resolved = [
            _endpoint(e, f"{where}.{place}", raw_nodes, nodes, segments, problems) for place, e in pair
        ]
        if None in resolved:
            continue
        on_segment = [e for e in resolved if e.node in segments]
        if len(on_segment) == 2:
            problems.error(where, "a link between two segments (bridge kinds) is not made: connect nodes to one segment")
            continue
        ends = [e for e in resolved if e.node not in segments]
        if all(e.is_host for e in ends) and not on_segment:
            problems.error(where, "both ends are host interfaces: a link needs a node")
            continue
        if len({e.node for e in ends}) < len(ends) and not on_segment:
            problems.error(where, f"self-loop: both ends are on node {ends[0].node}")
            continue
        if not _claim(ends, i, where, used, problems):
            continue
        if on_segment:
            segment = on_segment[0].node
            segment_ends.setdefault(segment, []).extend(ends)
            segment_first.setdefault(segment, i)
        else:
            links.append(Link(index=i, ends=tuple(ends)))
    for segment, ends in segment_ends.items():
        links.append(Link(index=segment_first[segment], ends=tuple(ends), segment=segment))
    return sorted(links, key=lambda link: link.index)


def _claim(ends: list[Endpoint], index: int, where: str, used: dict, problems: Problems) -> bool:
    """Each interface (and each host interface name) is used by one link only."""
    ok = True
    for end in ends:
        key = (end.node, end.interface if end.is_host else end.port)
        if key in used:
            problems.error(where, f"interface {end} is already used by links[{used[key]}]")
            ok = False
        else:
            used[key] = index
    return ok


def _link_ends(raw: Any, where: str, problems: Problems) -> list[tuple[str, Any]] | None:
    """The two raw ends of a link in either format, each with its place for messages."""
    if not isinstance(raw, dict):
        problems.error(where, "must be a mapping with 'endpoints: [\"node:iface\", \"node:iface\"]'")
        return None
    kind = raw.get("type")
    if kind is not None and kind in REFUSED_LINK_TYPES:
        problems.error(f"{where}.type", f"link type {kind!r} is not supported: {REFUSED_LINK_TYPES[kind]}")
        return None
    if kind == "host":
        return _host_link(raw, where, problems)
    if kind not in (None, "veth"):
        problems.error(f"{where}.type", f"unknown link type {kind!r} (supported: veth, host)")
        return None
    _check_link_keys(raw, where, {"type", "endpoints"}, problems)
    ends = raw.get("endpoints")
    if not isinstance(ends, list) or len(ends) != 2:
        problems.error(f"{where}.endpoints", "must list exactly two 'node:interface' endpoints")
        return None
    return [(f"endpoints[{j}]", e) for j, e in enumerate(ends)]


def _host_link(raw: dict, where: str, problems: Problems) -> list[tuple[str, Any]] | None:
    """containerlab's extended ``type: host``: one node end and a host interface name."""
    _check_link_keys(raw, where, {"type", "endpoint", "host-interface"}, problems)
    host_if = raw.get("host-interface")
    if not isinstance(host_if, str) or not host_if:
        problems.error(f"{where}.host-interface", "a 'type: host' link needs the host interface name")
        return None
    return [("endpoint", raw.get("endpoint")), ("host-interface", f"{names.HOST_NODE}:{host_if}")]


def _check_link_keys(raw: dict, where: str, known: set[str], problems: Problems) -> None:
    for key in raw:
        if key in IGNORED_LINK_FIELDS:
            problems.warn(f"{where}.{key}", "containerlab field not used by Archetype, ignored")
        elif key not in known:
            problems.error(f"{where}.{key}", f"unknown field {key!r}")


def _split(value: Any, where: str, problems: Problems) -> tuple[str, str] | None:
    """``"node:iface"`` or ``{node: ..., interface: ...}`` -> (node, interface)."""
    if isinstance(value, dict):
        for key in value:
            if key in IGNORED_ENDPOINT_FIELDS:
                problems.warn(f"{where}.{key}", "containerlab field not used by Archetype, ignored")
            elif key not in ("node", "interface"):
                problems.error(f"{where}.{key}", f"unknown field {key!r}")
        node, interface = value.get("node"), value.get("interface")
        if isinstance(node, str) and node and isinstance(interface, str) and interface:
            return node, interface
        problems.error(where, f"bad endpoint {value!r}: expected {{node: NAME, interface: NAME}}")
        return None
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        problems.error(where, f"bad endpoint {value!r}: expected 'node:interface'")
        return None
    node, interface = value.split(":")
    return node, interface


def _endpoint(
    value: Any, where: str, raw_nodes: dict, nodes: dict[str, Node], segments: dict[str, str], problems: Problems
) -> Endpoint | None:
    split = _split(value, where, problems)
    if split is None:
        return None
    node_name, interface = split
    if node_name in REFUSED_ENDPOINT_NODES:
        problems.error(where, f"'{node_name}' endpoints are not supported: {REFUSED_ENDPOINT_NODES[node_name]}")
        return None
    if node_name == names.HOST_NODE:
        if not names.is_valid_host_ifname(interface):
            problems.error(where, f"host interface {interface!r} is not a valid Linux interface name "
                           "(1-15 letters, digits, '_', '.', '-')")
            return None
        return Endpoint(node=node_name, interface=interface, port=HOST_PORT)
    if node_name in segments:
        return Endpoint(node=node_name, interface=interface, port=HOST_PORT)  # a label on the segment
    if node_name not in raw_nodes:
        problems.error(where, f"link to unknown node {node_name!r}")
        return None
    node = nodes.get(node_name)
    if node is None:
        return None  # the node's own problems are already reported
    naming = node.vendor.interfaces
    port = naming.port_of(interface)
    if port is None:
        problems.error(where, f"{node.kind} node {node_name} has no interface {interface!r} (expected e.g. {naming.examples()})")
        return None
    if port > naming.max_ports:
        problems.error(where, f"{node.kind} node {node_name} has at most {naming.max_ports} data ports; {interface!r} is beyond")
        return None
    return Endpoint(node=node_name, interface=interface, port=port)
