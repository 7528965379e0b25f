"""Stale-network recovery: check a lab's previous allocation against what exists.

Rules (``plan_recovery``, pure), for each previous link, in order:

Port checks (the link's ports: recorded names, names derived from its endpoints, and bridge
ports marked with the lab and link):
- a port present with another lab's marker                     -> stale (port left alone)
- a port of ours present with a tag other than the link's      -> stale, port removed
- a port of ours present whose node is gone                    -> stale, port removed
  (a segment -- containerlab's bridge, N ends on one tag -- keeps its tag in both cases
  above: only the bad port goes, the ends still there stay on the segment)
- no port present and every known node of the link gone        -> stale ("nothing left")
Tag checks (after the ports above are counted as removed):
- tag outside the settings' range                              -> stale
- tag reserved by another lab's record                         -> stale
- tag held by a bridge port that is not ours                   -> stale
- tag held by our port of another link                         -> stale
- tag already kept for an earlier link (duplicate)             -> stale
A stale link's own ports are removed too (they carry a tag it no longer owns).

A link that was simply never wired (ports absent, a node present: the deploy was killed
before wiring) is NOT stale: it keeps its tag. Our ports whose node is gone are removed
even when their link is no longer in the record. Dropped tags stay blocked while any port
that is not removed still holds them (they are "taken"/"held" for allocation); a dropped
link's old tag is kept as a hint that allocation prefers when it is free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from lab import names
from lab.errors import NetworkError
from lab.settings import get_settings
from lab.state import LinkRecord
from providers.network import cleanup, ovs, vlans
from providers.network.markers import endpoint_node, endpoint_port_names

log = logging.getLogger(__name__)


@dataclass
class RecoveryPlan:
    kept: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # link id -> why
    hints: dict[str, int] = field(default_factory=dict)  # dropped link -> its old tag
    stale_ports: list[str] = field(default_factory=list)  # our ports to remove
    link_ports: dict[str, dict[str, str | None]] = field(default_factory=dict)  # link -> {port: node}


def plan_recovery(
    lab_id: str,
    previous: Iterable[LinkRecord],
    bridge_ports: Mapping[str, ovs.PortInfo],
    *,
    known_ports: Mapping[str, tuple[str, str | None]],
    reserved_by_others: Mapping[int, str],
    node_exists: Callable[[str], bool],
    vlan_min: int,
    vlan_max: int,
) -> RecoveryPlan:
    """Decide what to keep (pure: ``node_exists`` is asked at most once per node).

    ``known_ports``: port name -> (link id, node) from the lab's own record;
    ``reserved_by_others``: tag -> lab for every other lab's reservation."""
    plan = RecoveryPlan()
    cache: dict[str, bool] = {}

    def exists(node: str) -> bool:
        if node not in cache:
            cache[node] = bool(node_exists(node))
        return cache[node]

    records: dict[str, LinkRecord] = {}
    for record in previous:
        records.setdefault(record.id, record)

    # Which port belongs to which link, and to which node.
    for link, record in records.items():
        ports: dict[str, str | None] = {}
        for endpoint in record.endpoints:
            for name in endpoint_port_names(lab_id, endpoint):
                ports[name] = endpoint_node(endpoint)
        for name in record.ports:
            ports.setdefault(name, None)
        for name, (known_link, node) in known_ports.items():
            if known_link == link:
                ports[name] = ports.get(name) or node
        for port in bridge_ports.values():
            if port.lab_id == lab_id and port.link_id == link:
                ports[port.name] = port.node or ports.get(port.name)
        plan.link_ports[link] = ports
    ours_by_name = {name for ports in plan.link_ports.values() for name in ports} | set(known_ports)

    def is_ours(port: ovs.PortInfo) -> bool:
        return port.lab_id == lab_id or (port.lab_id is None and port.name in ours_by_name)

    stale_ports: dict[str, None] = {}
    reasons: dict[str, list[str]] = {link: [] for link in records}

    # Port checks.
    for link, record in records.items():
        ports = plan.link_ports[link]
        present = [bridge_ports[name] for name in ports if name in bridge_ports]
        for port in present:
            if not is_ours(port):
                reasons[link].append(f"port {port.name} carries lab {port.lab_id}'s marker")
                continue
            if port.lab_id == lab_id and port.link_id not in (None, link):
                continue  # a port of another link of ours: judged with that link
            node = port.node or ports.get(port.name)
            # A segment's ends come and go one by one: a bad port of it goes alone, and the
            # segment keeps its tag for the ends still there (a link has nothing left then).
            judged = [] if names.is_segment_link(link) else reasons[link]
            if port.tag != record.vlan:
                judged.append(f"port {port.name} has tag {port.tag}, not {record.vlan}")
                stale_ports[port.name] = None
            elif node is not None and not exists(node):
                judged.append(f"port {port.name}: node {node} is gone")
                stale_ports[port.name] = None
        nodes = {endpoint_node(e) for e in record.endpoints} | {n for n in ports.values() if n}
        if not present and nodes and not any(exists(n) for n in sorted(nodes)):
            reasons[link].append("nothing left: no port on the bridge and no node")

    # Our ports outside the previous links whose node is gone: leftovers.
    for port in bridge_ports.values():
        if port.lab_id == lab_id and port.link_id not in records and port.node and not exists(port.node):
            stale_ports[port.name] = None

    # Tag checks, against the ports that stay.
    holders: dict[int, list[ovs.PortInfo]] = {}
    for port in bridge_ports.values():
        if port.tag is not None and port.name not in stale_ports:
            holders.setdefault(port.tag, []).append(port)
    kept_by_tag: dict[int, str] = {}
    for link, record in records.items():
        tag = record.vlan
        own_names = plan.link_ports[link]
        if not vlan_min <= tag <= vlan_max:
            reasons[link].append(f"tag {tag} is outside {vlan_min}-{vlan_max}")
        if tag in reserved_by_others:
            reasons[link].append(f"tag {tag} is reserved by lab {reserved_by_others[tag]}")
        for port in holders.get(tag, []):
            if not is_ours(port):
                owner = f"lab {port.lab_id}" if port.lab_id else "no lab (unmarked)"
                reasons[link].append(f"tag {tag} is held by port {port.name} of {owner}")
            elif port.name not in own_names and (port.lab_id != lab_id or port.link_id not in (None, link)):
                other = port.link_id or known_ports.get(port.name, ("?", None))[0]
                reasons[link].append(f"tag {tag} is held by port {port.name} of link {other}")
        if not reasons[link] and tag in kept_by_tag:
            reasons[link].append(f"tag {tag} is already kept for link {kept_by_tag[tag]}")
        if reasons[link]:
            plan.dropped[link] = "; ".join(dict.fromkeys(reasons[link]))
            plan.hints[link] = tag
            for name in own_names:
                port = bridge_ports.get(name)
                if port is not None and is_ours(port) and port.link_id in (None, link):
                    stale_ports[name] = None
        else:
            plan.kept[link] = tag
            kept_by_tag[tag] = link
    plan.stale_ports = list(stale_ports)
    return plan


def recover_allocation(
    lab_id: str, previous: Iterable[LinkRecord], node_exists: Callable[[str], bool]
) -> dict[str, int]:
    """See ``providers.network.recover_allocation``."""
    vlans.check_lab_id(lab_id)
    previous = list(previous)
    settings = get_settings()
    with vlans.vlan_lock():
        state = ovs.read_state()
        others = vlans.other_reservations(lab_id)
        own = vlans.load_reservation(lab_id) or vlans.Reservation(lab_id)
        reserved_by_others = {tag: other for other, rec in others.items() for tag in rec.tags().values()}
        plan = plan_recovery(
            lab_id, previous, state.bridge,
            known_ports=own.port_owners(), reserved_by_others=reserved_by_others, node_exists=node_exists,
            vlan_min=settings.vlan_min, vlan_max=settings.vlan_max,
        )
        error = None
        if plan.stale_ports:
            try:
                cleanup.remove_ports(plan.stale_ports, lab_id=lab_id)
            except NetworkError as err:
                error = err
        # The record now reserves exactly what was kept; every port stays known for cleanup.
        real = {p for r in previous for p in r.ports} | set(state.everywhere) | set(own.port_owners())
        for link, ports in plan.link_ports.items():
            for port, node in ports.items():
                if port in real:
                    own.note(link, port, node)
        hints = dict(own.hints)
        for link, entry in own.links.items():
            if entry.vlan is not None and link not in plan.kept:
                hints.setdefault(link, entry.vlan)
            entry.vlan = plan.kept.get(link)
        for link, tag in plan.kept.items():
            own.links.setdefault(link, vlans.LinkEntry()).vlan = tag
            hints.pop(link, None)
        hints.update(plan.hints)
        own.hints = hints
        vlans.save_reservation(own)
    for link, why in plan.dropped.items():
        log.info("lab %s: dropped stale VLAN of link %s: %s", lab_id, link, why)
    if plan.stale_ports:
        log.info("lab %s: removed stale ports %s", lab_id, ", ".join(plan.stale_ports))
    if error is not None:
        raise NetworkError(f"lab {lab_id}: recovery could not remove stale ports "
                           f"{', '.join(plan.stale_ports)}: {error}") from error
    return plan.kept
