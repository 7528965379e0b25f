"""libvirt ``<interface>`` XML for VM NICs, and the OVS side of the taps libvirt makes."""

from __future__ import annotations

import logging
import uuid
import xml.etree.ElementTree as ET

from lab.errors import NetworkError
from lab.settings import get_settings
from providers.base import LinkEnd
from providers.network import ovs, vlans
from providers.network.markers import port_ids
from providers.network.netlink import IPRoute, get_link, netlink_step
from providers.network.veth import check_ends

log = logging.getLogger(__name__)

_IFACE_ID_NS = uuid.UUID("5b0d61f2-3c1e-4f7a-9d59-2f1f4d0c8a11")  # namespace of our interfaceid uuids


def interface_id(port_name: str) -> str:
    """A stable OVS iface-id for a tap (same port name, same id across redefines)."""
    return str(uuid.uuid5(_IFACE_ID_NS, port_name))


def _driver_and_model(iface: ET.Element, nic_model: str) -> None:
    ET.SubElement(iface, "model", type=nic_model)
    if nic_model == "virtio":
        # The userspace datapath forwards partial checksums unchanged: no offload (HOST-FACTS).
        driver = ET.SubElement(iface, "driver", name="qemu")
        ET.SubElement(driver, "host", csum="off")
        ET.SubElement(driver, "guest", csum="off")


def vm_interface_xml(end: LinkEnd | None, nic_model: str, *, mac: str | None = None) -> str:
    """See ``providers.network.vm_interface_xml``."""
    if not nic_model or any(c in nic_model for c in "<>&'\" "):
        raise NetworkError(f"NIC model {nic_model!r} is not valid")
    if end is None:
        # A port with no link (one of the device's own ports, or a gap before a linked one):
        # a tap libvirt makes and attaches to NOTHING (no bridge, no OVS port), link down in
        # the guest: isolated by construction, never an untagged trunk port on the userspace
        # datapath. libvirt names it (vnetN) and a live migration makes it afresh on the
        # destination (tests/integration/libvirt/test_migration.py migrates three of them).
        iface = ET.Element("interface", type="ethernet")
        if mac:
            ET.SubElement(iface, "mac", address=mac)
        _driver_and_model(iface, nic_model)
        ET.SubElement(iface, "link", state="down")
        return ET.tostring(iface, encoding="unicode")
    check_ends("VM NIC", [end])
    settings = get_settings()
    iface = ET.Element("interface", type="bridge")
    if mac:
        ET.SubElement(iface, "mac", address=mac)
    ET.SubElement(iface, "source", bridge=settings.ovs_bridge)
    virtualport = ET.SubElement(iface, "virtualport", type="openvswitch")
    ET.SubElement(virtualport, "parameters", interfaceid=interface_id(end.port_name))
    vlan = ET.SubElement(iface, "vlan")
    ET.SubElement(vlan, "tag", id=str(int(end.vlan)))
    ET.SubElement(iface, "target", dev=end.port_name)
    _driver_and_model(iface, nic_model)
    if settings.link_mtu != 1500:
        ET.SubElement(iface, "mtu", size=str(settings.link_mtu))
    return ET.tostring(iface, encoding="unicode")


def ensure_vm_ports(lab_id: str, node: str, ends: list[LinkEnd]) -> None:
    """See ``providers.network.ensure_vm_ports``."""
    what = f"lab {lab_id} node {node}"
    check_ends(what, ends)
    if not ends:
        return
    vlans.note_ports(lab_id, node, {end.link_id: [end.port_name] for end in ends})
    with netlink_step(what, "looking for the taps"), IPRoute() as host:
        taps = {end.port_name: get_link(host, end.port_name) for end in ends}
    missing = [name for name, tap in taps.items() if tap is None]
    if missing:
        raise NetworkError(f"{what}: tap(s) {', '.join(missing)} do not exist: is the VM running, "
                           f"with <target dev=.../> from vm_interface_xml?")
    state = ovs.read_state()
    # A datapath reading a device puts it in promiscuous mode. A tap on the bridge that is not
    # in it was made again under a row ovs-vswitchd kept (see unplug_dead_taps): it carries
    # nothing until its row goes in a transaction of its own and comes back.
    unread = [name for name, tap in taps.items() if name in state.bridge and tap is not None and not tap.promiscuous]
    if unread:
        log.warning("%s: tap(s) %s on the bridge but not read by ovs-vswitchd: plugged in again", what, ", ".join(unread))
        ovs.transaction(ovs.del_port_commands(unread), what=f"{what}: unplugging taps {', '.join(unread)}")
        state = ovs.read_state()
    commands: list[ovs.Command] = []
    for end in ends:
        ids = port_ids(lab_id, node, end.link_id)
        port = state.everywhere.get(end.port_name)
        if port is not None and port.lab_id not in (None, lab_id):
            raise NetworkError(f"{what}: OVS port {end.port_name} carries lab {port.lab_id}'s marker")
        right = (
            end.port_name in state.bridge and port is not None and port.tag == end.vlan
            and all(port.external_ids.get(k) == v for k, v in ids.items())
        )
        if not right:
            commands += ovs.port_commands(end.port_name, end.vlan, ids)
    if commands:
        ovs.transaction(ovs.bridge_commands() + commands,
                        what=f"{what}: setting taps {', '.join(e.port_name for e in ends)}")


def unplug_dead_taps(lab_id: str, node: str, port_names: list[str]) -> list[str]:
    """See ``providers.network.unplug_dead_taps``."""
    what = f"lab {lab_id} node {node}"
    state = ovs.read_state()
    rows = [name for name in port_names if name in state.everywhere and state.everywhere[name].lab_id in (None, lab_id)]
    if not rows:
        return []
    with netlink_step(what, "looking for the taps"), IPRoute() as host:
        dead = [name for name in rows if get_link(host, name) is None]
    if dead:
        log.info("%s: removing the OVS rows of taps that are gone: %s", what, ", ".join(dead))
        ovs.transaction(ovs.del_port_commands(dead), what=f"{what}: removing the rows of gone taps {', '.join(dead)}")
    return dead
