"""Host networking: one OVS bridge, a VLAN tag per link, veths for containers, taps for VMs.

This facade is the contract the providers and flows code against. Implementation lives in
the modules beside it (ovs.py, veth.py, vlans.py, recovery.py, libvirt_xml.py).

Markers: every OVS port we add carries external_ids ``archetype-lab``, ``archetype-link``
and ``archetype-node`` (names in ``lab.names``); every host-side veth carries the ifalias
``archetype lab=<lab> node=<node> link=<link>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from lab.state import LinkRecord
    from providers.base import CleanupReport, LinkEnd


@dataclass(frozen=True)
class PortInfo:
    name: str
    tag: int | None
    external_ids: dict[str, str] = field(default_factory=dict)

    @property
    def lab_id(self) -> str | None:
        from lab.names import OVS_LAB_KEY

        return self.external_ids.get(OVS_LAB_KEY)


def ensure_bridge() -> None:
    """Create the bridge from settings (datapath type too) if it is missing. Idempotent."""
    raise NotImplementedError


def bridge_ports() -> dict[str, PortInfo]:
    """Every port of the bridge with its tag and external_ids, read in one call."""
    raise NotImplementedError


def attach_container_ends(lab_id: str, node: str, pid: int, ends: list[LinkEnd], runtime_names: list[str]) -> None:
    """Wire a running container's link ends: per end a veth pair, the inside end moved into
    the netns of ``pid`` and renamed ``runtime_names[i]``, MTU set, TX checksum offload off,
    up; the host end (``end.port_name``) added to the bridge with ``end.vlan`` and our
    external_ids, all ports in ONE ovs-vsctl transaction. Idempotent: ends already wired
    right are left alone; a failure halfway removes what this call made."""
    raise NotImplementedError


def ensure_vm_ports(lab_id: str, node: str, ends: list[LinkEnd]) -> None:
    """After a VM started: make sure its taps (``end.port_name``) are on the bridge with the
    right tag and our external_ids (libvirt adds them; this fixes tags / ids in one call)."""
    raise NotImplementedError


def vm_interface_xml(end: LinkEnd | None, nic_model: str, *, mac: str | None = None) -> str:
    """libvirt ``<interface>`` XML for one VM NIC on the bridge: ``virtualport type='openvswitch'``,
    ``<vlan><tag id=.../></vlan>``, ``<target dev=end.port_name/>``, the model, and for virtio
    the checksum-offload-off driver options. ``end=None``: a NIC with no link (placeholder that
    keeps later NICs in place): link state down, isolated."""
    raise NotImplementedError


def allocate_vlans(lab_id: str, link_ids: list[str], recovered: dict[str, int] | None = None) -> dict[str, int]:
    """Tags for the lab's links under the host-wide VLAN lock: ``recovered`` tags are kept,
    the rest come from the settings' range, skipping tags in use on the bridge or reserved by
    another lab's record. Saves the lab's host-local reservation record before returning.
    Same lab redeployed: same tags."""
    raise NotImplementedError


def recover_allocation(
    lab_id: str, previous: Iterable[LinkRecord], node_exists: Callable[[str], bool]
) -> dict[str, int]:
    """Stale-network recovery: keep each previous link whose tag is not taken by another
    lab and whose ports that exist carry the right tag and whose nodes still exist (or are
    about to be recreated...), drop the rest. Returns link_id -> vlan to reuse."""
    raise NotImplementedError


def release_lab(lab_id: str) -> CleanupReport:
    """Remove the lab's OVS ports and host veths (by marker) and its VLAN reservation."""
    raise NotImplementedError


def remove_ports(port_names: list[str]) -> None:
    """Remove named ports from the bridge (one transaction) and delete their host veths."""
    raise NotImplementedError


def network_labs() -> set[str]:
    """Lab ids that own ports, veths or VLAN reservations on this host (for orphan cleanup)."""
    raise NotImplementedError
