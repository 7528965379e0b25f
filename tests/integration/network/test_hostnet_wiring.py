"""Container ends on the real bridge: VLAN isolation, TCP, idempotence, restart, rollback."""

from __future__ import annotations

import time
from unittest import mock

import pytest

from lab import names
from lab.errors import NetworkError
from providers import network
from providers.base import LinkEnd
from providers.network import ovs as ovs_module
from providers.network.markers import parse_alias
from providers.network.netlink import IPRoute, dump_links, tx_checksum
from tests.integration.network.helpers import ping, tcp_transfer

pytestmark = pytest.mark.ovs


def _end(lab: str, node: str, interface: str, link: str, vlan: int, port: int = 1) -> LinkEnd:
    return LinkEnd(link_id=link, interface=interface, port=port, vlan=vlan,
                   port_name=names.host_port_name(lab, node, interface))


def _host_links() -> dict:
    with IPRoute() as ipr:
        return dump_links(ipr)


def test_same_vlan_reaches_other_vlan_is_isolated(lab_ids, endpoints):
    lab = lab_ids()
    a, b, c, d = (endpoints(n) for n in "abcd")
    ab, cd = names.link_id("a:eth1", "b:eth1"), names.link_id("c:eth1", "d:eth1")
    vlans = network.allocate_vlans(lab, [ab, cd])
    assert vlans[ab] != vlans[cd]

    ends = {
        "a": _end(lab, "a", "eth1", ab, vlans[ab]), "b": _end(lab, "b", "eth1", ab, vlans[ab]),
        "c": _end(lab, "c", "eth1", cd, vlans[cd]), "d": _end(lab, "d", "eth1", cd, vlans[cd]),
    }
    for ep in (a, b, c, d):
        network.attach_container_ends(lab, ep.name, ep.pid, [ends[ep.name]], ["eth1"])
    # Same subnet everywhere: only the VLAN separates a-b from c-d.
    for i, ep in enumerate((a, b, c, d), start=1):
        ep.address("eth1", f"10.77.0.{i}")

    assert ping(a, "10.77.0.2")
    assert ping(c, "10.77.0.4")
    assert not ping(a, "10.77.0.3", attempts=2)
    assert not ping(b, "10.77.0.4", attempts=2)
    # TCP, not only ping: a partial checksum would pass ping and break this (HOST-FACTS).
    assert tcp_transfer(a, b, "10.77.0.2", nbytes=4 << 20) == 4 << 20
    assert tcp_transfer(d, c, "10.77.0.3", nbytes=1 << 20, port=5702) == 1 << 20

    ports = network.bridge_ports()
    host = _host_links()
    for name, end in ends.items():
        port = ports[end.port_name]
        assert port.tag == end.vlan
        assert port.lab_id == lab
        assert port.external_ids[names.OVS_LINK_KEY] == end.link_id
        assert port.external_ids[names.OVS_NODE_KEY] == name
        assert parse_alias(host[end.port_name].alias) == (lab, name, end.link_id)
        assert host[end.port_name].up and host[end.port_name].mtu == 1500
        assert not tx_checksum(end.port_name)
    inside = a.links()["eth1"]
    assert inside["up"] and inside["mtu"] == 1500
    assert not a.tx_checksum("eth1")


def test_rewire_is_a_noop_and_a_restarted_container_is_rewired(lab_ids, endpoints):
    lab = lab_ids()
    a, b = endpoints("a"), endpoints("b")
    link = names.link_id("a:eth1", "b:eth3")
    tag = network.allocate_vlans(lab, [link])[link]
    end_a, end_b = _end(lab, "a", "eth1", link, tag), _end(lab, "b", "eth3", link, tag, port=3)
    network.attach_container_ends(lab, "a", a.pid, [end_a], ["eth1"])
    network.attach_container_ends(lab, "b", b.pid, [end_b], ["eth3"])
    before = _host_links()[end_a.port_name].index

    calls = []
    real_run = ovs_module.subprocess.run
    with mock.patch.object(ovs_module.subprocess, "run", side_effect=lambda *a, **k: calls.append(a[0]) or real_run(*a, **k)):
        network.attach_container_ends(lab, "a", a.pid, [end_a], ["eth1"])
    assert len(calls) == 1 and "list" in calls[0]  # one read, no write
    assert _host_links()[end_a.port_name].index == before

    # b restarts: new namespace, its veth died with the old one; the OVS row is left dangling.
    b.stop()
    deadline = time.monotonic() + 10  # the kernel tears a namespace down asynchronously
    while end_b.port_name in _host_links() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert end_b.port_name not in _host_links()
    assert end_b.port_name in network.bridge_ports()
    b2 = endpoints("b")
    network.attach_container_ends(lab, "b", b2.pid, [end_b], ["eth3"])
    a.address("eth1", "10.78.0.1")
    b2.address("eth3", "10.78.0.2")
    assert ping(a, "10.78.0.2")
    assert tcp_transfer(a, b2, "10.78.0.2") == 1 << 20


def test_a_failure_halfway_removes_what_the_call_made(lab_ids, endpoints):
    lab = lab_ids()
    a = endpoints("a")
    links = [names.link_id("a:eth1", "x:eth1"), names.link_id("a:eth2", "y:eth1")]
    vlans = network.allocate_vlans(lab, links)
    ends = [_end(lab, "a", "eth1", links[0], vlans[links[0]]), _end(lab, "a", "eth2", links[1], vlans[links[1]], 2)]
    with iproute(a) as ipr:  # something else already called eth2 in the container
        ipr.link("add", ifname="eth2", kind="veth", peer={"ifname": "other2"})

    with pytest.raises(NetworkError, match="eth2 already exists"):
        network.attach_container_ends(lab, "a", a.pid, ends, ["eth1", "eth2"])
    host = _host_links()
    assert ends[0].port_name not in host and ends[1].port_name not in host
    assert "eth1" not in a.links()
    assert not {e.port_name for e in ends} & set(network.bridge_ports())

    # An OVS failure (port name taken on another bridge) also rolls the veths back.
    with mock.patch.object(ovs_module, "transaction", side_effect=NetworkError("boom")), \
            pytest.raises(NetworkError, match="boom"):
        network.attach_container_ends(lab, "a", a.pid, ends[:1], ["eth1"])
    assert ends[0].port_name not in _host_links()
    assert "eth1" not in a.links()


def test_refuses_a_gone_process_and_the_host_namespace(lab_ids, endpoints):
    import os

    lab = lab_ids()
    a = endpoints("a")
    end = _end(lab, "a", "eth1", "a:eth1--b:eth1", 4000)
    a.stop()
    with pytest.raises(NetworkError, match="gone"):
        network.attach_container_ends(lab, "a", a.pid, [end], ["eth1"])
    with pytest.raises(NetworkError, match="host's network namespace"):
        network.attach_container_ends(lab, "a", os.getpid(), [end], ["eth1"])
    assert end.port_name not in _host_links()


def iproute(endpoint):
    from providers.network.netlink import iproute_in_netns

    return iproute_in_netns(endpoint.pid)


def test_parallel_wiring_from_threads(lab_ids, endpoints):
    """Prefect runs node tasks in threads: each thread enters a container's namespace
    only for itself (setns is per thread), so parallel wiring cannot cross namespaces."""
    from concurrent.futures import ThreadPoolExecutor

    lab = lab_ids()
    eps = [endpoints(f"n{i}") for i in range(8)]
    links = [names.link_id(f"n{i}:eth1", f"n{i + 1}:eth1") for i in range(0, 8, 2)]
    vlans = network.allocate_vlans(lab, links)

    def wire(i: int) -> None:
        link = links[i // 2]
        network.attach_container_ends(lab, f"n{i}", eps[i].pid, [_end(lab, f"n{i}", "eth1", link, vlans[link])], ["eth1"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(wire, range(8)))
    for i, ep in enumerate(eps):
        assert set(ep.links()) == {"lo", "eth1"}
        ep.address("eth1", f"10.83.0.{i + 1}")
    assert ping(eps[0], "10.83.0.2") and ping(eps[6], "10.83.0.8")
    assert not ping(eps[0], "10.83.0.3", attempts=1)


def test_a_call_killed_before_its_ovs_transaction_is_completed_by_the_next(lab_ids, endpoints):
    from providers.network import veth

    lab = lab_ids()
    a, b = endpoints("a"), endpoints("b")
    link = names.link_id("a:eth1", "b:eth1")
    tag = network.allocate_vlans(lab, [link])[link]
    end_a, end_b = _end(lab, "a", "eth1", link, tag), _end(lab, "b", "eth1", link, tag)
    # What a SIGKILL right after the netlink work leaves: the veth pair, marked, no OVS port.
    with IPRoute() as host, veth._Container(a.pid) as box:
        veth._make(host, box, veth._Pair(end_a.port_name, "eth1"), veth.veth_alias(lab, "a", link), 1500, True, [])
    assert end_a.port_name not in network.bridge_ports()
    assert lab in network.network_labs()

    network.attach_container_ends(lab, "a", a.pid, [end_a], ["eth1"])
    network.attach_container_ends(lab, "b", b.pid, [end_b], ["eth1"])
    assert network.bridge_ports()[end_a.port_name].tag == tag
    a.address("eth1", "10.84.0.1"), b.address("eth1", "10.84.0.2")
    assert ping(a, "10.84.0.2")


def test_a_parked_end_carries_nothing_until_it_comes_up_with_the_address_it_was_given(lab_ids, endpoints):
    """A cold move's new copy of a node: wired with its host end down (NO-CARRIER inside, no
    frame through) and the MAC the old copy had; up at the switch, it answers."""
    lab = lab_ids()
    a, b = endpoints("a"), endpoints("b")
    link = names.link_id("a:eth1", "b:eth1")
    tag = network.allocate_vlans(lab, [link])[link]
    end_a, end_b = _end(lab, "a", "eth1", link, tag), _end(lab, "b", "eth1", link, tag)
    network.attach_container_ends(lab, "a", a.pid, [end_a], ["eth1"])
    network.attach_container_ends(lab, "b", b.pid, [end_b], ["eth1"], carrier=False, macs={"eth1": "02:aa:bb:cc:dd:01"})
    a.address("eth1", "10.79.0.1")
    b.address("eth1", "10.79.0.2")
    assert not _host_links()[end_b.port_name].up
    assert network.inside_macs(b.pid, ["eth1"]) == {"eth1": "02:aa:bb:cc:dd:01"}
    assert b.links()["eth1"]["carrier"] is False
    assert not ping(a, "10.79.0.2", attempts=2)

    network.set_port_up(end_b.port_name, True)
    assert ping(a, "10.79.0.2")
    # a re-wire (a retried stage) keeps it as asked: down again, its address unchanged
    network.attach_container_ends(lab, "b", b.pid, [end_b], ["eth1"], carrier=False)
    assert not _host_links()[end_b.port_name].up
    assert network.inside_macs(b.pid, ["eth1"]) == {"eth1": "02:aa:bb:cc:dd:01"}


def test_a_steps_port_names_must_be_the_labs_own(lab_ids, endpoints):
    """A cold move's cutover sets ports up and down by name, from flow parameters: only the
    lab's own (marked) ports pass; the host's interfaces and another lab's are refused."""
    lab, other = lab_ids(), lab_ids()
    a, b = endpoints("a"), endpoints("b")
    link = names.link_id("a:eth1", "b:eth1")
    end_a = _end(lab, "a", "eth1", link, network.allocate_vlans(lab, [link])[link])
    end_b = _end(other, "b", "eth1", link, network.allocate_vlans(other, [link])[link])
    network.attach_container_ends(lab, "a", a.pid, [end_a], ["eth1"])
    network.attach_container_ends(other, "b", b.pid, [end_b], ["eth1"])
    network.check_lab_ports(lab, [end_a.port_name, "arxnotthere"])  # its own, and one that does not exist
    for foreign in ("lo", end_b.port_name):
        with pytest.raises(NetworkError, match="not a port of lab"):
            network.check_lab_ports(lab, [end_a.port_name, foreign])
