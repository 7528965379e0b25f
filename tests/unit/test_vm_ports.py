"""A VM has its vendor's ports: the NIC plan gives every VM kind its ``vm.data_ports`` NICs
whatever is linked (unlinked ones on nothing, link down), more up to the highest linked
port, never beyond ``interfaces.max_ports``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from pydantic import ValidationError

from lab.errors import ProviderError
from providers.base import LinkEnd
from providers.libvirt.domain_xml import nic_plan, plan_domain
from providers.libvirt.provider import _linked_slots
from providers.network import vm_interface_xml
from tests.unit.test_libvirt_xml import end, mini, settings  # noqa: F401 - settings is a fixture
from vendors import catalog, get_vendor
from vendors.model import VendorConfig

# What the issue asks for, as VENDOR-FACTS gives the devices' default port counts.
DEFAULT_PORTS = {"cisco_iosv": 4, "cisco_csr1000v": 4, "cisco_n9kv": 8, "juniper_vjunos_router": 10, "mini-ios": 4}


@pytest.mark.parametrize(("kind", "ports"), sorted(DEFAULT_PORTS.items()))
def test_each_vm_kind_has_its_default_ports_unlinked(kind: str, ports: int) -> None:
    vendor = get_vendor(kind)
    assert vendor.vm is not None and vendor.vm.data_ports == ports
    assert nic_plan(vendor, []) == [None] * ports


def test_every_vm_kind_says_how_many_ports_it_has() -> None:
    vms = [v for v in catalog().kinds() if v.vm is not None]
    assert vms and all(v.vm.data_ports >= 1 for v in vms)  # type: ignore[union-attr]


def test_links_take_their_ports_among_the_defaults() -> None:
    vendor = get_vendor("mini-ios")
    assert nic_plan(vendor, [end(3, 7), end(1, 5)]) == [end(1, 5), None, end(3, 7), None]


def test_a_link_beyond_the_defaults_adds_nics_up_to_it() -> None:
    vendor = get_vendor("mini-ios")
    assert nic_plan(vendor, [end(6, 9)]) == [None] * 5 + [end(6, 9)]


def test_max_ports_is_the_limit() -> None:
    vendor = get_vendor("mini-ios")
    last = vendor.interfaces.max_ports
    assert len(nic_plan(vendor, [end(last, 9)])) == last
    with pytest.raises(ProviderError, match=f"port {last + 1} is beyond the {last} data ports"):
        nic_plan(vendor, [end(last + 1, 9)])


def test_a_kind_cannot_have_more_default_ports_than_max_ports() -> None:
    entry = get_vendor("mini-ios").model_dump()
    entry["vm"]["data_ports"] = entry["interfaces"]["max_ports"] + 1
    with pytest.raises(ValidationError, match="data_ports .* is beyond interfaces.max_ports"):
        VendorConfig.model_validate(entry)


def test_the_domain_has_mgmt_plus_the_ports_unlinked_nics_on_nothing_link_down(settings) -> None:  # noqa: F811
    plan = plan_domain("unit-p", mini("k1"), [], interface_xml=vm_interface_xml)
    nics = [ET.fromstring(text) for text in plan.interfaces]
    assert [n.get("type") for n in nics] == ["user"] + ["ethernet"] * 4
    for nic in nics[1:]:  # no bridge, no OVS port, no VLAN: isolated by construction
        assert nic.find("source") is None and nic.find("vlan") is None and nic.find("target") is None
        assert nic.find("link").get("state") == "down"


def test_unlinked_nics_at_the_end_change_no_link() -> None:
    """A running VM made before its kind had ``data_ports`` (fewer NICs) is reused."""
    linked = LinkEnd("l1", "Gi0/1", 1, 5, "art1").port_name
    assert _linked_slots([None, linked]) == _linked_slots([None, linked, None, None, None])
    assert _linked_slots([None, None, linked]) != _linked_slots([None, linked])
    assert _linked_slots([None, None]) == []
