"""A node that stops outside any flow (``docker kill``, QEMU killed, a crash) takes its peers'
carrier on this host, and gives it back when it starts again: the runtimes' own events
(docker's ``die``/``start``, libvirt's lifecycle), then this host made to match them.

What is here is read from the host alone, never from a state record: the lab's OVS ports
(their external_ids name the lab, node and link) give a node's peers on this host, its own
link ports (a container started again is wired again from them: same VLANs, same ports) and
its tunnels (a link to another host: the caller tells that host). A peer's end whose
carrier this took is remembered in the lab's ``carrier-held`` folder (as ``node stop``
does), so that only those get it back, never a link set down by ``archetype link``.

No Prefect here: the watcher (``flows.carrier_watch``) runs the event streams, holds the
lab's lock while it reconciles (a flow that holds it is in charge), and tells other hosts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab import names
from providers import get_provider
from providers.base import LinkEnd, NodeState
from providers.controls import held_because_of, remember_held
from providers.labs import lab_nodes
from providers.network import ovs
from providers.network.ports import port_is_up
from topology import Node
from vendors.model import Provider

log = logging.getLogger("archetype.carrier")

DOCKER_EVENTS = ("die", "start")
LIBVIRT_STARTED, LIBVIRT_STOPPED, LIBVIRT_CRASHED = 2, 5, 8  # virDomainEventType


@dataclass(frozen=True)
class NodeEvent:
    """A runtime said a node of a lab started (``up``) or stopped."""

    lab_id: str
    node: str
    up: bool


@dataclass
class Change:
    """What a reconcile did for one node: whether it runs, and its links to other hosts
    (link id -> the other host's data-plane address), which that host must follow."""

    node: str
    up: bool
    peers_here: list[str] = field(default_factory=list)  # ports whose carrier changed
    remotes: dict[str, str] = field(default_factory=dict)


# Events --------------------------------------------------------------------------------


def docker_events(emit: Callable[[NodeEvent], None], stop: threading.Event) -> None:
    """Stream docker's container events of our labs into ``emit`` until ``stop`` (a daemon
    that goes away is waited for and streamed again)."""
    while not stop.is_set():
        try:
            api = get_provider(Provider.DOCKER).api  # type: ignore[attr-defined]
            stream = api.events(decode=True, filters={"type": "container", "event": list(DOCKER_EVENTS),
                                                      "label": [names.LABEL_LAB]})
            for event in stream:
                labels = (event.get("Actor") or {}).get("Attributes") or {}
                lab_id, node = labels.get(names.LABEL_LAB), labels.get(names.LABEL_NODE)
                if lab_id and node and event.get("status") in DOCKER_EVENTS:
                    emit(NodeEvent(lab_id, node, event["status"] == "start"))
                if stop.is_set():
                    return
        except Exception as err:  # noqa: BLE001 - dockerd restarted or not up yet: stream again
            log.info("docker events: %s; again in 2 s", err)
        stop.wait(2)


def libvirt_events(emit: Callable[[NodeEvent], None], stop: threading.Event) -> None:
    """libvirt's lifecycle events of our domains into ``emit`` (a domain started, stopped or
    crashed). libvirt's default event loop runs in this thread, on a connection of its own."""
    import libvirt

    from lab.settings import get_settings
    from providers.libvirt.domains import _marker

    libvirt.virEventRegisterDefaultImpl()

    def lifecycle(_conn, dom, event, detail, _opaque) -> None:  # noqa: ANN001 - libvirt's callback
        if event not in (LIBVIRT_STARTED, LIBVIRT_STOPPED, LIBVIRT_CRASHED):
            return
        if (event, detail) in ((LIBVIRT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED),
                               (LIBVIRT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED)):
            return  # a live move (migrate-node), leaving or arriving paused: it runs on, its links follow it
        if (event, detail) in ((LIBVIRT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED),
                               (LIBVIRT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT)):
            return  # a snapshot's save (archetype snapshot): the VM is restored at once, not a crash
        try:
            marker = _marker(dom)
        except libvirt.libvirtError:
            return  # gone already (undefined): a destroy
        if marker is not None:
            emit(NodeEvent(marker.lab_id, marker.node_name, event == LIBVIRT_STARTED))

    while not stop.is_set():
        conn = None
        try:
            conn = libvirt.open(get_settings().libvirt_uri)
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
            conn.setKeepAlive(5, 3)
            while not stop.is_set() and conn.isAlive():
                libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError as err:
            log.info("libvirt events: %s; again in 2 s", err)
        finally:
            if conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()
        stop.wait(2)


# This host made to match -------------------------------------------------------------------


def _ends_of(link_id: str) -> list[tuple[str, str]]:
    return [tuple(end.split(":", 1)) for end in link_id.split("--") if ":" in end]  # type: ignore[misc]


def _is_tunnel(port: ovs.PortInfo) -> bool:
    """A VXLAN device (a link's or a segment's tunnel to another host), not a node's end."""
    return port.name.startswith(names.VXLAN_PREFIX)


def reconcile(lab_id: str, nodes: set[str]) -> list[Change]:
    """Make this host's part of the lab match whether each of ``nodes`` runs now. Call it
    holding the lab's lock. A node no longer here (destroyed, moved) is left alone."""
    statuses = {status.name: status for status in lab_nodes(lab_id)}
    bridge = [p for p in ovs.bridge_ports().values() if p.lab_id == lab_id and p.link_id]
    changes = []
    for node in sorted(nodes):
        status = statuses.get(node)
        if status is None or status.state is NodeState.MISSING:
            continue
        up = status.state is NodeState.RUNNING
        mine = [p for p in bridge if p.node == node]
        change = Change(node, up)
        change.remotes = {p.link_id: remote for p in mine if _is_tunnel(p)
                          and (remote := _tunnel_remote(p.name))}  # type: ignore[misc]
        if up and _crashed(lab_id, node):
            _wire_again(lab_id, status, [p for p in mine if not _is_tunnel(p)])
        peers = [p for p in bridge if p.node != node and not _is_tunnel(p)
                 and any(end_node == node for end_node, _ in _ends_of(p.link_id or ""))]
        change.peers_here = _follow(lab_id, node, up, peers, statuses)
        _mark_crashed(lab_id, node, not up)
        changes.append(change)
    return changes


def follow_remote(lab_id: str, node: str, up: bool) -> list[str]:
    """This host's ends of links to ``node``, which runs on another host: carrier as it does."""
    statuses = {status.name: status for status in lab_nodes(lab_id)}
    peers = [p for p in ovs.bridge_ports().values() if p.lab_id == lab_id and p.link_id and p.node != node
             and not _is_tunnel(p) and any(n == node for n, _ in _ends_of(p.link_id))]
    return _follow(lab_id, node, up, peers, statuses)


def _follow(lab_id: str, node: str, up: bool, peers: list[ovs.PortInfo], statuses: dict) -> list[str]:
    """Each peer port loses carrier because of ``node`` (when it has it), or gets it back
    when ``node`` was the last reason it had none. Returns the ports changed."""
    changed = []
    for port in peers:
        status = statuses.get(port.node or "")
        if status is None or status.state is not NodeState.RUNNING:
            continue  # a peer that does not run has nothing to lose; its start applies its links
        held = held_because_of(lab_id, port.name)
        if up:
            if node not in held:
                continue
            held.discard(node)
            if not held:
                get_provider(status.provider).set_link_state(lab_id, status.name, port.name, True)
                changed.append(port.name)
        else:
            if node in held:
                continue
            if not held and status.provider is Provider.DOCKER and port_is_up(port.name) is False:
                continue  # down already, not because of a peer: a link set down stays as it is
            if not held:
                get_provider(status.provider).set_link_state(lab_id, status.name, port.name, False)
                changed.append(port.name)
            held.add(node)
        remember_held(lab_id, port.name, held)
    return changed


def _crashed_path(lab_id: str, node: str) -> Path:
    return names.lab_dir(lab_id) / "stopped-outside" / node


def _crashed(lab_id: str, node: str) -> bool:
    return _crashed_path(lab_id, node).is_file()


def _mark_crashed(lab_id: str, node: str, crashed: bool) -> None:
    path = _crashed_path(lab_id, node)
    if crashed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{time.time():.0f}\n")
    else:
        path.unlink(missing_ok=True)


def _wire_again(lab_id: str, status, ports: list[ovs.PortInfo]) -> None:  # noqa: ANN001 - a NodeStatus
    """A container started outside any flow has a new network namespace and no links: wired
    again from its ports' records in OVS (same VLANs, same port names). A VM's taps come back
    with its domain (libvirt re-adds them with their tags)."""
    if status.provider is not Provider.DOCKER or not ports:
        return  # wired even when its old host ends exist: a dead namespace may still hold them (wire_node replaces them)
    node = Node.of(status.name, status.kind)
    naming = node.vendor.interfaces
    ends = []
    for port in ports:
        interface = next((i for n, i in _ends_of(port.link_id or "") if n == status.name), None)
        if interface is not None and port.tag is not None:
            ends.append(LinkEnd(link_id=port.link_id or "", interface=interface, port=naming.port_of(interface) or 0,
                                vlan=port.tag, port_name=port.name))
    get_provider(Provider.DOCKER).wire_node(lab_id, node, sorted(ends, key=lambda e: e.port))
    log.info("lab %s: %s wired again after a start (%d links; unchanged where the start was a flow's)", lab_id, status.name, len(ends))


def _tunnel_remote(device: str) -> str | None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=device)
        if not found:
            return None
        (msg,) = ipr.get_links(found[0])
    info = msg.get_attr("IFLA_LINKINFO")
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    return data.get_attr("IFLA_VXLAN_GROUP") if data is not None else None
