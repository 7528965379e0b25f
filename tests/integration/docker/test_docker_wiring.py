"""Data links of linux nodes on the OVS bridge: wired, re-wired after a restart, removed
with their node, and nothing left after destroy."""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest

import providers.network as network
from lab import names
from providers import labs
from providers.base import LinkEnd
from providers.docker import DockerProvider
from tests.support.leftovers import leftovers
from topology import Node

pytestmark = [pytest.mark.docker, pytest.mark.ovs]


def _pair(lab_id: str, image: str) -> tuple[dict[str, Node], dict[str, list[LinkEnd]]]:
    link = names.link_id("h1:eth1", "h2:eth1")
    vlan = network.allocate_vlans(lab_id, [link])[link]
    nodes, ends = {}, {}
    for i, name in enumerate(("h1", "h2"), start=1):
        nodes[name] = Node.of(name, "linux", image=image, exec=(f"ip addr add 10.9.0.{i}/24 dev eth1",))
        ends[name] = [LinkEnd(link, "eth1", 1, vlan, names.host_port_name(lab_id, name, "eth1"))]
    return nodes, ends


def _ping(client: docker.DockerClient, container: str, address: str) -> bool:
    code, _ = client.containers.get(container).exec_run(["ping", "-c", "2", "-W", "2", address])
    return code == 0


def _bring_up(
    provider: DockerProvider, lab_id: str, nodes: dict[str, Node], ends: dict[str, list[LinkEnd]]
) -> None:
    for node in nodes.values():
        provider.create_node(lab_id, node, ends[node.name])
    for node in nodes.values():
        provider.wire_node(lab_id, node, ends[node.name])
        provider.wait_ready(lab_id, node)
        provider.run_post_boot(lab_id, node)


def test_link_survives_a_restart_and_remove_node_takes_its_port(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
    ovs: object,
) -> None:
    lab = lab_factory()
    nodes, ends = _pair(lab, linux_image)
    _bring_up(provider, lab, nodes, ends)
    h1 = names.container_name(lab, "h1")
    assert _ping(docker_client, h1, "10.9.0.2")
    code, output = docker_client.containers.get(h1).exec_run(["cat", "/proc/sys/kernel/hostname"])
    assert output.decode().strip() == "h1"

    # A stopped node is started again by create_node and re-wired by wire_node.
    docker_client.containers.get(h1).stop(timeout=1)
    _bring_up(provider, lab, {"h1": nodes["h1"]}, ends)
    assert _ping(docker_client, h1, "10.9.0.2")

    ports = {p.name: p for p in network.bridge_ports().values() if p.lab_id == lab}
    assert set(ports) == {ends["h1"][0].port_name, ends["h2"][0].port_name}
    assert {p.tag for p in ports.values()} == {ends["h1"][0].vlan}

    report = provider.remove_node(lab, "h1")
    assert report.ok, report.errors
    assert report.removed["ovs-ports"] == [ends["h1"][0].port_name]
    remaining = {p.name for p in network.bridge_ports().values() if p.lab_id == lab}
    assert remaining == {ends["h2"][0].port_name}

    assert labs.destroy_lab(lab).ok
    assert leftovers(lab) == {}
