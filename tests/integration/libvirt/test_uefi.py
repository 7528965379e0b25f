"""A kind whose image boots only with UEFI (cisco_n9kv: vm.firmware uefi) gets OVMF from
libvirt's firmware descriptors (Debian's `ovmf`, installed by setup), and its per-domain
UEFI variables go with the domain. The mini-ios kernel stands in for the vendor image."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from lab import names
from providers import labs
from providers.libvirt import LibvirtProvider
from tests.integration.libvirt.support import lab_id
from topology import Node
from vendors import get_vendor
from vendors.model import Firmware

pytestmark = [pytest.mark.libvirt]


def test_a_uefi_kind_starts_with_ovmf_and_its_variables_go_with_it(provider: LibvirtProvider) -> None:
    base = get_vendor("mini-ios")
    uefi = base.model_copy(update={"vm": base.vm.model_copy(update={"firmware": Firmware.UEFI})})
    lab = lab_id("lu")
    conn = libvirt.open(provider.uri)
    try:
        provider.create_node(lab, Node(name="u1", vendor=uefi, image="mini-ios/vmlinuz"), [])
        dom = conn.lookupByName(names.domain_name(lab, "u1"))
        assert dom.isActive()
        xml = dom.XMLDesc(0)
        assert "OVMF" in xml and "<nvram" in xml, xml
        nvram = xml.split("<nvram", 1)[1].split(">", 1)[1].split("<", 1)[0]
        report = labs.destroy_lab(lab)
        assert report.ok, report.errors
        assert not any(d.name() == names.domain_name(lab, "u1") for d in conn.listAllDomains())
        assert nvram and not Path(nvram).exists()
    finally:
        labs.destroy_lab(lab)
        conn.close()
