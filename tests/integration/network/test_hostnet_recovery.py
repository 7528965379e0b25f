"""Stale-network recovery on the real bridge: a half-wired lab comes back with its tags;
stale entries are dropped and their tags are not reused while still on the bridge."""

from __future__ import annotations

import subprocess

import pytest

from lab import names
from lab.state import LinkRecord
from providers import network
from providers.base import LinkEnd
from providers.network import vlans as vlan_records
from tests.integration.network.helpers import ping, tcp_transfer

pytestmark = pytest.mark.ovs


def _end(lab: str, endpoint: str, link: str, vlan: int) -> LinkEnd:
    node, interface = endpoint.split(":")
    return LinkEnd(link, interface, int(interface[-1]), vlan, names.host_port_name(lab, node, interface))


def _records(lab: str, links: dict[str, tuple[str, str]], vlans: dict[str, int]) -> list[LinkRecord]:
    """What the flow's state artifact holds for these links."""
    return [
        LinkRecord(id=link, endpoints=list(eps), vlan=vlans[link],
                   ports=[names.host_port_name(lab, *ep.split(":")) for ep in eps])
        for link, eps in links.items()
    ]


def _wire(lab: str, endpoint, wanted: list[tuple[str, str]], vlans: dict[str, int]) -> None:
    """wanted: (endpoint "node:ethN", link id) pairs of this endpoint."""
    ends = [_end(lab, ep, link, vlans[link]) for ep, link in wanted]
    network.attach_container_ends(lab, endpoint.name, endpoint.pid, ends, [ep.split(":")[1] for ep, _ in wanted])


def _links(*pairs: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return {names.link_id(a, b): (a, b) for a, b in pairs}


@pytest.mark.parametrize("source", ["artifact", "host-record"])
def test_half_wired_lab_comes_back_with_the_same_tags_and_completes(lab_ids, endpoints, source):
    lab = lab_ids()
    a, b, c = endpoints("a"), endpoints("b"), endpoints("c")
    links = _links(("a:eth1", "b:eth1"), ("b:eth2", "c:eth1"), ("c:eth2", "a:eth2"))
    ab, bc, ca = links
    first = network.allocate_vlans(lab, list(links))
    # The deploy is killed after wiring node a only: b and c have no ports yet.
    _wire(lab, a, [("a:eth1", ab), ("a:eth2", ca)], first)

    previous = _records(lab, links, first) if source == "artifact" else network.reserved_links(lab)
    asked: list[str] = []
    recovered = network.recover_allocation(lab, previous, lambda n: asked.append(n) or n in "abc")
    assert recovered == first
    assert len(asked) == len(set(asked))  # each node asked once at most
    again = network.allocate_vlans(lab, list(links), recovered)
    assert again == first

    # The redeploy converges: a is re-wired (no-op), b and c are wired.
    _wire(lab, a, [("a:eth1", ab), ("a:eth2", ca)], again)
    _wire(lab, b, [("b:eth1", ab), ("b:eth2", bc)], again)
    _wire(lab, c, [("c:eth1", bc), ("c:eth2", ca)], again)
    a.address("eth1", "10.81.1.1"), b.address("eth1", "10.81.1.2")
    b.address("eth2", "10.81.2.2"), c.address("eth1", "10.81.2.3")
    c.address("eth2", "10.81.3.3"), a.address("eth2", "10.81.3.1")
    assert ping(a, "10.81.1.2") and ping(b, "10.81.2.3") and ping(c, "10.81.3.1")
    assert tcp_transfer(c, b, "10.81.2.2") == 1 << 20


def _set_tag(ovs, port: str, tag: int) -> None:
    ovs.vsctl("set", "Port", port, f"tag={tag}")


def test_stale_entries_are_dropped_and_their_tags_not_reused_while_on_the_bridge(ovs, lab_ids, endpoints):
    lab, other = lab_ids(), lab_ids()
    a, b, f, o = endpoints("a"), endpoints("b"), endpoints("f"), endpoints("o")
    links = _links(
        ("a:eth1", "b:eth1"),  # ok: wired, right
        ("a:eth2", "b:eth2"),  # never wired, nodes there: kept
        ("d:eth1", "e:eth1"),  # nodes d, e gone, no port: nothing left
        ("a:eth3", "b:eth3"),  # port of a present with a wrong tag
        ("a:eth4", "f:eth1"),  # f is gone, its OVS row is still on the bridge
        ("a:eth5", "b:eth5"),  # its tag is now on another lab's port
    )
    ok, never, gone, wrong, nodegone, stolen = links
    first = network.allocate_vlans(lab, list(links))
    _wire(lab, a, [("a:eth1", ok), ("a:eth3", wrong), ("a:eth4", nodegone)], first)
    _wire(lab, b, [("b:eth1", ok)], first)
    _wire(lab, f, [("f:eth1", nodegone)], first)
    f.stop()  # its veth dies with its namespace; the OVS row stays
    wrong_port = names.host_port_name(lab, "a", "eth3")
    free_tag = network.allocate_vlans(other, ["x"])["x"]  # a tag nobody else uses
    _set_tag(ovs, wrong_port, free_tag)
    network.release_lab(other)
    # Another lab's port now holds the tag of `stolen` (as after a lost record).
    other_end = LinkEnd("o:eth1--p:eth1", "eth1", 1, first[stolen], names.host_port_name(other, "o", "eth1"))
    network.attach_container_ends(other, "o", o.pid, [other_end], ["eth1"])

    alive = {"a", "b", "o"}
    recovered = network.recover_allocation(lab, _records(lab, links, first), lambda n: n in alive)
    assert recovered == {ok: first[ok], never: first[never]}

    ports = network.bridge_ports()
    assert wrong_port not in ports  # our stale ports are gone...
    assert names.host_port_name(lab, "f", "eth1") not in ports
    assert names.host_port_name(lab, "a", "eth4") not in ports  # (the live end of a dropped link too)
    assert names.host_port_name(lab, "a", "eth1") in ports  # ...the valid ones stay
    assert ports[other_end.port_name].tag == first[stolen]  # another lab's port is untouched
    assert ports[other_end.port_name].lab_id == other
    record = vlan_records.load_reservation(lab)
    assert record is not None and record.tags() == recovered

    final = network.allocate_vlans(lab, list(links), recovered)
    assert final[ok] == first[ok] and final[never] == first[never]
    assert first[stolen] not in final.values()  # still on the bridge: not reused
    assert final[gone] == first[gone]  # dropped but free: preferred again
    assert len(set(final.values())) == len(final)


def test_recovery_of_a_lab_with_no_record_and_no_ports_keeps_free_tags(lab_ids):
    lab = lab_ids()
    links = {"a:eth1--b:eth1": 0}
    tag = network.allocate_vlans(lab, list(links))["a:eth1--b:eth1"]
    network.release_lab(lab)
    previous = [LinkRecord(id="a:eth1--b:eth1", endpoints=["a:eth1", "b:eth1"], vlan=tag, ports=[])]
    assert network.recover_allocation(lab, previous, lambda n: True) == {"a:eth1--b:eth1": tag}


def test_ovs_timeout_is_an_error_not_a_hang(monkeypatch, lab_ids):
    lab = lab_ids()
    monkeypatch.setenv("OVS_RUNDIR", "/nonexistent-ovs")
    from lab.errors import NetworkError

    with pytest.raises(NetworkError, match="ovs-vsctl failed"):
        network.allocate_vlans(lab, ["a:eth1--b:eth1"])
    monkeypatch.delenv("OVS_RUNDIR")
    assert subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True).returncode == 0


def test_a_hung_ovsdb_is_a_timeout_error_not_a_hang(monkeypatch, tmp_path, lab_ids):
    """ovsdb-server accepts the connection and never answers: --timeout ends the wait."""
    import socket
    import time

    from lab.errors import NetworkError
    from providers.network import ovs as ovs_module

    lab = lab_ids()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "db.sock"))
    server.listen(8)  # the backlog accepts connections: nobody ever reads them
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path))
    monkeypatch.setattr(ovs_module, "OVS_TIMEOUT", 1)
    start = time.monotonic()
    try:
        with pytest.raises(NetworkError, match="did not answer"):
            network.allocate_vlans(lab, ["a:eth1--b:eth1"])
    finally:
        server.close()
        monkeypatch.undo()  # before lab_ids' teardown talks to the real OVS
    assert time.monotonic() - start < 10
