"""The provider contract (providers/base.py), one module for every runtime: each test runs
on docker and on libvirt, on the real daemons (dockerd; libvirtd + QEMU with the mini-ios
VM; OVS). A new provider joins ``HARNESSES`` and must pass it all.

One node per provider is made and booted once for the module (a TCG boot is slow); the
tests then read and change it in the order below."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from lab import names
from lab.errors import ConflictError
from providers import labs, network
from providers.base import CommandResult, LinkEnd, NodeProvider, NodeState
from topology import Node
from vendors.model import Provider

pytestmark = [pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs, pytest.mark.slow]


@dataclass
class Harness:
    """What the contract needs to know of one runtime to exercise it."""

    provider: Provider
    kind: str
    interface: str  # the vendor name of data port 1
    # post-boot resume: the node's exec lines, how many of them count as done already, and
    # what the extracted config then shows (ran) and does not show (done before, not run again)
    exec_lines: tuple[str, ...]
    done_before: int
    ran: str
    not_run: str
    image: str | None = None
    strangers: list[Callable[[], None]] = field(default_factory=list)

    def node(self, name: str, *exec_lines: str) -> Node:
        return Node.of(name, self.kind, image=self.image, exec=exec_lines)


HARNESSES = {
    Provider.DOCKER: lambda: Harness(
        Provider.DOCKER, "linux", "eth1",
        exec_lines=("ip addr add 192.0.2.1/32 dev lo", "ip addr add 192.0.2.2/32 dev lo"),
        done_before=1, ran="192.0.2.2/32", not_run="192.0.2.1/32",
    ),
    Provider.LIBVIRT: lambda: Harness(
        Provider.LIBVIRT, "mini-ios", "GigabitEthernet0/1", image="mini-ios/vmlinuz",
        exec_lines=("configure terminal", "ip domain name first.example", "ip route 10.98.0.0 255.255.0.0 10.1.1.1",
                    "end"),
        done_before=2, ran="ip route 10.98.0.0 255.255.0.0 10.1.1.1", not_run="first.example",
    ),
}


@dataclass
class Booted:
    harness: Harness
    provider: NodeProvider
    lab_id: str
    node: Node
    ends: list[LinkEnd]


@pytest.fixture(scope="module", params=sorted(HARNESSES), ids=str)
def booted(request: pytest.FixtureRequest) -> Iterator[Booted]:
    harness = HARNESSES[request.param]()
    _require(harness)
    provider = _new_provider(harness.provider)
    lab = f"arch-cf-{secrets.token_hex(3)}"
    node = harness.node("n1")
    link = names.link_id(f"n1:{harness.interface}", "peer:eth1")
    try:
        vlan = network.allocate_vlans(lab, [link])[link]
        ends = [LinkEnd(link, harness.interface, 1, vlan, names.host_port_name(lab, "n1", harness.interface))]
        assert provider.node_status(lab, "n1").state is NodeState.MISSING
        status = provider.create_node(lab, node, ends)
        assert (status.state, status.name, status.kind, status.provider) == (NodeState.RUNNING, "n1", node.kind,
                                                                            harness.provider)
        provider.wire_node(lab, node, ends)
        assert provider.wait_ready(lab, node.ref, timeout=600) >= 0
        yield Booted(harness, provider, lab, node, ends)
    finally:
        for undo in harness.strangers:
            undo()
        report = labs.destroy_lab(lab)
        provider.close()
        assert report.ok, report.errors


def _require(harness: Harness) -> None:
    if harness.provider is Provider.LIBVIRT:
        from tests.integration.libvirt.support import require_libvirt, require_mini_ios

        require_libvirt()
        require_mini_ios()


def _new_provider(which: Provider) -> NodeProvider:
    from providers import _FACTORIES

    return _FACTORIES[which]()


def _lab_ports(lab: str) -> dict[str, tuple[int | None, str | None]]:
    return {p.name: (p.tag, p.external_ids.get(names.OVS_NODE_KEY))
            for p in network.bridge_ports().values() if p.lab_id == lab}


def test_names_come_from_lab_names(booted: Booted) -> None:
    expected = {Provider.DOCKER: names.container_name, Provider.LIBVIRT: names.domain_name}[booted.harness.provider]
    assert booted.provider.name is booted.harness.provider
    assert booted.provider.runtime_name(booted.lab_id, "n1") == expected(booted.lab_id, "n1")


def test_status_and_discovery_agree(booted: Booted) -> None:
    status = booted.provider.node_status(booted.lab_id, "n1")
    assert (status.state, status.kind, status.provider) == (NodeState.RUNNING, booted.node.kind, booted.harness.provider)
    (lab,) = [found for found in booted.provider.discover_labs() if found.lab_id == booted.lab_id]
    assert lab.nodes == [status]
    assert status.ref() == booted.node.ref
    assert booted.lab_id in booted.provider.labs_with_resources()


def test_create_and_wire_are_idempotent(booted: Booted) -> None:
    ports = _lab_ports(booted.lab_id)
    assert ports == {booted.ends[0].port_name: (booted.ends[0].vlan, "n1")}  # on the bridge, tagged, marked
    again = booted.provider.create_node(booted.lab_id, booted.node, booted.ends)
    booted.provider.wire_node(booted.lab_id, booted.node, booted.ends)
    assert again.state is NodeState.RUNNING
    (lab,) = [found for found in booted.provider.discover_labs() if found.lab_id == booted.lab_id]
    assert [n.name for n in lab.nodes] == ["n1"]  # reused, not made twice
    assert _lab_ports(booted.lab_id) == ports


def test_post_boot_resumes_after_what_is_done(booted: Booted) -> None:
    harness = booted.harness
    node = harness.node("n1", *harness.exec_lines)
    commands = node.post_boot_commands
    first = node.own_commands_from + harness.done_before
    done = [CommandResult(c, 0, "", 0.0) for c in commands[:first]]  # as a first attempt left them
    results = booted.provider.run_post_boot(booted.lab_id, node, done)
    assert results is done and [r.command for r in results] == commands and all(r.ok for r in results)
    config = booted.provider.extract_config(booted.lab_id, node.ref)
    assert harness.ran in config
    assert harness.not_run not in config


def test_a_session_is_offered(booted: Booted) -> None:
    argv = booted.provider.connect_command(booted.lab_id, booted.node.ref)
    assert argv and all(isinstance(a, str) for a in argv)
    assert booted.provider.runtime_name(booted.lab_id, "n1") in argv


def test_a_resource_of_the_nodes_name_that_is_not_ours_is_left_alone(booted: Booted) -> None:
    stranger = _make_stranger(booted, "n9")
    with pytest.raises(ConflictError) as caught:
        booted.provider.create_node(booted.lab_id, booted.harness.node("n9"), [])
    assert not caught.value.transient  # a retry would meet it again
    assert stranger()  # still there


def test_remove_node_then_lab_nodes_leave_the_labs_network(booted: Booted) -> None:
    provider, lab = booted.provider, booted.lab_id
    extra = booted.harness.node("n2")
    provider.create_node(lab, extra, [])
    report = provider.remove_node(lab, "n2")
    assert report.ok, report.errors
    assert provider.node_status(lab, "n2").state is NodeState.MISSING
    assert provider.remove_node(lab, "n2").ok  # missing is fine

    report = provider.remove_lab_nodes(lab)
    assert report.ok, report.errors
    assert provider.node_status(lab, "n1").state is NodeState.MISSING
    assert lab not in {found.lab_id for found in provider.discover_labs()}
    # The lab's VLAN record is the lab's, released by providers.labs once no node remains.
    assert [link.id for link in network.reserved_links(lab)] == [booted.ends[0].link_id]


def _make_stranger(booted: Booted, node_name: str) -> Callable[[], bool]:
    """Something named like ``node_name`` of the lab, without our markers; returns a check
    that it is still there, and registers its removal at teardown."""
    name = booted.provider.runtime_name(booted.lab_id, node_name)
    if booted.harness.provider is Provider.DOCKER:
        import docker

        client = docker.from_env()
        container = client.containers.run("archetype/linux:latest", name=name, detach=True, labels={"owner": "else"})
        booted.harness.strangers.append(lambda: (container.remove(force=True), client.close()))

        def there() -> bool:
            container.reload()
            return container.status == "running"

        return there
    import libvirt

    conn = libvirt.open("qemu:///system")
    conn.defineXML(f"<domain type='qemu'><name>{name}</name><memory>65536</memory>"
                   "<os><type>hvm</type></os></domain>")
    booted.harness.strangers.append(lambda: (conn.lookupByName(name).undefine(), conn.close()))
    return lambda: conn.lookupByName(name) is not None


def test_the_contract_covers_every_provider() -> None:
    from providers import _FACTORIES

    assert set(HARNESSES) == set(_FACTORIES) == set(Provider)
    assert all(isinstance(_new_provider(p), NodeProvider) for p in Provider)
