"""containerlab's ``host:IF`` ends on real OVS and netlink: a veth named IF in the host's
namespace, its peer an OVS access port on the link's VLAN, both marked as the lab's, made
again idempotently, never taking a device that is not ours, gone with the lab."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from lab import names
from lab.errors import NetworkError
from providers import network
from providers.base import LinkEnd
from providers.network.markers import parse_alias
from providers.network.netlink import IPRoute, dump_links, tx_checksum

pytestmark = pytest.mark.ovs


def _host_end(lab: str, interface: str, vlan: int) -> LinkEnd:
    return LinkEnd(link_id=f"host:{interface}--r1:eth1", interface=interface, port=0, vlan=vlan,
                   port_name=names.host_port_name(lab, names.HOST_NODE, interface))


def test_a_host_end_is_a_marked_veth_on_the_links_vlan_and_goes_with_the_lab(lab_ids) -> None:
    lab = lab_ids()
    interface = f"cx{secrets.token_hex(3)}"
    end = _host_end(lab, interface, 3901)
    network.attach_host_ends(lab, [end])
    network.attach_host_ends(lab, [end])  # again: left as it is, no error

    with IPRoute() as host:
        links = dump_links(host)
    mine, theirs = links[end.port_name], links[interface]
    assert mine.kind == theirs.kind == "veth" and mine.peer_index == theirs.index and theirs.up
    assert parse_alias(theirs.alias) == (lab, names.HOST_NODE, end.link_id)
    assert not tx_checksum(interface) and not tx_checksum(end.port_name)
    port = network.bridge_ports()[end.port_name]
    assert port.tag == 3901 and port.lab_id == lab and port.node == names.HOST_NODE
    assert lab in network.network_labs()  # what orphan cleanup looks at

    report = network.release_lab(lab)
    assert report.ok, report.errors
    with IPRoute() as host:
        assert interface not in dump_links(host) and end.port_name not in dump_links(host)
    assert end.port_name not in network.bridge_ports()


def test_a_device_of_that_name_that_is_not_ours_is_left_alone(lab_ids) -> None:
    lab = lab_ids()
    interface = f"cx{secrets.token_hex(3)}"
    subprocess.run(["ip", "link", "add", interface, "type", "bridge"], check=True)
    try:
        with pytest.raises(NetworkError, match=f"host interface {interface} exists and is not this lab's"):
            network.attach_host_ends(lab, [_host_end(lab, interface, 3902)])
        with IPRoute() as host:
            assert dump_links(host)[interface].kind == "bridge"
    finally:
        subprocess.run(["ip", "link", "del", interface], check=False)
