"""VM NICs through real libvirt/QEMU: a tagged tap on the bridge, our ids merged with
libvirt's, and a placeholder NIC that is on no bridge at all. (A diskless guest: it sits
in its firmware, which is enough for the host side.)"""

from __future__ import annotations

import contextlib
import json
import xml.etree.ElementTree as ET

import pytest

from lab import names
from lab.settings import get_settings
from providers import network
from providers.base import LinkEnd
from providers.network.netlink import IPRoute
from providers.network.ovs import read_state
from providers.network.vm_interfaces import interface_id

pytestmark = [pytest.mark.ovs, pytest.mark.libvirt]


def _domain_xml(name: str, interfaces: list[str]) -> str:
    return f"""<domain type='{get_settings().domain_type}'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
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
