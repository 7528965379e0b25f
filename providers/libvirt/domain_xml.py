"""Domain XML for a VM node, from its vendor entry: pure functions, no libvirt connection.

``plan_domain`` resolves everything a node's domain needs (paths, sizes, NIC order) into a
``DomainPlan``; ``domain_xml`` renders it. The identity marker is the ``<metadata>``
element in ``lab.names.METADATA_NS`` (DESIGN.md, Identity): discovery and cleanup trust
it, never the domain name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab import names
from lab.errors import ProviderError
from lab.settings import Settings, get_settings
from providers.base import LinkEnd
from topology import Node
from vendors.model import Firmware, VendorConfig

InterfaceXml = Callable[..., str]  # providers.network.vm_interface_xml(end | None, nic_model)

_TARGET_PREFIX = {"virtio": "vd", "ide": "hd", "sata": "sd", "scsi": "sd"}


@dataclass(frozen=True)
class NodeMarker:
    """What the metadata element says about a domain: whose node it is."""

    lab_id: str
    node_name: str
    kind: str
    mgmt_ipv4: str = ""  # its address on the lab's management network ("" = none)


@dataclass(frozen=True)
class DiskPlan:
    role: str  # "system" (overlay on the vendor image) or "data" (blank, survives restarts)
    path: Path
    target: str  # vda, vdb, hda...
    bus: str
    backing: Path | None = None  # system overlays: the vendor's base image
    size_mb: int | None = None  # data volumes: size of the blank disk


@dataclass(frozen=True)
class DomainPlan:
    name: str
    marker: NodeMarker
    domain_type: str
    memory_mb: int
    vcpus: int
    machine: str
    kernel: Path | None
    initrd: Path | None
    cmdline: str | None
    disks: tuple[DiskPlan, ...]
    interfaces: tuple[str, ...]  # <interface> XML, in NIC order
    serial_log: Path
    serial_ports: int = 1
    uefi: bool = False  # boot with UEFI firmware (libvirt picks OVMF from its descriptors)
    cpu_model: str = "qemu64"

    def required_files(self) -> list[Path]:
        """Files that must exist before anything is created (vendor images, kernel, initrd)."""
        wanted = [self.kernel, self.initrd, *(d.backing for d in self.disks)]
        return [p for p in wanted if p is not None]


def _target(bus: str, index: int) -> str:
    return _TARGET_PREFIX[bus] + "abcdefghijklmnopqrstuvwxyz"[index]


def _image(settings: Settings, relative: str) -> Path:
    return settings.image_dir / relative


def nic_plan(vendor: VendorConfig, ends: Sequence[LinkEnd]) -> list[LinkEnd | None]:
    """Data NICs in port order: the vendor's ``vm.data_ports`` always (a real IOSv has
    Gi0/1-0/4 whatever is linked, and a config may name them), more up to the highest linked
    port. ``None`` = a port with no link: a NIC on nothing, link down."""
    assert vendor.vm is not None
    by_port = {end.port: end for end in ends}
    if len(by_port) != len(ends):
        raise ProviderError(f"two link ends on one port: {sorted(e.port for e in ends)}")
    highest = max(by_port, default=0)
    if highest > vendor.interfaces.max_ports:
        raise ProviderError(f"port {highest} is beyond the {vendor.interfaces.max_ports} data ports of {vendor.kind}")
    return [by_port.get(port) for port in range(1, max(highest, vendor.vm.data_ports) + 1)]


def management_interface_xml(
    vendor: VendorConfig, interface_xml: InterfaceXml, bridge: str | None = None
) -> str | None:
    """The management NIC (NIC 0) when the vendor has one: on the lab's management bridge
    (``bridge``: the node has an address there), else user-mode networking, or an unlinked
    placeholder when the vendor asks for no management network."""
    assert vendor.vm is not None
    if not vendor.interfaces.management_nic:
        return None
    if vendor.vm.management_network == "lab" and bridge:
        iface = ET.Element("interface", type="bridge")
        ET.SubElement(iface, "source", bridge=bridge)
        ET.SubElement(iface, "model", type=vendor.vm.nic_model)
        return ET.tostring(iface, encoding="unicode")
    if vendor.vm.management_network in ("user", "lab"):
        iface = ET.Element("interface", type="user")
        ET.SubElement(iface, "model", type=vendor.vm.nic_model)
        return ET.tostring(iface, encoding="unicode")
    return interface_xml(None, vendor.vm.nic_model)


def plan_domain(
    lab_id: str,
    node: Node,
    ends: Sequence[LinkEnd],
    *,
    interface_xml: InterfaceXml,
    settings: Settings | None = None,
) -> DomainPlan:
    """Everything the node's domain needs, resolved (nothing is checked or created here)."""
    vendor = node.vendor
    settings = settings or get_settings()
    vm = vendor.vm
    if vm is None:
        raise ProviderError(f"node {node.name}: kind {vendor.kind} is not a VM")

    disks: list[DiskPlan] = []
    if vm.disk_image:
        disks.append(
            DiskPlan("system", names.disks_dir(lab_id) / f"{node.name}.qcow2", _target(vm.disk_bus, 0), vm.disk_bus,
                     backing=_image(settings, vm.disk_image))
        )
    if vm.data_volume_mb:
        disks.append(
            DiskPlan("data", names.data_dir(lab_id) / f"{node.name}.qcow2", _target(vm.disk_bus, 1), vm.disk_bus,
                     size_mb=vm.data_volume_mb)
        )

    interfaces = []
    bridge = names.mgmt_bridge_name(lab_id) if node.mgmt_ipv4 else None
    management = management_interface_xml(vendor, interface_xml, bridge)
    if management is not None:
        interfaces.append(management)
    interfaces.extend(interface_xml(end, vm.nic_model) for end in nic_plan(vendor, ends))

    return DomainPlan(
        name=names.domain_name(lab_id, node.name),
        marker=NodeMarker(lab_id=lab_id, node_name=node.name, kind=vendor.kind, mgmt_ipv4=node.mgmt_ipv4 or ""),
        domain_type=settings.domain_type,
        memory_mb=node.memory_mb or vendor.memory_mb,
        vcpus=node.cpus or vendor.cpus,
        machine=vm.machine,
        kernel=_image(settings, vm.kernel) if vm.kernel else None,
        initrd=_image(settings, vm.initrd) if vm.initrd else None,
        cmdline=vm.cmdline if vm.kernel else None,
        disks=tuple(disks),
        interfaces=tuple(interfaces),
        serial_log=names.serial_log_path(lab_id, node.name),
        serial_ports=vm.serial_ports,
        uefi=vm.firmware is Firmware.UEFI,
        cpu_model=settings.vm_cpu_model,
    )


# Metadata --------------------------------------------------------------------------------

_MARKER_FIELDS = ("lab_id", "node_name", "kind")
_OPTIONAL_MARKER_FIELDS = ("mgmt_ipv4",)


def metadata_element(marker: NodeMarker) -> ET.Element:
    """``<archetype:node xmlns:archetype=NS><lab_id/><node_name/><kind/></archetype:node>``"""
    element = ET.Element(f"{names.METADATA_PREFIX}:node", {f"xmlns:{names.METADATA_PREFIX}": names.METADATA_NS})
    for field in _MARKER_FIELDS:
        ET.SubElement(element, field).text = getattr(marker, field)
    for field in _OPTIONAL_MARKER_FIELDS:
        if getattr(marker, field):
            ET.SubElement(element, field).text = getattr(marker, field)
    return element


def metadata_xml(marker: NodeMarker) -> str:
    return ET.tostring(metadata_element(marker), encoding="unicode")


def parse_marker(xml_text: str | None) -> NodeMarker | None:
    """The marker from ``dom.metadata(ELEMENT, NS)`` text (libvirt returns it without its
    prefix); None if it is absent or incomplete."""
    if not xml_text:
        return None
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None
    values = {}
    for child in root:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag in _MARKER_FIELDS or tag in _OPTIONAL_MARKER_FIELDS:
            values[tag] = (child.text or "").strip()
    if not all(values.get(f) for f in _MARKER_FIELDS):
        return None
    return NodeMarker(**values)


# Domain XML -------------------------------------------------------------------------------


def _disk_element(disk: DiskPlan) -> ET.Element:
    element = ET.Element("disk", type="file", device="disk")
    ET.SubElement(element, "driver", name="qemu", type="qcow2", cache="none", discard="unmap")
    ET.SubElement(element, "source", file=str(disk.path))
    ET.SubElement(element, "target", dev=disk.target, bus=disk.bus)
    if disk.role == "data":
        ET.SubElement(element, "serial").text = "archetype-data"
    return element


def _serial_elements(plan: DomainPlan) -> list[ET.Element]:
    elements = []
    for port in range(plan.serial_ports):
        serial = ET.Element("serial", type="pty")
        if port == 0:
            # append: a migration's destination QEMU must not truncate the log it goes on
            # with; the provider empties it itself before a fresh boot (readiness reads it).
            ET.SubElement(serial, "log", file=str(plan.serial_log), append="on")
        ET.SubElement(serial, "target", port=str(port))
        elements.append(serial)
    console = ET.Element("console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    elements.append(console)
    return elements


def _cpu_element(model: str) -> ET.Element:
    """A named model (not QEMU's default ``max``-like choice) so that the VM can migrate live
    to another host with the same QEMU; libvirt's own modes pass through."""
    if model in ("host-model", "host-passthrough"):
        return ET.Element("cpu", mode=model)
    cpu = ET.Element("cpu", mode="custom", match="exact", check="none")
    ET.SubElement(cpu, "model", fallback="forbid").text = model
    return cpu


def domain_xml(plan: DomainPlan, *, uuid: str | None = None) -> str:
    """The persistent domain definition (``uuid`` keeps an existing domain's identity on
    a redefine)."""
    domain = ET.Element("domain", type=plan.domain_type)
    ET.SubElement(domain, "name").text = plan.name
    if uuid:
        ET.SubElement(domain, "uuid").text = uuid
    ET.SubElement(domain, "description").text = (
        f"Archetype lab {plan.marker.lab_id}, node {plan.marker.node_name} ({plan.marker.kind})"
    )
    ET.SubElement(domain, "metadata").append(metadata_element(plan.marker))
    ET.SubElement(domain, "memory", unit="MiB").text = str(plan.memory_mb)
    ET.SubElement(domain, "vcpu").text = str(plan.vcpus)

    os_element = ET.SubElement(domain, "os", firmware="efi") if plan.uefi else ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine=plan.machine).text = "hvm"
    if plan.kernel:
        ET.SubElement(os_element, "kernel").text = str(plan.kernel)
        if plan.initrd:
            ET.SubElement(os_element, "initrd").text = str(plan.initrd)
        if plan.cmdline:
            ET.SubElement(os_element, "cmdline").text = plan.cmdline
    else:
        ET.SubElement(os_element, "boot", dev="hd")

    domain.append(_cpu_element(plan.cpu_model))
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    ET.SubElement(domain, "clock", offset="utc")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    ET.SubElement(domain, "on_crash").text = "destroy"

    devices = ET.SubElement(domain, "devices")
    for disk in plan.disks:
        devices.append(_disk_element(disk))
    for index, text in enumerate(plan.interfaces):
        try:
            devices.append(ET.fromstring(text))
        except ET.ParseError as err:
            raise ProviderError(f"domain {plan.name}: NIC {index} XML is not valid: {err}") from err
    for element in _serial_elements(plan):
        devices.append(element)
    ET.SubElement(devices, "memballoon", model="none")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def link_ports(xml: str) -> list[str | None]:
    """The OVS port of each NIC in ``xml`` (a domain, or one ``<interface>``), in NIC order;
    None for a NIC on no link (a placeholder, the management NIC). Two lists equal: the same links, same slots."""
    root = ET.fromstring(xml)
    interfaces = [root] if root.tag == "interface" else root.iter("interface")
    ports: list[str | None] = []
    for iface in interfaces:
        target = iface.find("target")
        # Only OVS ports are links: the management NIC on the lab's Linux bridge is not one
        # (its tap gets a name from libvirt, vnetN, that changes at every start).
        virtualport = iface.find("virtualport")
        on_ovs = virtualport is not None and virtualport.get("type") == "openvswitch"
        ports.append(target.get("dev") if iface.get("type") == "bridge" and on_ovs and target is not None else None)
    return ports
