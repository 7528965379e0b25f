"""A running lab's controls, across providers: its nodes and link ends found from the lab
state record, a link's state and impairment put on the host, packet capture's command.

No Prefect here: the flows load the state record and hand it in. Bad input (an unknown
node or interface, a value out of range, a kind that cannot stop) raises ``TopologyError``
before anything is touched.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from lab import names
from lab.errors import TopologyError
from lab.settings import get_settings
from lab.state import LabState, LinkConditions, LinkRecord, NodeRecord
from providers import get_provider
from providers.base import LinkEnd, NodeState
from providers.network import ovs, relays
from providers.network.ports import port_exists, put_on_bridge, take_off_bridge
from topology import Node, NodeRef
from vendors import get_vendor

LINK_STATES = ("up", "down")


# Finding things in the state -----------------------------------------------------------


def check_lab_id(lab_id: str) -> None:
    if not names.is_valid_lab_id(lab_id):
        raise TopologyError([f"lab: invalid lab id {lab_id!r}"])


def check_lab(lab_id: str, state: LabState | None) -> LabState:
    check_lab_id(lab_id)
    if state is None or not state.is_known or not state.nodes:
        raise TopologyError([f"lab: no lab {lab_id!r} deployed (no state record of it)"])
    return state


def node_record(state: LabState, node_name: str) -> NodeRecord:
    for record in state.nodes:
        if record.name == node_name:
            return record
    known = ", ".join(n.name for n in state.nodes)
    raise TopologyError([f"node: lab {state.lab_id} has no node {node_name!r} (its nodes: {known})"])


def node_of(record: NodeRecord, lab_id: str | None = None) -> Node:
    """The node as providers need it for wiring, readiness and post-boot: its kind's vendor
    entry, the topology's ``exec`` the deploy recorded and, given the lab, its container's
    name's containerlab prefix (netlab's ``clab-<lab>-<node>``), read from its runtime name."""
    prefix = names.container_prefix(record.runtime_name, lab_id, record.name) if lab_id else None
    return Node.of(record.name, record.kind, exec=tuple(record.exec_lines), name_prefix=prefix)


def check_can_stop(record: NodeRecord) -> None:
    vendor = get_vendor(record.kind)
    if vendor.vm is not None and vendor.vm.stop == "unsupported":
        raise TopologyError([
            f"node: {record.name} is a {record.kind} VM, which cannot be stopped cleanly: {vendor.vm.stop_note}; "
            f"destroy the lab and deploy it again instead"
        ])


@dataclass(frozen=True)
class End:
    node: str
    interface: str
    provider: str
    port_name: str  # host side: veth host end or tap


def _split(endpoint: str) -> tuple[str, str]:
    node, sep, interface = endpoint.partition(":")
    if not sep or not node or not interface:
        raise TopologyError([f"endpoint: {endpoint!r} is not NODE:INTERFACE"])
    return node, interface


def _same_interface(kind: str, written: str, asked: str) -> bool:
    if written == asked:
        return True
    naming = get_vendor(kind).interfaces
    port = naming.port_of(asked)
    return port is not None and port == naming.port_of(written)


def find_link(state: LabState, endpoint: str) -> tuple[LinkRecord, int]:
    """The link with that end (``node:interface``, in any of the vendor's spellings) and
    which of its endpoints it is."""
    node_name, interface = _split(endpoint)
    record = node_record(state, node_name)
    for link in state.links:
        for index, written in enumerate(link.endpoints):
            other_node, other_interface = _split(written)
            if other_node == node_name and _same_interface(record.kind, other_interface, interface):
                return link, index
    used = [e for link in state.links for e in link.endpoints if e.startswith(f"{node_name}:")]
    raise TopologyError([f"endpoint: {node_name} has no link on interface {interface!r} "
                         f"(its links: {', '.join(used) or 'none'})"])


def end_of(lab_id: str, state: LabState, endpoint: str) -> End:
    node_name, interface = _split(endpoint)
    record = node_record(state, node_name)
    return End(node_name, interface, record.provider, names.host_port_name(lab_id, node_name, interface))


def link_ends_of(state: LabState, node_name: str) -> list[LinkEnd]:
    """The node's link ends, in port order, as deploy planned them (same VLANs, same ports)."""
    record = node_record(state, node_name)
    naming = get_vendor(record.kind).interfaces
    ends = []
    for link in state.links:
        for written in link.endpoints:
            node, interface = _split(written)
            if node == node_name:
                ends.append(LinkEnd(link_id=link.id, interface=interface, port=naming.port_of(interface) or 0,
                                    vlan=link.vlan, port_name=names.host_port_name(state.lab_id, node, interface)))
    return sorted(ends, key=lambda end: end.port)


def links_of(state: LabState, node_name: str) -> list[LinkRecord]:
    return [link for link in state.links if any(_split(e)[0] == node_name for e in link.endpoints)]


def new_conditions(current: LinkConditions, *, clear: bool, delay_ms: float | None, jitter_ms: float | None,
                   loss_percent: float | None, rate_kbit: int | None) -> LinkConditions:
    """The link's impairment after a change: ``clear`` first, then the values given."""
    problems = [f"{name}: must be 0 or more, not {value}" for name, value in
                (("delay", delay_ms), ("jitter", jitter_ms), ("loss", loss_percent), ("rate", rate_kbit))
                if value is not None and value < 0]
    if loss_percent is not None and loss_percent > 100:
        problems.append(f"loss: a percentage, at most 100, not {loss_percent}")
    if problems:
        raise TopologyError(problems)
    values = {} if clear else current.model_dump()
    given = {"delay_ms": delay_ms, "jitter_ms": jitter_ms, "loss_percent": loss_percent, "rate_kbit": rate_kbit}
    values.update({k: v for k, v in given.items() if v is not None})
    return LinkConditions(**{k: (v or None) for k, v in values.items()})


# Putting a link's state and impairment on the host ---------------------------------------


def is_here(state: LabState, node_name: str) -> bool:
    """The node runs on this host as far as the record knows (a multi-host lab's slice
    record holds only its host's nodes; the other ends of its links are elsewhere)."""
    record = next((n for n in state.nodes if n.name == node_name), None)
    return record is not None and record.host in (None, get_settings().host_name)


def node_running(lab_id: str, end: End) -> bool:
    return get_provider(end.provider).node_status(lab_id, end.node).state is NodeState.RUNNING


def apply_link(lab_id: str, state: LabState, link: LinkRecord, stopped_elsewhere: frozenset[str] = frozenset()) -> list[str]:
    """Make this host match the link's record for the ends it has.

    Carrier: a running end has it when the link is up and every other end's node runs (a
    node here: its runtime says so; a node on another host: not in ``stopped_elsewhere``);
    on a LAN segment, when the segment is up.
    An end without carrier because of its peer is remembered (``carrier_held``), so that a
    redeploy, which starts every node, gives it back. Path: the bridge (the link's VLAN)
    when unimpaired, the link's relay when impaired -- between the two ends here, or for a
    link that crosses hosts, between the first end's port and the link's tunnel, on the
    first end's host only (one side carries both directions). Ends of stopped nodes follow
    when they start. Returns notes for the user."""
    nodes = [_split(endpoint)[0] for endpoint in link.endpoints]
    ends = [end_of(lab_id, state, e) for e, node in zip(link.endpoints, nodes, strict=True) if is_here(state, node)]
    running = [end for end in ends if node_running(lab_id, end)]
    gone = {end.node for end in ends if end not in running} | (set(nodes) & stopped_elsewhere)
    notes = [f"{end.node} is not running: its end follows when it starts" for end in ends if end not in running]
    lan = names.is_segment_link(link.id)  # a LAN's members keep carrier when one stops, as on a switch
    for end in running:
        peers_gone = [] if lan else sorted(gone & (set(nodes) - {end.node}))
        get_provider(end.provider).set_link_state(lab_id, end.node, end.port_name, link.state != "down" and not peers_gone)
        remember_held(lab_id, end.port_name, peers_gone if link.state != "down" else [])
    tunnel = names.vxlan_device_name(lab_id, link.id) if len(ends) < len(nodes) else None
    relay_ports = _relay_ports(ends, running, nodes, tunnel)
    if link.conditions.active and relay_ports:
        take_off_bridge(list(relay_ports))
        relays.start_relay(lab_id, link.id, relay_ports, link.conditions)
        return notes
    relays.stop_relay(lab_id, link.id)
    bridge = ovs.bridge_ports()
    wanted = [(end.node, end.port_name) for end in running]
    if tunnel and ends and port_exists(tunnel):
        wanted.append((ends[0].node, tunnel))
    missing = [(node, port_name) for node, port_name in wanted
               if (port := bridge.get(port_name)) is None or port.tag != link.vlan]
    put_on_bridge(lab_id, missing, link.id, link.vlan)
    return notes


def _relay_ports(ends: list[End], running: list[End], nodes: list[str], tunnel: str | None) -> tuple[str, str] | None:
    """The two ports an impairment relay joins on this host, or None (none runs here)."""
    if tunnel is None:
        return (ends[0].port_name, ends[1].port_name) if len(running) == len(ends) == 2 else None
    first = next((end for end in running if end.node == nodes[0]), None)
    return (first.port_name, tunnel) if first is not None and port_exists(tunnel) else None


def _held_dir(lab_id: str) -> Path:
    return names.lab_dir(lab_id) / "carrier-held"


def remember_held(lab_id: str, port_name: str, because_of: Collection[str]) -> None:
    """Remember which stopped peers took this host port's carrier (none: forget it). Used by
    the link controls and by the carrier watcher, so both see the same marks."""
    path = _held_dir(lab_id) / port_name
    if because_of:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(sorted(because_of)) + "\n")
    else:
        path.unlink(missing_ok=True)


def held_because_of(lab_id: str, port_name: str) -> set[str]:
    """The stopped peers that took this host port's carrier."""
    path = _held_dir(lab_id) / port_name
    return set(path.read_text().split()) if path.is_file() else set()


def carrier_held(lab_id: str) -> set[str]:
    """The lab's host ports here whose carrier a stopped peer took (a redeploy gives it back)."""
    folder = _held_dir(lab_id)
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def link_view(lab_id: str, link: LinkRecord) -> dict:
    """A link as `archetype link LAB --json` lists it."""
    conditions = link.conditions
    return {
        "id": link.id,
        "endpoints": link.endpoints,
        "vlan": link.vlan,
        "state": link.state,
        "impairment": {
            "delay_ms": conditions.delay_ms, "jitter_ms": conditions.jitter_ms,
            "loss_percent": conditions.loss_percent, "rate_kbit": conditions.rate_kbit,
        },
        "relay_pid": relays.relay_pid(lab_id, link.id),
    }


# Packet capture ---------------------------------------------------------------------------




def tcpdump_argv(port_name: str, target: str | Path, count: int | None) -> list[str]:
    """tcpdump writing pcap to ``target`` (``-`` = stdout), a packet at a time (``-U``) so that
    a reader sees it at once; ``-Z root`` keeps the file root's (the workspace is root's)."""
    argv = ["tcpdump", "--immediate-mode", "-U", "-n", "-Z", "root", "-i", port_name, "-w", str(target)]
    if count is not None:
        argv += ["-c", str(int(count))]
    return argv


def captured_count(tcpdump_messages: str) -> int:
    """Packets captured, from tcpdump's closing line (``5 packets captured``)."""
    for line in tcpdump_messages.splitlines():
        words = line.split()
        if len(words) == 3 and words[1:] in (["packets", "captured"], ["packet", "captured"]):
            return int(words[0])
    return 0


def captures_dir(lab_id: str) -> Path:
    return names.workspace() / "captures" / lab_id


# Live look-ups (no state record: `exec` and `capture` answer at once, without Prefect) -----


def live_node(lab_id: str, node_name: str) -> NodeRef:
    """The running node, found by its runtime's markers (its kind's vendor entry with it)."""
    from providers.labs import lab_nodes

    check_lab_id(lab_id)
    found = lab_nodes(lab_id)
    if not found:
        raise TopologyError([f"lab: no lab {lab_id!r} on this host"])
    for status in found:
        if status.name == node_name:
            if status.state is not NodeState.RUNNING:
                raise TopologyError([f"node: {node_name} of lab {lab_id} is {status.state.value}, not running"])
            return status.ref()
    known = ", ".join(n.name for n in found)
    raise TopologyError([f"node: lab {lab_id} has no node {node_name!r} (its nodes: {known})"])


def live_port(lab_id: str, endpoint: str) -> str:
    """The host port of a running node's link end: the OVS port marked with the lab, the
    node and a link on that interface (any spelling); else (a link its relay carries, off
    the bridge) the port of one of the vendor's spellings that exists."""
    from providers.network.ports import port_exists

    node_name, interface = _split(endpoint)
    node = live_node(lab_id, node_name)
    naming = node.vendor.interfaces
    port = naming.port_of(interface)
    if port is None:
        raise TopologyError([f"endpoint: {node.kind} node {node_name} has no interface {interface!r} "
                             f"(e.g. {naming.examples()})"])
    for candidate in ovs.bridge_ports().values():
        if candidate.lab_id != lab_id or candidate.node != node_name or not candidate.link_id:
            continue
        for end in candidate.link_id.split("--"):
            end_node, _, end_interface = end.partition(":")
            if end_node == node_name and naming.port_of(end_interface) == port:
                return candidate.name
    spellings = dict.fromkeys([interface, *(f.name_of(port) for f in naming.formats)])
    for spelling in spellings:
        name = names.host_port_name(lab_id, node_name, spelling)
        if port_exists(name):
            return name
    raise TopologyError([f"endpoint: {node_name} has no link on {interface!r} in lab {lab_id}"])
