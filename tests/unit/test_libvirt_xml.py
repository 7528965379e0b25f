"""Domain XML from the vendor entry, checked as text and by defining it on libvirt's
``test:///default`` driver (no daemon needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from lab import names
from lab.errors import ImageNotFoundError, ProviderError
from lab.settings import get_settings
from providers.base import LinkEnd
from providers.libvirt.disks import check_images
from providers.libvirt.domain_xml import (
    NodeMarker,
    domain_xml,
    metadata_xml,
    nic_plan,
    parse_marker,
    plan_domain,
)
from topology import Node
from vendors import get_vendor

libvirt.registerErrorHandler(lambda *_: None, None)


def fake_interface_xml(end: LinkEnd | None, nic_model: str) -> str:
    """What providers.network.vm_interface_xml gives, in shape."""
    if end is None:
        return f"<interface type='ethernet'><model type='{nic_model}'/><link state='down'/></interface>"
    return (
        f"<interface type='bridge'><source bridge='arch-ovs'/><virtualport type='openvswitch'/>"
        f"<vlan><tag id='{end.vlan}'/></vlan><target dev='{end.port_name}'/><model type='{nic_model}'/></interface>"
    )


def end(port: int, vlan: int) -> LinkEnd:
    return LinkEnd(link_id=f"l{port}", interface=f"GigabitEthernet0/{port}", port=port, vlan=vlan, port_name=f"art{port:012d}")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("ARCHETYPE_IMAGE_DIR", str(tmp_path / "images"))
    monkeypatch.setenv("ARCHETYPE_DOMAIN_TYPE", "qemu")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def conn() -> Iterator[libvirt.virConnect]:
    connection = libvirt.open("test:///default")
    try:
        yield connection
    finally:
        connection.close()


def mini(name: str = "r1", **fields: object) -> Node:
    return Node.of(name=name, kind="mini-ios", image="mini-ios/vmlinuz", **fields)


def test_mini_ios_domain(settings) -> None:
    plan = plan_domain("lab-a", mini(memory_mb=300), [end(1, 101), end(3, 103)], interface_xml=fake_interface_xml)
    root = ET.fromstring(domain_xml(plan))

    assert root.get("type") == "qemu"
    assert root.findtext("name") == "arch-lab-a-r1" == names.domain_name("lab-a", "r1")
    assert root.findtext("memory") == "300"  # the node overrides the vendor's 256
    assert root.find("memory").get("unit") == "MiB"
    assert root.findtext("vcpu") == "1"
    assert root.find("os/type").get("machine") == "pc"
    assert root.findtext("os/kernel") == str(settings.image_dir / "mini-ios/vmlinuz")
    assert root.findtext("os/initrd") == str(settings.image_dir / "mini-ios/initrd.img")
    assert root.findtext("os/cmdline") == "console=ttyS0 quiet no_timer_check"

    disks = root.findall("devices/disk")
    assert len(disks) == 1  # kernel boot, no system disk: only the data volume
    assert disks[0].find("target").get("dev") == "vdb"
    assert disks[0].find("source").get("file") == str(names.data_dir("lab-a") / "r1.qcow2")
    assert disks[0].find("driver").get("cache") == "none"

    serial = root.find("devices/serial")
    assert serial.get("type") == "pty"
    assert serial.find("log").get("file") == str(names.serial_log_path("lab-a", "r1"))
    # appended to: a migration goes on with it (the provider empties it before a boot)
    assert serial.find("log").get("append") == "on"
    # a named CPU model: the VM can migrate live (QEMU's default for TCG is not named)
    assert root.find("cpu").get("mode") == "custom"
    assert root.findtext("cpu/model") == "qemu64"
    assert root.find("devices/console").get("type") == "pty"

    nics = root.findall("devices/interface")
    # NIC 0 = management (user), then data ports 1..4 in port order (the kind's 4 ports);
    # ports 2 and 4 have no link
    assert [n.get("type") for n in nics] == ["user", "bridge", "ethernet", "bridge", "ethernet"]
    assert [n.find("model").get("type") for n in nics] == ["e1000"] * 5
    assert nics[1].find("vlan/tag").get("id") == "101"
    assert nics[2].find("vlan") is None and nics[2].find("link").get("state") == "down"
    assert nics[3].find("vlan/tag").get("id") == "103"
    assert get_vendor("mini-ios").interfaces.nic_index(3) == 3


def test_metadata_carries_identity(settings) -> None:
    plan = plan_domain("my-lab-1", mini("PC-1"), [], interface_xml=fake_interface_xml)
    meta = ET.fromstring(domain_xml(plan)).find("metadata")
    node = meta.find(f"{{{names.METADATA_NS}}}node")
    assert node is not None
    assert {c.tag: c.text for c in node} == {"lab_id": "my-lab-1", "node_name": "PC-1", "kind": "mini-ios"}
    assert parse_marker(metadata_xml(plan.marker)) == NodeMarker("my-lab-1", "PC-1", "mini-ios")
    assert parse_marker("<node><lab_id>x</lab_id></node>") is None
    assert parse_marker(None) is None
    assert parse_marker("not xml") is None


def test_disk_image_vendor_gets_an_overlay(settings) -> None:
    node = Node.of(name="v1", kind="cisco_iosv", image="cisco_iosv/vios.qcow2", cpus=2)
    plan = plan_domain("lab-b", node, [end(2, 200)], interface_xml=fake_interface_xml)
    root = ET.fromstring(domain_xml(plan))
    assert root.findtext("vcpu") == "2"
    assert root.find("os/kernel") is None and root.find("os/boot").get("dev") == "hd"
    (disk,) = root.findall("devices/disk")
    assert disk.find("target").get("dev") == "vda"
    assert disk.find("source").get("file") == str(names.disks_dir("lab-b") / "v1.qcow2")
    assert disk.find("driver").attrib["type"] == "qcow2" and disk.find("driver").get("cache") == "none"
    assert plan.disks[0].backing == settings.image_dir / "cisco_iosv/vios.qcow2"
    assert plan.required_files() == [settings.image_dir / "cisco_iosv/vios.qcow2"]
    assert len(root.findall("devices/interface")) == 5  # mgmt + IOSv's 4 ports (2 linked)


def test_missing_image_is_named(settings) -> None:
    plan = plan_domain("lab-c", mini(), [], interface_xml=fake_interface_xml)
    with pytest.raises(ImageNotFoundError, match=r"mini-ios/vmlinuz"):
        check_images(plan)
    (settings.image_dir / "mini-ios").mkdir(parents=True)
    (settings.image_dir / "mini-ios/vmlinuz").write_bytes(b"k")
    with pytest.raises(ImageNotFoundError, match=r"initrd\.img"):
        check_images(plan)
    (settings.image_dir / "mini-ios/initrd.img").write_bytes(b"i")
    check_images(plan)
    assert not names.disks_dir("lab-c").exists() and not names.data_dir("lab-c").exists()


def test_nic_plan_rejects_bad_ports() -> None:
    vendor = get_vendor("mini-ios")
    assert nic_plan(vendor, []) == [None] * 4  # its 4 ports, unlinked (tests/unit/test_vm_ports.py)
    assert nic_plan(vendor, [end(2, 5)]) == [None, end(2, 5), None, None]
    with pytest.raises(ProviderError):
        nic_plan(vendor, [end(1, 5), end(1, 6)])
    with pytest.raises(ProviderError):
        nic_plan(vendor, [end(vendor.interfaces.max_ports + 1, 5)])


def test_xml_defines_and_starts_on_the_test_driver(settings, conn: libvirt.virConnect) -> None:
    plan = plan_domain("unit-x", mini("n-1"), [end(1, 100), end(2, 101)], interface_xml=fake_interface_xml)
    dom = conn.defineXML(domain_xml(plan))
    try:
        dom.create()
        assert dom.isActive()
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, names.METADATA_NS, 0)
        assert parse_marker(text) == NodeMarker("unit-x", "n-1", "mini-ios")
        defined = ET.fromstring(dom.XMLDesc(0))
        assert len(defined.findall("devices/interface")) == 5  # mgmt + 4 ports
        # a redefine with the same UUID keeps the domain's identity
        uuid = dom.UUIDString()
        dom.destroy()
        again = conn.defineXML(domain_xml(plan, uuid=uuid))
        assert again.UUIDString() == uuid
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def test_with_the_real_network_interfaces(settings, conn: libvirt.virConnect) -> None:
    from providers import network

    ends = [
        LinkEnd(link_id="l2", interface="Gi0/2", port=2, vlan=123, port_name=names.host_port_name("unit-y", "r9", "Gi0/2")),
    ]
    plan = plan_domain("unit-y", mini("r9"), ends, interface_xml=network.vm_interface_xml)
    dom = conn.defineXML(domain_xml(plan))
    try:
        nics = ET.fromstring(dom.XMLDesc(0)).findall("devices/interface")
        # mgmt, unlinked port 1, port 2, unlinked ports 3 and 4
        assert [n.get("type") for n in nics] == ["user", "ethernet", "bridge", "ethernet", "ethernet"]
        assert nics[2].find("vlan/tag").get("id") == "123"
        assert nics[2].find("target").get("dev") == ends[0].port_name
        assert nics[1].find("link").get("state") == "down"
    finally:
        dom.undefine()


def test_a_uefi_kind_boots_with_uefi_firmware(settings) -> None:
    node = Node.of(name="n1", kind="cisco_n9kv", image="cisco_n9kv/nexus9300v.qcow2")
    root = ET.fromstring(domain_xml(plan_domain("lab-u", node, [], interface_xml=fake_interface_xml)))
    assert root.find("os").get("firmware") == "efi"
    assert root.find("os").get("firmware") is not None
    bios = ET.fromstring(domain_xml(plan_domain("lab-u", mini(), [], interface_xml=fake_interface_xml)))
    assert bios.find("os").get("firmware") is None
