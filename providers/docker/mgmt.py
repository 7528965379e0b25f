"""A lab's management network: our own Linux bridge per lab (``providers.network.mgmt``),
which containers join with a veth each and VMs with their management NIC.

The subnet is chosen here: the topology's, or a free one from the ``mgmt_ipv4_pool``
setting (no docker network and no host route overlaps it). Node addresses are in the
lower half of the subnet (``topology.mgmt``). Labs deployed before the bridge was ours
have a docker network (found by its lab label): it is still found and removed by cleanup.
"""

from __future__ import annotations

import ipaddress
import logging
import zlib

from docker import APIClient
from filelock import FileLock

from lab import names
from lab.errors import ProviderError
from lab.settings import get_settings
from providers.network import mgmt as bridges
from providers.network.mgmt_routes import local_networks
from topology.mgmt import MgmtNetwork, MgmtPlan, prefix_for

log = logging.getLogger("archetype.docker")

LOCK_TIMEOUT = 60.0


def plan_of(bridge: bridges.Bridge) -> MgmtPlan:
    return MgmtPlan(
        network=bridge.network, bridge=bridge.name, ipv4_subnet=bridge.ipv4_subnet, ipv4_gateway=bridge.ipv4_gateway,
        ipv6_subnet=bridge.ipv6_subnet, ipv6_gateway=bridge.ipv6_gateway,
    )


def ensure_network(api: APIClient, lab_id: str, wanted: MgmtNetwork, node_count: int) -> MgmtPlan:
    """The lab's management network, made if missing (a subnet given in ``wanted`` is
    used as it is). An existing one is kept as it is; a topology asking for another subnet
    than it has is told to destroy the lab first."""
    existing = bridges.find_bridge(lab_id)
    if existing is None:
        with FileLock(names.mgmt_subnet_lock_path(), timeout=LOCK_TIMEOUT):
            existing = bridges.find_bridge(lab_id) or _create(api, lab_id, wanted, node_count)
    else:
        existing = bridges.ensure_bridge(lab_id, existing.network, existing.ipv4_subnet, existing.ipv6_subnet)
    plan = plan_of(existing)
    for asked, have, what in ((wanted.ipv4_subnet, plan.ipv4_subnet, "ipv4-subnet"),
                              (wanted.ipv6_subnet, plan.ipv6_subnet, "ipv6-subnet"),
                              (wanted.network, plan.network, "network")):
        if asked is not None and asked != have:
            raise ProviderError(
                f"lab {lab_id}: its management network {plan.network} exists with {what} {have}, "
                f"the topology asks for {asked}: destroy the lab to change it"
            )
    return plan


def _create(api: APIClient, lab_id: str, wanted: MgmtNetwork, node_count: int) -> bridges.Bridge:
    name = wanted.network or names.mgmt_network_name(lab_id)
    used = _used_networks(api)
    v4 = wanted.ipv4_subnet or free_subnet(api, lab_id, node_count, used)
    for subnet in filter(None, (v4, wanted.ipv6_subnet)):
        net = ipaddress.ip_network(subnet)
        if net.version == 4 and (clash := [u for u in used if net.overlaps(u)]):
            raise ProviderError(f"lab {lab_id}: cannot create its management network {name} ({v4}): "
                                f"{subnet} overlaps {clash[0]}, in use on this host")
    try:
        made = bridges.ensure_bridge(lab_id, name, v4, wanted.ipv6_subnet)
    except Exception as err:
        bridges.remove_bridge(lab_id)
        raise ProviderError(f"lab {lab_id}: cannot create its management network {name} ({v4}): {err}") from err
    log.info("created management network %s (%s, bridge %s)", name, v4, made.name)
    return made


def free_subnet(api: APIClient, lab_id: str, node_count: int,
                used: list[ipaddress.IPv4Network] | None = None) -> str:
    """A subnet of the pool that no docker network and no host route overlaps. The search
    starts at a place given by the lab id, so a lab usually gets the same subnet again."""
    pool = ipaddress.ip_network(get_settings().mgmt_ipv4_pool)
    prefix = max(prefix_for(node_count), pool.prefixlen)
    candidates = list(pool.subnets(new_prefix=prefix))
    used = _used_networks(api) if used is None else used
    start = zlib.crc32(lab_id.encode()) % len(candidates)
    for i in range(len(candidates)):
        subnet = candidates[(start + i) % len(candidates)]
        if not any(subnet.overlaps(other) for other in used):
            return str(subnet)
    raise ProviderError(f"lab {lab_id}: no free /{prefix} left in the management pool {pool} "
                        "(setting mgmt_ipv4_pool)")


def _used_networks(api: APIClient) -> list[ipaddress.IPv4Network]:
    used = []
    for network in api.networks():
        for pool in (network.get("IPAM") or {}).get("Config") or []:
            subnet = pool.get("Subnet")
            if subnet and ipaddress.ip_network(subnet).version == 4:
                used.append(ipaddress.ip_network(subnet))
    used.extend(local_networks())  # our bridges' subnets among them (not the fleet's routes to nodes)
    return used
