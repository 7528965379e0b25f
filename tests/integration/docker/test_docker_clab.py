"""containerlab behaviour on a real dockerd: prefixed container names (found by labels,
renamed when the prefix changes), a linux node writing its own net.* sysctls without
privileged mode (and not the host's), and an image that cannot be pulled."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace

import docker
import pytest

from lab import names
from lab.errors import ImageNotFoundError
from providers import labs
from providers.base import NodeState
from providers.docker import DockerProvider
from topology import Node

pytestmark = pytest.mark.docker


@pytest.fixture
def lab_id(provider: DockerProvider) -> Iterator[str]:
    lab = f"clabx-{secrets.token_hex(3)}"
    try:
        yield lab
    finally:
        report = labs.destroy_lab(lab)
        assert report.ok, report.errors


def _sh(client: docker.DockerClient, container: str, command: str) -> tuple[int, str]:
    code, output = client.containers.get(container).exec_run(["sh", "-c", command])
    return code, output.decode(errors="replace")


def test_prefix_names_the_container_and_labels_find_it(
    provider: DockerProvider, docker_client: docker.DockerClient, lab_id: str, linux_image: str
) -> None:
    r1 = f"{lab_id}-r1"  # unique even as a bare name (prefix "")
    node = Node.of(r1, "linux", image=linux_image, name_prefix="clab")
    status = provider.create_node(lab_id, node, [])
    assert status.runtime_name == f"clab-{lab_id}-{r1}"
    found = provider.node_status(lab_id, r1)  # by name only: found by its labels
    assert found.state is NodeState.RUNNING and found.runtime_name == f"clab-{lab_id}-{r1}"
    assert provider.connect_command(lab_id, node.ref)[3] == f"clab-{lab_id}-{r1}"  # a reference: by labels
    first = docker_client.containers.get(f"clab-{lab_id}-{r1}").id
    provider.stop_node(lab_id, r1)  # the controls (archetype node stop/start) find it by its labels too
    assert provider.node_status(lab_id, r1).state is NodeState.STOPPED
    provider.start_node(lab_id, r1)
    assert provider.node_status(lab_id, r1).state is NodeState.RUNNING

    again = provider.create_node(lab_id, replace(node, name_prefix=""), [])  # the prefix changed
    assert again.runtime_name == r1  # an empty prefix: the bare node name
    label = f"{names.LABEL_LAB}={lab_id}"
    assert [c.id for c in docker_client.containers.list(all=True, filters={"label": label})] == [first]

    report = provider.remove_node(lab_id, r1)
    assert report.ok and docker_client.containers.list(all=True, filters={"label": label}) == []


def test_a_linux_node_writes_its_net_sysctls_but_not_the_hosts(
    provider: DockerProvider, docker_client: docker.DockerClient, lab_id: str, linux_image: str
) -> None:
    node = Node.of("h1", "linux", image=linux_image)
    name = provider.create_node(lab_id, node, []).runtime_name
    info = docker_client.api.inspect_container(name)
    assert info["HostConfig"]["Privileged"] is False
    for command in ("sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv4.conf.all.arp_announce=2",
                    "sysctl -w net.ipv6.conf.all.forwarding=1", "ip link add br9 type bridge"):
        code, out = _sh(docker_client, name, command)
        assert code == 0, (command, out)
    code, out = _sh(docker_client, name, "sysctl -w kernel.domainname=clabx")
    assert code != 0, out  # the host's own sysctls stay read-only
    code, out = _sh(docker_client, name, "echo 1 > /proc/sys/vm/drop_caches")
    assert code != 0, out


def test_an_image_that_cannot_be_pulled_is_named(provider: DockerProvider, docker_client: docker.DockerClient,
                                                   lab_id: str) -> None:
    image = "registry.invalid/clabx/none:1"
    with pytest.raises(ImageNotFoundError, match="registry.invalid/clabx/none:1.*cannot be pulled"):
        provider.create_node(lab_id, Node.of("r1", "linux", image=image), [])
    label = f"{names.LABEL_LAB}={lab_id}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
