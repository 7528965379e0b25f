"""The lab's management network on a real dockerd: a subnet of its own per lab, static
addresses for containers, and clear refusals (nothing made) when a subnet cannot be had."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable

import pytest

from lab import names
from lab.errors import ProviderError
from providers.docker import DockerProvider
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
    assert not [n for n in provider.api.networks(filters={"label": f"{names.LABEL_LAB}={second}"})]


def test_an_existing_lab_keeps_its_subnet(provider: DockerProvider, lab_factory: Callable[[], str]) -> None:
    lab_id = lab_factory()
    have = provider.ensure_mgmt_network(lab_id, MgmtNetwork(), 2).ipv4_subnet
    other = "10.213.254.0/24" if have != "10.213.254.0/24" else "10.213.253.0/24"
    with pytest.raises(ProviderError, match="destroy the lab to change it"):
        provider.ensure_mgmt_network(lab_id, MgmtNetwork(ipv4_subnet=other), 2)
