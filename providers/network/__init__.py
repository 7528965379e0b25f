"""Host networking: one OVS bridge, a VLAN tag per link, veths for containers, taps for VMs.

This facade is the contract the providers and flows code against. Implementation lives in
the modules beside it: ``ovs.py`` (ovs-vsctl), ``netlink.py`` (pyroute2, setns, ethtool
ioctl), ``veth.py`` (container ends), ``libvirt_xml.py`` (VM NICs and taps), ``vlans.py``
(reservation records, lock, tag selection), ``recovery.py``, ``cleanup.py``.

Markers: every OVS port we add carries external_ids ``archetype-lab``, ``archetype-link``
and ``archetype-node`` (names in ``lab.names``); every host-side veth carries the ifalias
``archetype lab=<lab> node=<node> link=<link>``. Every port name a lab makes is also noted
in its VLAN record before it is made, so cleanup finds ports even before they are marked.

Cost: no function spawns more than one ``ovs-vsctl`` per batch (reads are one call, writes
one transaction); veths, MTU, ifalias and TX offload go through netlink/ioctl in-process.
Every failure raises ``lab.errors.NetworkError`` (transient) naming the lab/node/port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.network import cleanup as _cleanup
from providers.network import host_ends as _host_ends
from providers.network import ovs as _ovs
from providers.network import ports as _ports
from providers.network import recovery as _recovery
from providers.network import veth as _veth
from providers.network import vlans as _vlans
from providers.network import vm_interfaces as _vm_interfaces
from providers.network.ovs import PortInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from lab.state import LinkRecord
    from providers.base import CleanupReport, LinkEnd

__all__ = [
    "PortInfo",
    "allocate_vlans",
    "attach_container_ends",
    "attach_host_ends",
    "bridge_ports",
    "check_lab_ports",
    "ensure_bridge",
    "ensure_vm_ports",
    "inside_macs",
    "network_inventory",
    "network_labs",
    "recover_allocation",
    "release_lab",
    "release_links_not_in",
    "remove_ports",
    "reserved_links",
    "set_port_up",
    "unplug_dead_taps",
    "vm_interface_xml",
]


def check_lab_ports(lab_id: str, port_names: list[str]) -> None:
    """Refuse (``NetworkError``) a name that exists and is not an interface of the lab (our
    ifalias marker, or its OVS row): a step's port names are flow parameters."""
    _ports.check_lab_ports(lab_id, port_names)


def set_port_up(port_name: str, up: bool) -> None:
    """A host port (veth host end, tap) up or down; a container's host veth down takes the
    carrier from its peer in the container, and OVS never sets it up again."""
    _ports.set_port_up(port_name, up)


def ensure_bridge() -> None:
    """Create the bridge from settings (datapath type too) if it is missing. Idempotent.
    (``attach_container_ends`` and ``ensure_vm_ports`` also ensure it, in their transaction.)"""
    _ovs.ensure_bridge()


def bridge_ports() -> dict[str, PortInfo]:
    """Every port of the bridge with its tag and external_ids, read in one call
    (empty when the bridge does not exist yet)."""
    return _ovs.bridge_ports()


def attach_container_ends(
    lab_id: str, node: str, pid: int, ends: list[LinkEnd], runtime_names: list[str], *, mtu: int | None = None,
    carrier: bool = True, macs: dict[str, str] | None = None,
) -> None:
    """Wire a running container's link ends: per end a veth pair, the inside end moved into
    the netns of ``pid`` and renamed ``runtime_names[i]``, MTU set (``mtu``, default the
    settings' ``link_mtu``), TX checksum offload off on both ends, up; the host end
    (``end.port_name``) marked with the ifalias and added to the bridge with ``end.vlan``
    and our external_ids, all ports in ONE ovs-vsctl transaction (the bridge is ensured in
    it too).

    Idempotent: ends already wired right are left alone (a re-wire that finds everything
    right writes nothing); an end whose host veth is gone or no longer paired with the
    runtime interface (the container restarted: new netns) is recreated, its OVS row
    replaced. A failure halfway removes the veths this call made and raises
    ``NetworkError``; so does an interface of that runtime name already in the container
    that is not our veth, a ``pid`` in the host's own netns, or a host port of another lab.

    ``carrier=False``: the host ends stay down (a node made ready before its links are
    switched to it: a cold move). ``macs``: runtime name -> the address its new inside end
    takes (a moved node keeps the ones its peers know)."""
    _veth.attach_container_ends(lab_id, node, pid, ends, runtime_names, mtu=mtu, carrier=carrier, macs=macs)


def inside_macs(pid: int, runtime_names: list[str] | None = None) -> dict[str, str]:
    """A running container's interface addresses (runtime name -> MAC; all without
    ``runtime_names``), read in its namespace."""
    return _veth.inside_macs(pid, runtime_names)


def attach_host_ends(lab_id: str, ends: list[LinkEnd], *, mtu: int | None = None) -> None:
    """containerlab's ``host:IF`` ends: per end a veth pair in the host's namespace, IF
    (``end.interface``) and ``end.port_name``, the latter an OVS access port with
    ``end.vlan``; both marked with our ifalias (node ``host``), TX checksum offload off, up.
    Idempotent (a pair already right is kept, a half-made one is made again). A device named
    IF that is not this lab's veth raises ``NetworkError`` and is left alone."""
    _host_ends.attach_host_ends(lab_id, ends, mtu=mtu)


def ensure_vm_ports(lab_id: str, node: str, ends: list[LinkEnd]) -> None:
    """After a VM started: make sure its taps (``end.port_name``) are on the bridge with the
    right tag (access port) and our external_ids, in one read and at most one transaction.
    libvirt sets the tag itself and keeps its own ids (iface-id, attached-mac, vm-id) on the
    Interface row; ours go on the Port row, merged key by key, so nothing libvirt put there
    is lost. A tap on the bridge that ovs-vswitchd does not read (not promiscuous: made again
    under a row it kept) is unplugged and plugged in again, in two transactions.
    Raises ``NetworkError`` when a tap does not exist (the VM is not running)."""
    _vm_interfaces.ensure_vm_ports(lab_id, node, ends)


def unplug_dead_taps(lab_id: str, node: str, port_names: list[str]) -> list[str]:
    """Before a VM starts: remove the OVS rows of its taps (``port_names``) whose device is
    gone, as a libvirtd that died while starting the VM leaves them (rows of another lab stay).
    libvirt plugs a tap with ``del-port`` + ``add-port`` in ONE transaction, which
    ovs-vswitchd does not take for a change: it would keep reading the gone device, and the
    VM's links would carry nothing. Returns the ports whose rows were removed."""
    return _vm_interfaces.unplug_dead_taps(lab_id, node, port_names)


def vm_interface_xml(end: LinkEnd | None, nic_model: str, *, mac: str | None = None) -> str:
    """libvirt ``<interface>`` XML for one VM NIC on the bridge: ``type='bridge'`` on the
    settings' bridge, ``<virtualport type='openvswitch'>`` with a stable interfaceid,
    ``<vlan><tag id=.../></vlan>``, ``<target dev=end.port_name/>``, the model, for virtio the
    checksum-offload-off driver options, and ``<mtu>`` when ``link_mtu`` is not 1500.

    ``end=None``: a placeholder NIC with no link (it keeps later NICs in place):
    ``type='ethernet'`` -- a tap libvirt creates and attaches to nothing (not on any bridge,
    so never an untagged trunk port on OVS) -- with ``<link state='down'/>``."""
    return _vm_interfaces.vm_interface_xml(end, nic_model, mac=mac)


def allocate_vlans(lab_id: str, link_ids: list[str], recovered: dict[str, int] | None = None) -> dict[str, int]:
    """Tags for the lab's links under the host-wide VLAN lock, saved in the lab's host-local
    reservation record before returning. Per link, the first free tag of: its ``recovered``
    tag, its tag in the lab's own record (so a redeploy gets the same tags even with
    ``recovered`` empty), its tag before recovery dropped it, the tag a port of the lab
    still carries for it; else the lowest free tag of the settings' range. Free = not
    reserved by another lab's record, not on a bridge port that is not this lab's, not on
    this lab's port of another link. A ``recovered`` tag another lab took in the meantime is
    replaced, never shared. Links of the old record not in ``link_ids`` lose their
    reservation. Raises ``NetworkError`` when the range is exhausted."""
    return _vlans.allocate_vlans(lab_id, link_ids, recovered)


def recover_allocation(
    lab_id: str, previous: Iterable[LinkRecord], node_exists: Callable[[str], bool]
) -> dict[str, int]:
    """Stale-network recovery: check each previous link (from the state artifact, or from
    ``reserved_links(lab_id)`` when there is none) against the bridge, the other labs'
    records and ``node_exists(node)`` (asked once per node), keep what is valid and return
    link_id -> vlan to pass to ``allocate_vlans``.

    Dropped as stale: a link whose port is present with another lab's marker, or with the
    wrong tag, or whose node is gone; a link with no port left and none of its nodes left;
    a link whose tag is reserved by another lab, held by a port that is not ours or by our
    port of another link, outside the range, or already kept for another link. A link
    simply never wired (ports absent, a node still there) is kept: a half-wired lab comes
    back with the same tags.

    Side effects, under the VLAN lock: removes our own stale ports (OVS row and host veth)
    -- those of dropped links and those whose node is gone; rewrites the lab's record to
    reserve exactly the kept tags (dropped tags become hints allocation prefers when free;
    a tag still held by a port that could not be removed stays blocked)."""
    return _recovery.recover_allocation(lab_id, previous, node_exists)


def reserved_links(lab_id: str) -> list[LinkRecord]:
    """The lab's host-local reservation as ``LinkRecord``s (endpoints unknown: ``[]``), for
    ``recover_allocation`` when the flow has no state artifact."""
    return _vlans.reserved_links(lab_id)


def release_lab(lab_id: str) -> CleanupReport:
    """Remove the lab's OVS ports (marked with the lab, or recorded by it and unmarked) on
    any bridge, its host veths (ifalias marker, or recorded name), and its VLAN record.
    Another lab's ports are never touched; one failure does not stop the rest (report).
    Idempotent. Report keys: ``ovs-ports``, ``veths``, ``vlan-records``."""
    return _cleanup.release_lab(lab_id)


def remove_ports(port_names: list[str], *, lab_id: str | None = None) -> None:
    """Remove named ports from the bridge (one transaction, which returns once the database
    has it, without waiting for ovs-vswitchd to apply it) and delete their host veths
    (a device that is not a veth, e.g. a VM tap, is left to libvirt). With ``lab_id``,
    ports or veths marked for another lab are skipped. Missing ones are fine."""
    _cleanup.remove_ports(port_names, lab_id=lab_id)


def release_links_not_in(lab_id: str, wanted_links: Iterable[str]) -> list[str]:
    """A converging deploy's clean-up of links the topology no longer has: the lab's OVS
    ports of other links (marked, or recorded by the lab) and their host veths are removed,
    and those links leave the lab's VLAN record (their tags are free again). A VM's tap
    leaves the bridge; its NIC stays in the domain. Returns the ports removed."""
    return _cleanup.release_links_not_in(lab_id, wanted_links)


def network_labs() -> set[str]:
    """Lab ids that own ports (any bridge), veths or VLAN reservations on this host (for
    orphan cleanup)."""
    return _cleanup.network_labs()


def network_inventory() -> dict[str, dict[str, list[str]]]:
    """lab id -> {"ovs-ports" | "veths" | "vlan-records": [names]}: what each lab owns here
    (for a dry-run of orphan cleanup)."""
    return _cleanup.network_inventory()
