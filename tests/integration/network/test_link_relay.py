"""The impairment relay on real veths and the real bridge: a link taken off the bridge is
carried by its relay with the delay and loss asked, TCP included, and goes back on its
VLAN when the relay stops; a relay whose port is deleted (its node stopped) exits."""

from __future__ import annotations

import shutil
import time

import pytest

from lab import names
from lab.state import LinkConditions
from providers import network
from providers.base import LinkEnd
from providers.network import ports, relays
from tests.integration.network.helpers import ping, tcp_transfer

pytestmark = [pytest.mark.ovs]


def _rtt(src, dst_ip: str) -> float:
    started = time.monotonic()
    assert ping(src, dst_ip, attempts=1, timeout=2.0)
    return time.monotonic() - started


@pytest.fixture
def wired(lab_ids, endpoints):
    lab = lab_ids()
    link = names.link_id("a:eth1", "b:eth1")
    tag = network.allocate_vlans(lab, [link])[link]
    pair = {}
    for name, ip in (("a", "10.91.0.1"), ("b", "10.91.0.2")):
        box = endpoints(name)
        end = LinkEnd(link, "eth1", 1, tag, names.host_port_name(lab, name, "eth1"))
        network.attach_container_ends(lab, name, box.pid, [end], ["eth1"])
        box.address("eth1", ip)
        pair[name] = (box, end)
    try:
        yield lab, link, tag, pair
    finally:
        relays.stop_lab_relays(lab)
        shutil.rmtree(names.lab_dir(lab), ignore_errors=True)
        shutil.rmtree(names.logs_dir(lab), ignore_errors=True)


def test_relay_carries_the_link_with_delay_and_loss_then_hands_it_back(wired) -> None:
    lab, link, tag, pair = wired
    (a, end_a), (b, end_b) = pair["a"], pair["b"]
    assert ping(a, "10.91.0.2")
    port_names = [end_a.port_name, end_b.port_name]

    ports.take_off_bridge(port_names)
    assert not ports.on_bridge(port_names)
    relays.start_relay(lab, link, (end_a.port_name, end_b.port_name), LinkConditions(delay_ms=100))
    assert relays.relay_pid(lab, link) is not None
    assert ping(a, "10.91.0.2", attempts=5, timeout=1.0)  # ARP first
    assert _rtt(a, "10.91.0.2") >= 0.2  # 100 ms each way
    assert tcp_transfer(a, b, "10.91.0.2", nbytes=256 << 10, port=5711) == 256 << 10

    relays.start_relay(lab, link, (end_a.port_name, end_b.port_name), LinkConditions(loss_percent=100))
    assert not ping(a, "10.91.0.2", attempts=3, timeout=0.5)

    assert relays.stop_relay(lab, link)
    assert relays.relay_pid(lab, link) is None
    assert not ping(a, "10.91.0.2", attempts=2, timeout=0.5)  # off the bridge, no relay: nothing passes
    ports.put_on_bridge(lab, [("a", end_a.port_name), ("b", end_b.port_name)], link, tag)
    assert ping(a, "10.91.0.2")
    assert _rtt(a, "10.91.0.2") < 0.1


def test_a_relay_exits_when_its_port_goes(wired) -> None:
    lab, link, _tag, pair = wired
    (_a, end_a), (b, end_b) = pair["a"], pair["b"]
    ports.take_off_bridge([end_a.port_name, end_b.port_name])
    relays.start_relay(lab, link, (end_a.port_name, end_b.port_name), LinkConditions(delay_ms=10))
    b.stop()  # its namespace goes, and the veth pair with it
    deadline = time.monotonic() + 10
    while relays.relay_pid(lab, link) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert relays.relay_pid(lab, link) is None


def test_a_port_down_takes_the_carrier_from_its_peer(wired) -> None:
    _lab, _link, _tag, pair = wired
    (a, end_a) = pair["a"]
    network.set_port_up(end_a.port_name, False)
    assert not _carrier(a, "eth1")  # NO-CARRIER inside, as a cable pulled
    assert not ping(a, "10.91.0.2", attempts=2, timeout=0.5)
    assert ports.port_is_up(end_a.port_name) is False
    network.set_port_up(end_a.port_name, True)
    assert ping(a, "10.91.0.2", attempts=10, timeout=0.5)
    assert _carrier(a, "eth1")


def _carrier(box, ifname: str) -> bool:
    from providers.network.netlink import iproute_in_netns

    with iproute_in_netns(box.pid) as ipr:
        (msg,) = ipr.link("get", ifname=ifname)
    return bool(msg["flags"] & 0x10000)  # IFF_LOWER_UP
