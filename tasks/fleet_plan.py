"""A fleet lab's plan on the server: the fleet's allocation lease, the lab's one management
subnet, and the coordinator host's routes to its nodes.

The lease is a Prefect global concurrency limit of one slot (``ALLOCATION_LIMIT``), made on
first use. The coordinator holds it from reading what the other labs hold to publishing the
lab's state with its own choice (VNIs, subnet, addresses), so two labs deployed at once over
the fleet never choose the same. The lease expires by itself (``LEASE_SECONDS``) when its
holder dies: a killed deploy never blocks the fleet.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.client.orchestration import get_client

from lab import names
from lab.errors import ArchetypeError
from lab.settings import get_settings
from lab.state import LabState
from topology import Lab
from topology.fleet_plan import Taken, pick_subnet, with_addresses

ALLOCATION_LIMIT = "archetype-fleet-allocation"
LEASE_SECONDS = 60.0  # renewed while held; a dead holder's slot comes back after it
WAIT_SECONDS = 300.0  # an allocation takes well under a second: waiting this long means trouble


@contextmanager
def fleet_allocation() -> Iterator[None]:
    """Hold the fleet's allocation lease (one holder at a time over the server)."""
    from prefect.concurrency.sync import concurrency

    _ensure_limit()
    try:
        lease = concurrency(ALLOCATION_LIMIT, occupy=1, timeout_seconds=WAIT_SECONDS, lease_duration=LEASE_SECONDS,
                            strict=True)
        lease.__enter__()
    except TimeoutError as err:
        raise ArchetypeError(f"the fleet's allocation lease ({ALLOCATION_LIMIT}) was not free within "
                             f"{WAIT_SECONDS:.0f} s: another deploy holds it") from err
    try:
        yield
    finally:
        lease.__exit__(None, None, None)


def _ensure_limit() -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(ALLOCATION_LIMIT)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another coordinator made it first
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=ALLOCATION_LIMIT, limit=1))


def subnets_in_use(others: list[LabState]) -> list[Taken]:
    """The management subnets the other known labs of the fleet hold."""
    return [Taken(ipaddress.ip_network(s.mgmt_ipv4_subnet), f"lab {s.lab_id}") for s in others if s.mgmt_ipv4_subnet]


def plan_mgmt(lab: Lab, previous: LabState | None) -> Lab:
    """The lab with its one management subnet (in ``lab.mgmt``) and every node's address,
    chosen here for every host: the topology's subnet, else the one it had, else a free one
    of the pool that no other lab of the fleet and no route of this host overlaps."""
    from dataclasses import replace

    from providers.network.mgmt_routes import local_networks
    from tasks.hosts import other_labs

    own_bridge = names.mgmt_bridge_name(lab.id)  # the coordinator may be one of the lab's hosts
    taken = subnets_in_use(other_labs(lab.id)) + [Taken(n, "a route of the coordinator host")
                                                  for n in local_networks(except_device=own_bridge, node_routes=False)]
    subnet = pick_subnet(lab.id, len(lab.nodes), get_settings().mgmt_ipv4_pool, taken,
                         asked=lab.mgmt.ipv4_subnet, previous=previous.mgmt_ipv4_subnet if previous else None)
    remembered = {n.name: n.mgmt_ipv4 for n in previous.nodes if n.mgmt_ipv4} if previous else {}
    planned = with_addresses(replace(lab, mgmt=replace(lab.mgmt, ipv4_subnet=subnet)), subnet, remembered)
    get_run_logger().info("management subnet %s for every host of lab %s", subnet, lab.id)
    return planned


def routes_here() -> bool:
    """This process keeps the coordinator's routes (the user's command runs here), not a run
    of a fleet host's worker (lab.settings ``coordinator_routes``)."""
    return get_settings().coordinator_routes


def route_to_nodes(lab_id: str, subnet: str | None, routes: dict[str, str]) -> None:
    """This (coordinator) host's routes to the lab's nodes, exactly (a route to an address of
    the subnet not in ``routes`` goes); a failure is a warning: the lab runs, only its
    management addresses are not reached from here. None on a lab host's worker."""
    from providers.network.mgmt_routes import ensure_routes

    if not subnet or not routes_here():
        return
    logger = get_run_logger()
    try:
        problems = ensure_routes(subnet, routes)
    except Exception as err:  # noqa: BLE001 - never fail a deploy for the way to it
        problems = [str(err)]
    for problem in problems:
        logger.warning("lab %s: management address not reachable from this host: %s", lab_id, problem)
    if not problems:
        logger.info("lab %s: %d management addresses routed from this host via their hosts", lab_id, len(routes))


def route_lab(lab_id: str) -> None:
    """The coordinator's routes to every node of the lab, from its record (the host each node
    runs on now) and the hosts' addresses: what the deploy makes, made again here at the end
    of moves that may have run elsewhere (a drain's, an evacuation's child runs)."""
    from tasks.hosts import read_hosts
    from tasks.state import load_lab_state

    if not routes_here():
        return
    try:
        state = load_lab_state(lab_id)
        address = {h.name: h.address for h in read_hosts()} if state and state.mgmt_ipv4_subnet else {}
    except Exception as err:  # noqa: BLE001 - never fail a drain for the way to its nodes
        get_run_logger().warning("lab %s: management routes not updated from here: %s", lab_id, err)
        return
    if state is not None and state.mgmt_ipv4_subnet:
        route_to_nodes(lab_id, state.mgmt_ipv4_subnet, mgmt_routes(state, address))


def mgmt_routes(state: LabState, address: dict[str, str | None]) -> dict[str, str]:
    """Each node's management address -> the address of the host its record puts it on."""
    return {n.mgmt_ipv4: via for n in state.nodes if n.mgmt_ipv4 and (via := address.get(n.host or ""))}


def unroute(lab_id: str, subnet: str | None) -> None:
    from providers.network.mgmt_routes import remove_routes

    if subnet and routes_here():
        try:
            remove_routes(subnet)
        except Exception as err:  # noqa: BLE001 - a route left is harmless, and the next deploy replaces it
            get_run_logger().warning("lab %s: routes to its management subnet %s not removed: %s", lab_id, subnet, err)


def reroute_node(state: LabState, node: str, address: str | None) -> None:
    """A node that moved to the host at ``address``: the route to its management address
    from here follows it, when the move runs where the user's command does (the coordinator:
    a migrate from the command line, a drain's moves in its own process). A move run by a
    fleet host's worker routes nothing there: the run that coordinates it does
    (``route_lab``, at the end of a drain or an evacuation)."""
    from providers.network.mgmt_routes import set_route

    record = next((n for n in state.nodes if n.name == node), None)
    if not (state.mgmt_ipv4_subnet and record and record.mgmt_ipv4 and address and routes_here()):
        return
    try:
        set_route(record.mgmt_ipv4, address)
    except Exception as err:  # noqa: BLE001 - never fail a move for the way to it
        get_run_logger().warning("%s: its management address %s is not routed from here: %s", node, record.mgmt_ipv4, err)
