"""A lab's management network: one docker bridge network per lab, which VMs join too.

The network has a subnet chosen by us (the topology's, or a free one from the
``mgmt_ipv4_pool`` setting), a Linux bridge with a name we know (``lab.names.
mgmt_bridge_name``: a VM's management NIC is a libvirt ``<interface type='bridge'>`` on it)
and an ``ip_range`` (docker's own allocations) in the upper half of the subnet, while node
addresses are in the lower half (``topology.mgmt``): docker never hands a VM's address to
a container. Found again by its lab label, never by its name alone.
"""

from __future__ import annotations

import ipaddress
import logging
import zlib
from typing import Any

from docker import APIClient
from filelock import FileLock

from lab import names
from lab.errors import ProviderError
from lab.settings import get_settings
from topology.mgmt import MgmtNetwork, MgmtPlan, docker_range, gateway, prefix_for

log = logging.getLogger("archetype.docker")

BRIDGE_OPTION = "com.docker.network.bridge.name"
LOCK_TIMEOUT = 60.0


def find_network(api: APIClient, lab_id: str) -> dict[str, Any] | None:
    """The lab's management network (by label), inspected; None if it has none."""
    found = api.networks(filters={"label": f"{names.LABEL_LAB}={lab_id}"})
    if not found:
        return None
    return api.inspect_network(found[0]["Id"])


def plan_of(network: dict[str, Any]) -> MgmtPlan:
    """What an existing network is: its name, bridge and subnets."""
    v4 = v6 = None
    for pool in (network.get("IPAM") or {}).get("Config") or []:
        subnet = pool.get("Subnet")
        if not subnet:
            continue
        if ipaddress.ip_network(subnet).version == 4 and v4 is None:
            v4 = (subnet, pool.get("Gateway") or gateway(subnet))
        elif ipaddress.ip_network(subnet).version == 6 and v6 is None:
            v6 = (subnet, pool.get("Gateway") or gateway(subnet))
    if v4 is None:
        raise ProviderError(f"docker network {network.get('Name')} has no IPv4 subnet")
    bridge = (network.get("Options") or {}).get(BRIDGE_OPTION) or f"br-{network['Id'][:12]}"
    return MgmtPlan(
        network=network["Name"], bridge=bridge, ipv4_subnet=v4[0], ipv4_gateway=v4[1],
        ipv6_subnet=v6[0] if v6 else None, ipv6_gateway=v6[1] if v6 else None,
    )


def ensure_network(api: APIClient, lab_id: str, wanted: MgmtNetwork, node_count: int) -> MgmtPlan:
    """The lab's management network, made if missing. An existing one is kept as it is; a
    topology asking for another subnet than it has is told to destroy the lab first."""
    existing = find_network(api, lab_id)
    if existing is None:
        with FileLock(names.mgmt_subnet_lock_path(), timeout=LOCK_TIMEOUT):
            existing = find_network(api, lab_id) or _create(api, lab_id, wanted, node_count)
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


def _create(api: APIClient, lab_id: str, wanted: MgmtNetwork, node_count: int) -> dict[str, Any]:
    name = wanted.network or names.mgmt_network_name(lab_id)
    clash = [n for n in api.networks(names=[name]) if n.get("Name") == name]
    if clash:
        owner = (clash[0].get("Labels") or {}).get(names.LABEL_LAB)
        raise ProviderError(
            f"lab {lab_id}: a docker network named {name} exists and is "
            f"{'lab ' + owner + chr(39) + 's' if owner else 'not Archetype' + chr(39) + 's'}: "
            "give the lab another mgmt.network"
        )
    v4 = wanted.ipv4_subnet or free_subnet(api, lab_id, node_count)
    pools = [{"Subnet": v4, "Gateway": gateway(v4), "IPRange": docker_range(v4)}]
    if wanted.ipv6_subnet:
        v6 = wanted.ipv6_subnet
        pools.append({"Subnet": v6, "Gateway": gateway(v6), "IPRange": docker_range(v6)})
    try:
        api.create_network(
            name,
            driver="bridge",
            check_duplicate=True,
            ipam={"Driver": "default", "Config": pools, "Options": {}},
            enable_ipv6=bool(wanted.ipv6_subnet),
            options={BRIDGE_OPTION: names.mgmt_bridge_name(lab_id)},
            labels={names.LABEL_LAB: lab_id, names.LABEL_PROVIDER: "docker"},
        )
    except Exception as err:  # docker's words (a pool overlapping another network...) are the story
        raise ProviderError(f"lab {lab_id}: cannot create its management network {name} ({v4}): {err}") from err
    log.info("created management network %s (%s, bridge %s)", name, v4, names.mgmt_bridge_name(lab_id))
    found = find_network(api, lab_id)
    if found is None:
        raise ProviderError(f"lab {lab_id}: its management network {name} vanished right after it was made")
    return found


def free_subnet(api: APIClient, lab_id: str, node_count: int) -> str:
    """A subnet of the pool that no docker network and no host route overlaps. The search
    starts at a place given by the lab id, so a lab usually gets the same subnet again."""
    pool = ipaddress.ip_network(get_settings().mgmt_ipv4_pool)
    prefix = max(prefix_for(node_count), pool.prefixlen)
    candidates = list(pool.subnets(new_prefix=prefix))
    used = _used_networks(api)
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
    used.extend(_host_routes())
    return used


def _host_routes() -> list[ipaddress.IPv4Network]:
    from pyroute2 import IPRoute

    routes = []
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=2):
            dst = route.get_attr("RTA_DST")
            if dst and route["dst_len"] > 0:
                routes.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False))
    return routes
