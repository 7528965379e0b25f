"""The lab's management network on a real host: a subnet of its own per lab, static
addresses for containers (our veths on the lab's bridge), clear refusals (nothing made)
when a subnet cannot be had, and a destroy that leaves nothing of it."""

from __future__ import annotations

import ipaddress
import re
import secrets
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from lab import names
from lab.errors import ProviderError
from providers import labs
from providers.docker import DockerProvider
from providers.network import mgmt as mgmt_bridges
from providers.network.netlink import IPRoute, dump_links
from tests.support.reach import ping
from topology import Node
from topology.mgmt import MgmtNetwork

pytestmark = pytest.mark.docker


@pytest.fixture
def unique_lab_id() -> str:
    return f"mgmt-{secrets.token_hex(3)}"


def test_labs_get_subnets_of_their_own_and_containers_their_address(
    provider: DockerProvider, lab_factory: Callable[[], str], linux_image: str
) -> None:
    first, second = lab_factory(), lab_factory()
    a = provider.ensure_mgmt_network(first, MgmtNetwork(), 3)
    b = provider.ensure_mgmt_network(second, MgmtNetwork(), 3)
    assert not ipaddress.ip_network(a.ipv4_subnet).overlaps(ipaddress.ip_network(b.ipv4_subnet))
    assert a.bridge == names.mgmt_bridge_name(first)
    assert provider.ensure_mgmt_network(first, MgmtNetwork(), 3) == a  # found again, unchanged

    address = str(ipaddress.ip_network(a.ipv4_subnet).network_address + 7)
    node = Node.of("h1", "linux", image=linux_image, mgmt_ipv4=address, mgmt_prefixlen=24)
    provider.create_node(first, node, [])
    (lab,) = [found for found in provider.discover_labs() if found.lab_id == first]
    assert [(n.name, n.mgmt_ipv4) for n in lab.nodes] == [("h1", address)]


def test_a_subnet_taken_by_another_lab_is_refused(provider: DockerProvider, lab_factory: Callable[[], str]) -> None:
    first, second = lab_factory(), lab_factory()
    taken = provider.ensure_mgmt_network(first, MgmtNetwork(), 2).ipv4_subnet
    with pytest.raises(ProviderError, match="cannot create its management network"):
        provider.ensure_mgmt_network(second, MgmtNetwork(ipv4_subnet=taken), 2)
    assert mgmt_bridges.find_bridge(second) is None and second not in mgmt_bridges.bridge_labs()


def test_an_existing_lab_keeps_its_subnet(provider: DockerProvider, lab_factory: Callable[[], str]) -> None:
    lab_id = lab_factory()
    have = provider.ensure_mgmt_network(lab_id, MgmtNetwork(), 2).ipv4_subnet
    other = "10.213.254.0/24" if have != "10.213.254.0/24" else "10.213.253.0/24"
    with pytest.raises(ProviderError, match="destroy the lab to change it"):
        provider.ensure_mgmt_network(lab_id, MgmtNetwork(ipv4_subnet=other), 2)


MANY = 24  # enough for removals in parallel (docker's leak showed from 50 nodes on): modest for make test


def test_the_management_network_is_ours_and_a_destroy_leaves_nothing_of_it(
    provider: DockerProvider, lab_factory: Callable[[], str], linux_image: str, docker_client: docker.DockerClient
) -> None:
    """MANY containers on the lab's bridge (no docker network: no libnetwork, nothing of
    dockerd's to leak): each answers on its address from the host and from its neighbour, a
    container started again gets its address back, and a destroy leaves no bridge, no host
    veth, no outbound rule and no docker network."""
    lab_id = lab_factory()
    plan = provider.ensure_mgmt_network(lab_id, MgmtNetwork(), MANY)
    subnet = ipaddress.ip_network(plan.ipv4_subnet)
    address = {f"h{i:02d}": str(subnet.network_address + 2 + i) for i in range(MANY)}
    nodes = [Node.of(n, "linux", image=linux_image, mgmt_ipv4=a, mgmt_prefixlen=subnet.prefixlen) for n, a in address.items()]

    def bring_up(node: Node) -> None:
        provider.create_node(lab_id, node, [])
        provider.wire_node(lab_id, node, [])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bring_up, nodes))
    container = docker_client.containers.get(names.container_name(lab_id, "h00"))
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert docker_client.networks.list(filters={"label": f"{names.LABEL_LAB}={lab_id}"}) == []
    assert all(ping(a) for a in address.values()), "every node answers on its management address"
    done = container.exec_run(["ping", "-c", "1", "-W", "3", address["h01"]])
    assert done.exit_code == 0, done.output.decode()
    assert f"default via {plan.ipv4_gateway} dev eth0" in container.exec_run(["ip", "route"]).output.decode()
    assert {(n.name, n.mgmt_ipv4) for lab in provider.discover_labs() if lab.lab_id == lab_id for n in lab.nodes} \
        == set(address.items())
    assert _iptables_rules(lab_id) == 3  # masquerade, forward in, forward back

    container.stop(timeout=1)  # a stopped container's namespace goes with its veth...
    provider.start_node(lab_id, "h00")  # ...and a start makes it again
    assert ping(address["h00"])

    report = labs.destroy_lab(lab_id)
    assert not report.errors, report.errors
    assert mgmt_bridges.find_bridge(lab_id) is None
    assert lab_id not in mgmt_bridges.bridge_labs()
    with IPRoute() as ipr:
        left = [link.name for link in dump_links(ipr).values()
                if link.name in {plan.bridge, *(mgmt_bridges.port_name(lab_id, n) for n in address)}
                or lab_id in (link.alias or "")]
    assert left == []
    assert _iptables_rules(lab_id) == 0
    assert docker_client.networks.list(names=[names.mgmt_network_name(lab_id)]) == []


def _iptables_rules(lab_id: str) -> int:
    dump = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    marker = re.compile(rf'archetype-mgmt:{re.escape(lab_id)}"?(\s|$)')
    return sum(1 for line in dump.splitlines() if marker.search(line))
