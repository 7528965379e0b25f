"""Network planning tasks: recover what a previous deploy reserved, then allocate VLANs."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lab import names
from lab.state import LabState
from providers import network, provider_of
from providers.base import LinkEnd, NodeState
from tasks.retry import retry_if_transient
from topology import Lab


@task(
    name="allocate-vlans",
    task_run_name="allocate-vlans/{lab.id}",
    retries=2,
    retry_delay_seconds=[1, 3],
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def allocate_vlans(lab: Lab, previous: LabState | None, remote_nodes: frozenset[str] = frozenset()) -> dict[str, int]:
    """Stale-network recovery, then allocation: a redeploy keeps the tags it had.
    ``remote_nodes``: nodes of the lab on other hosts (a cross-host link's far end is not
    stale because it is not here)."""
    logger = get_run_logger()
    network.ensure_bridge()
    # The state artifact is the memory; the host-local reservation stands in when the
    # artifact is missing (a run killed before publishing, or another Prefect backend).
    links = previous.links if previous is not None and previous.links else network.reserved_links(lab.id)
    recovered: dict[str, int] = {}
    if links:
        recovered = network.recover_allocation(lab.id, links, _node_exists(lab, remote_nodes))
        dropped = {link.id for link in links} - set(recovered)
        logger.info("recovered %d VLANs of the previous deploy, dropped %d stale", len(recovered), len(dropped))
    vlans = network.allocate_vlans(lab.id, [link.id for link in lab.links], recovered)
    logger.info("VLANs: %s", ", ".join(f"{link}={tag}" for link, tag in sorted(vlans.items())) or "none")
    return vlans


def _node_exists(lab: Lab, remote_nodes: frozenset[str] = frozenset()):
    def exists(node_name: str) -> bool:
        if node_name in remote_nodes or node_name == names.HOST_NODE:  # on another host; host:IF ends
            return True
        node = lab.nodes.get(node_name)
        if node is None:
            return False
        return provider_of(node).node_status(lab.id, node_name).state is not NodeState.MISSING

    return exists


def plan_link_ends(lab: Lab, vlans: dict[str, int]) -> dict[str, list[LinkEnd]]:
    """Each node's link ends, in port order, with their VLAN and host-side port name."""
    ends: dict[str, list[LinkEnd]] = {name: [] for name in lab.nodes}
    for name in lab.nodes:
        for link, end in lab.links_of(name):
            ends[name].append(
                LinkEnd(
                    link_id=link.id,
                    interface=end.interface,
                    port=end.port,
                    vlan=vlans[link.id],
                    port_name=names.host_port_name(lab.id, name, end.interface),
                )
            )
    return ends


def plan_host_ends(lab: Lab, vlans: dict[str, int]) -> list[LinkEnd]:
    """The ``host:IF`` ends: IF in the host's namespace, its peer an OVS port on the link's VLAN."""
    return [
        LinkEnd(
            link_id=link.id,
            interface=end.interface,
            port=end.port,
            vlan=vlans[link.id],
            port_name=names.host_port_name(lab.id, names.HOST_NODE, end.interface),
        )
        for link, end in lab.host_ends()
    ]


@task(name="wire-host-ends", task_run_name="wire-host-ends/{lab_id}", retries=2, retry_delay_seconds=[1, 3],
      retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def wire_host_ends(lab_id: str, ends: list[LinkEnd]) -> None:
    """containerlab's ``host:IF`` ends: veths in the host's namespace on their links' VLANs."""
    network.attach_host_ends(lab_id, ends)
    get_run_logger().info("host interfaces: %s", ", ".join(f"{e.interface}@vlan{e.vlan}" for e in ends))


@task(name="remove-stale-links", task_run_name="remove-stale-links/{lab.id}", retries=2, retry_delay_seconds=[1, 3],
      retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def remove_links_not_in(lab: Lab) -> list[str]:
    """A converging deploy disconnects the links its topology no longer has."""
    removed = network.release_links_not_in(lab.id, [link.id for link in lab.links])
    if removed:
        get_run_logger().info("removed the ports of links no longer in the topology: %s", ", ".join(removed))
    return removed


@task(name="wire-tunnels", task_run_name="wire-tunnels/{lab_id}", retries=2, retry_delay_seconds=[1, 3],
      retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE)
def wire_tunnels(lab_id: str, tunnels: list[dict], vlans: dict[str, int], local: str | None) -> list[str]:
    """The VXLAN devices of the lab's cross-host links on this host, exactly: ``tunnels``
    (link_id, node, vni, remote; all this host's part needs, from the coordinator), on the
    bridge with each link's local tag; the lab's other devices here go first (a link or
    segment that no longer reaches that host; their VNIs may be the new ones')."""
    from lab.errors import NetworkError
    from providers.network.vxlan import Tunnel, ensure_tunnels, remove_tunnels_not_in

    logger = get_run_logger()
    tunnels = [Tunnel(**t, vlan=vlans[t["link_id"]]) for t in tunnels]
    if tunnels and not local:
        raise NetworkError(f"lab {lab_id}: this host has no data-plane address (ARCHETYPE_DATA_ADDRESS)")
    removed = remove_tunnels_not_in(lab_id, [t.device(lab_id) for t in tunnels])
    if removed:
        logger.info("removed tunnels this host's part no longer has: %s", ", ".join(removed))
    devices = ensure_tunnels(lab_id, tunnels, local=local or "")
    if devices:
        logger.info("tunnels: %s", ", ".join(f"{t.link_id}=VNI {t.vni} to {t.remote}" for t in tunnels))
    return devices
