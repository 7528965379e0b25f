"""Lab-wide teardown has one owner (``providers.labs``): each provider removes its own nodes;
the lab's network and files go once, after no node of the lab remains.

Real dockerd, libvirtd/QEMU and OVS: a container and a mini-ios VM on one link. The VM's
removal is made to fail (libvirt refusing to undefine it, as a domain stuck in D state
does): the container goes, the VM keeps running with its tap on the bridge, its VLAN and
record, and its disks. Once it can go, the lab is released whole."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import libvirt
import pytest

import providers.libvirt.provider as libvirt_provider
from lab import names
from providers import labs, network, provider_of
from providers.base import LinkEnd, NodeState
from tests.integration.libvirt.support import mini_ios, require_libvirt, require_mini_ios
from tests.support.leftovers import leftovers
from topology import Node

pytestmark = [pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs]

LINK = names.link_id("h1:eth1", "v1:GigabitEthernet0/1")


@pytest.fixture
def mixed_lab(docker_client, ovs, linux_image: str) -> Iterator[str]:  # noqa: ANN001
    require_libvirt()
    require_mini_ios()
    lab = f"arch-td-{secrets.token_hex(3)}"
    nodes = {"h1": Node.of("h1", "linux", image=linux_image), "v1": mini_ios("v1")}
    try:
        vlan = network.allocate_vlans(lab, [LINK])[LINK]
        for node in nodes.values():
            interface = "eth1" if node.name == "h1" else "GigabitEthernet0/1"
            ends = [LinkEnd(LINK, interface, 1, vlan, names.host_port_name(lab, node.name, interface))]
            provider_of(node).create_node(lab, node, ends)
            provider_of(node).wire_node(lab, node, ends)
        yield lab
    finally:
        labs.destroy_lab(lab)


@pytest.fixture
def linux_image(docker_client) -> str:  # noqa: ANN001
    image = "archetype/linux:latest"
    try:
        docker_client.images.get(image)
    except Exception:  # noqa: BLE001
        pytest.fail(f"{image} is not built (scripts/setup-host.sh)")
    return image


def _lab_ports(lab: str) -> dict[str, int | None]:
    return {p.name: p.tag for p in network.bridge_ports().values() if p.lab_id == lab}


def test_a_vm_that_will_not_go_keeps_its_ports_vlan_and_disks(mixed_lab: str, monkeypatch) -> None:  # noqa: ANN001
    lab = mixed_lab
    vm_port = names.host_port_name(lab, "v1", "GigabitEthernet0/1")
    vlan = {link.id: link.vlan for link in network.reserved_links(lab)}[LINK]
    assert _lab_ports(lab) == {names.host_port_name(lab, "h1", "eth1"): vlan, vm_port: vlan}

    real = libvirt_provider.remove_domain

    def stuck(name: str, uuid: str):  # noqa: ANN202
        def fail(_conn):  # noqa: ANN001, ANN202
            raise libvirt.libvirtError("domain is stuck in D state")
        return fail

    monkeypatch.setattr(libvirt_provider, "remove_domain", stuck)
    report = labs.destroy_lab(lab)

    assert report.removed["containers"] == [names.container_name(lab, "h1")]
    # The VM runs on, wired as it was: its tap with its tag, the VLAN still reserved for it.
    assert [(n.name, n.state) for n in labs.lab_nodes(lab)] == [("v1", NodeState.RUNNING)]
    assert _lab_ports(lab) == {vm_port: vlan}
    assert {link.id: link.vlan for link in network.reserved_links(lab)} == {LINK: vlan}
    assert any("stuck in D state" in e for e in report.errors), report.errors
    assert any("v1 remain" in e and "network" in e for e in report.errors), report.errors
    assert names.data_dir(lab).joinpath("v1.qcow2").exists()  # its data volume, in use
    assert names.serial_log_path(lab, "v1").exists()
    assert lab in labs.labs_with_resources()

    monkeypatch.setattr(libvirt_provider, "remove_domain", real)
    report = labs.destroy_lab(lab)
    assert report.ok, report.errors
    assert labs.lab_nodes(lab) == []
    assert _lab_ports(lab) == {} and network.reserved_links(lab) == []
    assert leftovers(lab) == {}
