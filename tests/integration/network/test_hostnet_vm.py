"""VM NICs through real libvirt/QEMU: a tagged tap on the bridge, our ids merged with
libvirt's, and a placeholder NIC that is on no bridge at all. (A diskless guest: it sits
in its firmware, which is enough for the host side.)"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from lab import names
from lab.settings import get_settings
from providers import network
from providers.base import LinkEnd
from providers.network.netlink import IPRoute, socket_in_netns
from providers.network.ovs import read_state
from providers.network.vm_interfaces import interface_id

pytestmark = [pytest.mark.ovs, pytest.mark.libvirt]


def _domain_xml(name: str, interfaces: list[str], boot: str = "hd") -> str:
    return f"""<domain type='{get_settings().domain_type}'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='{boot}'/></os>
  <devices>{''.join(interfaces)}</devices>
</domain>"""


def _interface_ids(ovs, port: str) -> dict[str, str]:
    out = json.loads(ovs.vsctl("--format=json", "--columns=external_ids", "list", "Interface", port))
    return dict(out["data"][0][0][1])


def test_vm_tap_is_tagged_and_marked_and_the_placeholder_is_on_no_bridge(ovs, libvirt_conn, lab_ids):
    import libvirt

    lab = lab_ids()
    link = names.link_id("vm1:eth1", "c1:eth1")
    tag = network.allocate_vlans(lab, [link])[link]
    end = LinkEnd(link, "eth1", 1, tag, names.host_port_name(lab, "vm1", "eth1"))
    xml = _domain_xml(names.domain_name(lab, "vm1"), [
        network.vm_interface_xml(end, "e1000", mac="52:54:00:7e:00:01"),
        network.vm_interface_xml(None, "virtio", mac="52:54:00:7e:00:02"),
    ])
    dom = libvirt_conn.createXML(xml, 0)  # transient: gone once destroyed
    try:
        port = network.bridge_ports()[end.port_name]
        assert port.tag == tag  # libvirt tagged it
        assert _interface_ids(ovs, end.port_name)["iface-id"] == interface_id(end.port_name)

        network.ensure_vm_ports(lab, "vm1", [end])
        port = network.bridge_ports()[end.port_name]
        assert port.lab_id == lab and port.link_id == link and port.node == "vm1"
        libvirt_ids = _interface_ids(ovs, end.port_name)  # libvirt's ids are still there
        assert libvirt_ids["attached-mac"] == "52:54:00:7e:00:01" and "vm-id" in libvirt_ids
        assert ovs.vsctl("get", "Port", end.port_name, "vlan_mode").strip() == "access"

        # The placeholder: a tap libvirt made, attached to nothing.
        live = ET.fromstring(dom.XMLDesc(0))
        placeholder = [i for i in live.iter("interface") if i.get("type") == "ethernet"]
        assert len(placeholder) == 1
        tap = placeholder[0].find("target").get("dev")
        assert tap not in ovs.vsctl("list-ports", get_settings().ovs_bridge).split()
        assert tap not in read_state().everywhere  # on no bridge at all
        assert placeholder[0].find("link").get("state") == "down"
        with IPRoute() as ipr:
            (msg,) = ipr.link("get", ifname=tap)
            assert msg.get_attr("IFLA_MASTER") is None

        # Idempotent: a second call writes nothing and keeps everything.
        network.ensure_vm_ports(lab, "vm1", [end])
        assert network.bridge_ports()[end.port_name] == port
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
    assert end.port_name not in network.bridge_ports()  # libvirt removed its port


def test_ensure_vm_ports_names_a_missing_tap(ovs, lab_ids):
    from lab.errors import NetworkError

    lab = lab_ids()
    end = LinkEnd("vm1:eth1--x:eth1", "eth1", 1, 3000, names.host_port_name(lab, "vm1", "eth1"))
    with pytest.raises(NetworkError, match=end.port_name):
        network.ensure_vm_ports(lab, "vm1", [end])


# A tap made again under a row ovs-vswitchd kept -------------------------------------------
# libvirtd killed while it starts a VM leaves the tap's OVS row behind (it made the tap and
# plugged it; the tap went with it). The next start plugs the new tap with del-port +
# add-port in ONE transaction, which ovs-vswitchd does not take for a change: it goes on
# reading the gone device, and the VM's link carries nothing (the libvirtd fault test saw it).

PXE_MAC = "52:54:00:7e:00:11"


def _leave_a_dead_tap_row(ovs, port: str, tag: int) -> None:
    """What a libvirtd that died while starting a VM leaves: the row of a tap that is gone."""
    subprocess.run(["ip", "tuntap", "add", "mode", "tap", "name", port], check=True)
    ovs.vsctl("add-port", get_settings().ovs_bridge, port, f"tag={tag}")
    subprocess.run(["ip", "tuntap", "del", "mode", "tap", "name", port], check=True)
    assert port in read_state().bridge


def _frames_from(endpoint, ifname: str, mac: str, timeout: float) -> bool:
    """The endpoint receives on ``ifname`` a frame sent by ``mac`` within ``timeout``."""
    sender = bytes.fromhex(mac.replace(":", ""))
    with socket_in_netns(endpoint.pid, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)) as sock:
        sock.bind((ifname, 0))
        sock.settimeout(0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if sock.recv(2048)[6:12] == sender:
                    return True
            except TimeoutError:
                continue
    return False


@pytest.fixture
def pxe_vm_link(ovs, libvirt_conn, lab_ids, endpoints):
    """A VM NIC end and an endpoint's end on one VLAN, the VM's tap row left dead; yields
    (lab, VM end, endpoint, start) where ``start()`` boots a guest that asks DHCP over the NIC
    (iPXE), as libvirt plugs it."""
    import libvirt

    lab = lab_ids()
    link = names.link_id("vm1:eth1", "c1:eth1")
    tag = network.allocate_vlans(lab, [link])[link]
    vm_end = LinkEnd(link, "eth1", 1, tag, names.host_port_name(lab, "vm1", "eth1"))
    peer = endpoints("c1")
    network.attach_container_ends(lab, "c1", peer.pid, [LinkEnd(link, "eth1", 1, tag, names.host_port_name(lab, "c1", "eth1"))], ["eth1"])
    _leave_a_dead_tap_row(ovs, vm_end.port_name, tag)
    started = []

    def start() -> None:
        xml = _domain_xml(names.domain_name(lab, "vm1"), [network.vm_interface_xml(vm_end, "e1000", mac=PXE_MAC)], boot="network")
        started.append(libvirt_conn.createXML(xml, 0))  # transient: gone once destroyed

    try:
        yield lab, vm_end, peer, start
    finally:
        for dom in started:
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()


def test_a_vm_started_after_its_dead_tap_rows_are_removed_reaches_its_link(pxe_vm_link):
    lab, vm_end, peer, start = pxe_vm_link
    assert network.unplug_dead_taps(lab, "vm1", [vm_end.port_name]) == [vm_end.port_name]
    assert vm_end.port_name not in read_state().everywhere
    start()
    network.ensure_vm_ports(lab, "vm1", [vm_end])
    assert _frames_from(peer, "eth1", PXE_MAC, 60), "the VM's DHCP requests never reached the other end of its link"


def test_a_tap_plugged_over_a_kept_row_is_plugged_again_when_the_vm_is_wired(pxe_vm_link):
    lab, vm_end, peer, start = pxe_vm_link
    start()  # libvirt plugs the new tap over the dead row
    network.ensure_vm_ports(lab, "vm1", [vm_end])
    assert _frames_from(peer, "eth1", PXE_MAC, 60), "the VM's DHCP requests never reached the other end of its link"
    assert network.bridge_ports()[vm_end.port_name].lab_id == lab


def test_unplug_dead_taps_keeps_live_taps_and_other_labs_rows(ovs, lab_ids):
    lab, other = lab_ids(), lab_ids()
    live, foreign = names.host_port_name(lab, "vm1", "eth1"), names.host_port_name(lab, "vm1", "eth2")
    subprocess.run(["ip", "tuntap", "add", "mode", "tap", "name", live], check=True)
    try:
        ovs.vsctl("add-port", get_settings().ovs_bridge, live, "tag=3001")
        ovs.vsctl("add-port", get_settings().ovs_bridge, foreign, "tag=3002", "--", "set", "Port", foreign,
                  f"external_ids:{names.OVS_LAB_KEY}={other}")
        assert network.unplug_dead_taps(lab, "vm1", [live, foreign]) == []
        assert {live, foreign} <= set(read_state().bridge)
    finally:
        ovs.vsctl("--if-exists", "del-port", live, "--", "--if-exists", "del-port", foreign)
        subprocess.run(["ip", "tuntap", "del", "mode", "tap", "name", live], check=True)
