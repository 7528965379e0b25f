"""libvirt <interface> XML, OVS output parsing and command building, markers: no daemon."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from lab import names
from lab.errors import NetworkError
from lab.settings import get_settings
from providers.base import LinkEnd
from providers.network import vm_interface_xml
from providers.network.markers import parse_alias, veth_alias
from providers.network.ovs import parse_bridge_ports, parse_port_table, port_commands
from providers.network.vm_interfaces import interface_id

END = LinkEnd("r1:eth1--v1:Gi0/1", "Gi0/1", 1, 123, "arv0123456789ab")


def test_linked_nic_is_a_tagged_ovs_port_with_our_target():
    iface = ET.fromstring(vm_interface_xml(END, "e1000", mac="52:54:00:00:00:01"))
    assert iface.get("type") == "bridge"
    assert iface.find("source").get("bridge") == get_settings().ovs_bridge
    assert iface.find("virtualport").get("type") == "openvswitch"
    assert iface.find("virtualport/parameters").get("interfaceid") == interface_id(END.port_name)
    assert iface.find("vlan/tag").get("id") == "123"
    assert iface.find("vlan").get("trunk") is None
    assert iface.find("target").get("dev") == END.port_name
    assert iface.find("model").get("type") == "e1000"
    assert iface.find("mac").get("address") == "52:54:00:00:00:01"
    assert iface.find("driver") is None and iface.find("mtu") is None and iface.find("link") is None


def test_virtio_turns_checksum_offload_off():
    iface = ET.fromstring(vm_interface_xml(END, "virtio"))
    assert iface.find("driver").get("name") == "qemu"
    assert iface.find("driver/host").get("csum") == "off"
    assert iface.find("driver/guest").get("csum") == "off"
    assert iface.find("mac") is None


def test_placeholder_is_on_no_bridge_and_down():
    iface = ET.fromstring(vm_interface_xml(None, "virtio", mac="52:54:00:00:00:02"))
    assert iface.get("type") == "ethernet"
    assert iface.find("source") is None and iface.find("vlan") is None and iface.find("virtualport") is None
    assert iface.find("link").get("state") == "down"
    assert iface.find("model").get("type") == "virtio"
    assert iface.find("driver/host").get("csum") == "off"


def test_interface_id_is_stable_per_port():
    assert interface_id("arv1") == interface_id("arv1") != interface_id("arv2")


def test_mtu_from_settings(monkeypatch):
    monkeypatch.setenv("ARCHETYPE_LINK_MTU", "9000")
    get_settings.cache_clear()
    try:
        assert ET.fromstring(vm_interface_xml(END, "e1000")).find("mtu").get("size") == "9000"
    finally:
        monkeypatch.delenv("ARCHETYPE_LINK_MTU")
        get_settings.cache_clear()


@pytest.mark.parametrize("port_name", ["", "x" * 16, "a b", "a/b"])
def test_bad_port_names_are_refused(port_name):
    with pytest.raises(NetworkError, match="not a valid interface name"):
        vm_interface_xml(LinkEnd("l", "eth1", 1, 100, port_name), "e1000")


def test_bad_model_and_vlan_are_refused():
    with pytest.raises(NetworkError):
        vm_interface_xml(END, "e1000' foo='bar")
    with pytest.raises(NetworkError, match="VLAN"):
        vm_interface_xml(LinkEnd("l", "eth1", 1, 4095, "arv1"), "e1000")


def test_parse_port_table_handles_ovsdb_json_forms():
    text = json.dumps({
        "headings": ["_uuid", "name", "tag", "external_ids"],
        "data": [
            [["uuid", "u1"], "p1", 101, ["map", [[names.OVS_LAB_KEY, "lab-1"], [names.OVS_LINK_KEY, "a:e1--b:e1"]]]],
            [["uuid", "u2"], "p2", ["set", []], ["map", []]],
        ],
    })
    rows = parse_port_table(text)
    uuid, p1 = rows["p1"]
    assert uuid == "u1" and p1.tag == 101 and p1.lab_id == "lab-1" and p1.link_id == "a:e1--b:e1"
    assert rows["p2"][1].tag is None and rows["p2"][1].external_ids == {}


def test_parse_bridge_ports():
    one = json.dumps({"headings": ["ports"], "data": [[["uuid", "u1"]]]})
    many = json.dumps({"headings": ["ports"], "data": [[["set", [["uuid", "u1"], ["uuid", "u2"]]]]]})
    none = json.dumps({"headings": ["ports"], "data": []})
    assert parse_bridge_ports(one) == {"u1"} and parse_bridge_ports(many) == {"u1", "u2"}
    assert parse_bridge_ports(none) is None


def test_port_commands_quote_link_ids_and_merge_ids():
    (add, set_) = port_commands("arv1", 101, {names.OVS_LINK_KEY: 'r1:eth1--r2:Gi0/1 "x"'})
    assert add == ["--may-exist", "add-port", get_settings().ovs_bridge, "arv1"]
    assert set_[:5] == ["set", "Port", "arv1", "tag=101", "vlan_mode=access"]
    assert set_[5] == 'external_ids:"archetype-link"="r1:eth1--r2:Gi0/1 \\"x\\""'


def test_alias_markers_round_trip_and_refuse_strangers():
    alias = veth_alias("lab-1", "r1", "r1:eth1--r2:eth1")
    assert parse_alias(alias) == ("lab-1", "r1", "r1:eth1--r2:eth1")
    assert parse_alias(None) is None and parse_alias("docker veth") is None
    assert parse_alias("archetype lab=Bad_Id node=x link=y") is None
