"""Orphan cleanup and destroy on real libvirt + OVS: an unknown lab loses its domains,
disks, data volumes, serial logs and VLANs; a known lab and an unmarked ``arch-x-y``
domain are left alone. A console that never answers fails in time, leaving no process."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import libvirt
import pytest

from lab import names
from lab.errors import ConsoleError
from providers import labs
from providers.base import LinkEnd, NodeState
from providers.libvirt import LibvirtProvider
from providers.libvirt.console import ConsoleSession, Credentials
from providers.libvirt.domains import DomainConflictError
from tests.integration.libvirt.support import lab_id, mini_ios
from tests.support.orphans import remove_orphan
from vendors import get_vendor

pytestmark = [pytest.mark.libvirt, pytest.mark.ovs, pytest.mark.slow]


@pytest.fixture(scope="module")
def unmarked(provider: LibvirtProvider) -> Iterator[str]:
    """A running domain named like ours (``arch-x-<hex>``) with NO metadata, whose serial
    console prints nothing (no disk, no kernel: SeaBIOS talks to no serial port)."""
    name = f"arch-x-{secrets.token_hex(3)}"
    conn = libvirt.open(provider.uri)
    dom = conn.defineXML(
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<devices><serial type='pty'><target port='0'/></serial><console type='pty'/>"
        "<memballoon model='none'/></devices></domain>"
    )
    try:
        dom.create()
        yield name
    finally:
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        finally:
            conn.close()


def _virsh_children(domain: str) -> list[int]:
    """Live processes (not zombies) whose command line names the domain."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "console" in cmdline and domain in cmdline.split() and state != "Z":
            found.append(int(entry))
    return found


def test_silent_console_fails_within_its_timeout(unmarked: str) -> None:
    session = ConsoleSession(unmarked, get_vendor("mini-ios").console, credentials=Credentials("admin", "admin"), timeout=3)
    started = time.monotonic()
    with pytest.raises(ConsoleError, match="no prompt on the console within 3 s"), session:
        session.start()
    elapsed = time.monotonic() - started
    print(f"\n[figures] silent console: ConsoleError after {elapsed:.2f} s (timeout 3 s)")
    assert elapsed < 3 + 3
    assert _virsh_children(unmarked) == []


def test_orphan_cleanup_takes_only_the_unknown_lab(provider: LibvirtProvider, net, unmarked: str) -> None:  # noqa: ANN001
    known_lab, orphan = lab_id("lk"), lab_id("lo")
    link = names.link_id("o1:GigabitEthernet0/1", "o2:GigabitEthernet0/2")  # o2's port 1: a placeholder NIC
    try:
        provider.create_node(known_lab, mini_ios("k1"), [])
        provider.stop_node(known_lab, "k1")
        vlan = net.allocate_vlans(orphan, [link])[link]
        for node, port in (("o1", 1), ("o2", 2)):
            iface = f"GigabitEthernet0/{port}"
            ends = [LinkEnd(link, iface, port, vlan, names.host_port_name(orphan, node, iface))]
            provider.create_node(orphan, mini_ios(node), ends)
            provider.wire_node(orphan, mini_ios(node), ends)
        conn = libvirt.open(provider.uri)
        try:  # NIC order: management, then mini-ios's 4 ports (1, 3 and 4 unlinked on o2)
            xml = conn.lookupByName(f"arch-{orphan}-o2").XMLDesc(0)
        finally:
            conn.close()
        assert xml.count("<interface ") == 5 and xml.index("type='ethernet'") < xml.index(f"<tag id='{vlan}'")
        assert orphan in net.network_labs()
        assert names.data_dir(orphan).is_dir() and names.serial_log_path(orphan, "o1").parent.is_dir()

        # the unmarked domain's name looks like node <hex> of lab "x": still never ours
        with pytest.raises(DomainConflictError):
            provider.node_status("x", unmarked.removeprefix("arch-x-"))
        assert provider.remove_node("x", unmarked.removeprefix("arch-x-")).removed == {}

        known = labs.labs_with_resources() - {orphan}
        started = time.monotonic()
        report = remove_orphan(orphan, known, keep=[known_lab])
        print(f"\n[figures] orphan cleanup of 2 running VMs: {time.monotonic() - started:.1f} s")
        assert report.ok, report.errors
        assert sorted(report.removed["domains"]) == [f"arch-{orphan}-o1", f"arch-{orphan}-o2"]

        found = {lab.lab_id: lab for lab in provider.discover_labs()}
        assert orphan not in found
        assert [(n.name, n.state) for n in found[known_lab].nodes] == [("k1", NodeState.STOPPED)]
        assert not names.data_dir(orphan).exists()
        assert not names.disks_dir(orphan).exists()
        assert not names.serial_log_path(orphan, "o1").parent.exists()
        assert orphan not in net.network_labs()  # its VLAN and ports are free
        conn = libvirt.open(provider.uri)
        try:
            assert conn.lookupByName(unmarked).isActive()  # untouched
        finally:
            conn.close()
    finally:
        for lab in (orphan, known_lab):
            report = labs.destroy_lab(lab)
            assert report.ok, report.errors
    assert known_lab not in {lab.lab_id for lab in provider.discover_labs()}
