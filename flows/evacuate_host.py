"""evacuate-host and reclaim-host: a lost host's labs (DESIGN.md, "Draining and losing hosts").

evacuate-host (the coordinator): the host is lost -> every known lab whose record puts a
node on it -> that lab deployed again from its placed topology, a deploy-lab child run
(a deploy re-places the nodes of a lost host on live hosts, from their saved configs, and
remakes their links) -> where each node went.

reclaim-host (the host's worker, when it starts, before it serves): the labs' records on the
server -> this host's copies of nodes that moved away while it was lost (or of labs destroyed
meanwhile) are removed, so that nothing of a lab runs twice.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from flows.slices import destroy_slice
from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.settings import get_settings
from tasks.fleet_plan import route_lab
from tasks.hosts import read_hosts
from tasks.lost import copies_here, remove_copies, stale_here
from tasks.migration import placed_topology
from tasks.state import known_lab_ids, load_lab_state


@flow(name="evacuate-host", flow_run_name="evacuate-host/{host}")
def evacuate_host(host: str) -> dict[str, Any] | Failed:
    """Bring the nodes of a lost host up on live hosts: each lab with nodes there is
    deployed again (a deploy-lab child run), its lost nodes from their saved configs (the
    lab's configs folder, `archetype configs`), else from the topology. When the host comes
    back, its worker removes its stale copies before serving.

    Args:
        host: the lost host (archetype hosts).
    """
    from flows.deploy_lab import deploy_lab

    started = time.monotonic()
    if not names.is_valid_host_name(host):
        raise TopologyError([f"host: invalid host name {host!r}"])
    hosts = {h.name: h for h in read_hosts()}
    if host not in hosts:
        raise TopologyError([f"host: no host {host!r} in the fleet (known: {', '.join(sorted(hosts)) or 'none'})"])
    if not hosts[host].lost:
        raise ArchetypeError(f"host {host} is not lost (heard from at {hosts[host].updated_at}): "
                             f"`archetype hosts drain {host}` moves its nodes while it runs")
    labs = [lab_id for lab_id in known_lab_ids() if _has_node_on(lab_id, host)]
    get_run_logger().info("evacuating %s: %s", host, ", ".join(labs) or "no lab has a node there")
    moves, errors = [], []
    for lab_id in labs:
        text = placed_topology(lab_id)
        if text is None:
            errors.append(f"lab {lab_id}: its placed topology is not on the server: deploy it again from its file")
            continue
        before = {n.name for n in load_lab_state(lab_id).nodes if n.host == host}
        outcome = deploy_lab(topology=text, return_state=True)
        if not outcome.is_completed():
            errors.append(f"lab {lab_id}: {outcome.message}")
        route_lab(lab_id)  # the coordinator's way to the re-placed nodes, wherever the deploy ran
        after = load_lab_state(lab_id)
        moves += [{"lab_id": lab_id, "node": n.name, "from": host, "to": n.host, "state": n.shown_state}
                  for n in after.nodes if n.name in before]
    result = {"host": host, "moves": moves, "errors": errors, "seconds": round(time.monotonic() - started, 2)}
    if errors:
        return Failed(message=f"evacuation of {host}: " + "; ".join(errors)[:1000], data=result)
    return result


def _has_node_on(lab_id: str, host: str) -> bool:
    state = load_lab_state(lab_id)
    return state is not None and any(n.host == host for n in state.nodes)


def _reclaim_run_name() -> str:
    return f"reclaim-host/{get_settings().host_name}"


@flow(name="reclaim-host", flow_run_name=_reclaim_run_name)
def reclaim_host() -> dict[str, Any] | Failed:
    """This host's copies of nodes that moved away while it was lost, or of labs destroyed
    meanwhile, removed (run by the host's worker before it serves), from the labs' records
    on the server: a lab with no node left here goes as a destroy-slice takes it; otherwise
    only the moved nodes go."""
    host = get_settings().host_name
    logger = get_run_logger()
    removed: dict[str, list[str]] = {}
    errors: list[str] = []
    for lab_id, here in copies_here().items():
        stale, whole = stale_here(lab_id, here, load_lab_state(lab_id), host)
        if not (stale or whole):
            continue
        logger.warning("lab %s: %s moved away or went while this host was lost: removing its copies here", lab_id,
                       ", ".join(stale) or "nothing of it runs here, what is left")
        if whole:  # as the coordinator's destroy would have it (a child run)
            outcome = destroy_slice(lab_id=lab_id, host=host, return_state=True)
            report = outcome.result(raise_on_failure=False)
            report = report if isinstance(report, dict) else {"errors": [str(report)]}
        else:
            report = remove_copies(lab_id, stale, here)
        removed[lab_id] = stale
        errors += [f"lab {lab_id}: {e}" for e in report.get("errors", [])]
    result = {"host": host, "removed": removed, "errors": errors}
    if result["errors"]:
        return Failed(message="; ".join(result["errors"])[:1000], data=result)
    return result
