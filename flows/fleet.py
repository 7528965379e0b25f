"""Coordination of a lab across the hosts of a fleet (DESIGN.md, "Hosts and the control plane").

deploy: validate (done by the caller) -> place -> allocate a VNI per tunnel (a cross-host
link; a segment on several hosts: per pair of them, head-end replication) ->
publish the lab's state -> each host's slice as a child run of ``deploy-slice/<host>``, in
parallel (idempotency key per run/host/step, pickup and step timeouts) -> merge the hosts'
reports into the lab's state. Each slice wires its own ends of the cross-host links (a
VXLAN device per link and host; per segment and other host) and the ``host:IF`` ends of its
nodes (a segment's, on the host of its first node). A lab placed entirely on this very host runs in-process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from lab import config_errors, names
from lab.errors import ArchetypeError
from lab.settings import get_settings
from lab.state import LabState, LabStatus, LinkRecord, NodePhase, NodeRecord
from tasks.controls import keep_link_controls
from tasks.fleet_plan import fleet_allocation, plan_mgmt, route_to_nodes, unroute
from tasks.hosts import (
    allocate_vnis,
    child_error,
    publish_this_host,
    read_hosts,
    read_report,
    ready_for_vms,
    run_on_host,
)
from tasks.lost import recover_lost
from tasks.migration import remember_topology
from tasks.state import load_lab_state, publish_lab_state
from topology import Lab
from topology.fleet_plan import routes_to_nodes
from topology.placement import Crossing, HostFacts, crossings, place
from topology.slices import slice_document

__all__ = ["deploy_across_hosts", "destroy_across_hosts", "extract_across_hosts", "fleet_hosts", "publish_this_host", "ready_for_vms",
           "read_hosts"]


def fleet_hosts() -> list[HostFacts]:
    """The hosts sharing this Prefect server (none: the embedded single-host mode)."""
    if not os.environ.get("PREFECT_API_URL"):
        return []
    try:
        return read_hosts()  # a server without our variables: no host, a single-host lab
    except Exception as err:  # noqa: BLE001 - never deploy a fleet's lab here because the server did not answer
        raise ArchetypeError(f"cannot read the fleet's hosts from {os.environ['PREFECT_API_URL']}: {err}") from err


def _run_key(host: str, step: str) -> str:
    from prefect.runtime import flow_run

    return f"{flow_run.id}-{host}-{step}"


@task(name="host-step", task_run_name="{step}/{host}", cache_policy=NO_CACHE)
def host_step(step: str, flow_name: str, host: str, parameters: dict[str, Any], lab_id: str) -> dict[str, Any]:
    """One host's step: its child run, then its report (an error names the host)."""
    run = run_on_host(flow_name, host, parameters, key=_run_key(host, step))
    report = read_report(names.host_report_key(lab_id, step, host), run.id)
    error = child_error(run)
    if report is None:
        return {"error": f"host {host}: {error or 'no report from its step'}"}
    if error and not report.get("errors"):  # a failed step says why in its report already
        report.setdefault("errors", []).append(f"host {host}: {error}")
    return report


def cancel_host_step(step: str, host: str) -> bool:
    """Cancel this run's ``step`` on ``host`` (started by ``host_step``); False: none runs."""
    from tasks.hosts import cancel_child

    return cancel_child(_run_key(host, step))


def _on_hosts(step: str, flow_name: str, params: dict[str, dict[str, Any]], lab_id: str) -> dict[str, dict[str, Any]]:
    futures = {host: host_step.submit(step, flow_name, host, p, lab_id) for host, p in params.items()}
    reports: dict[str, dict[str, Any]] = {}
    for host, future in futures.items():
        future.wait()
        try:
            reports[host] = future.result()
        except Exception as err:  # noqa: BLE001 - the host is named in the error
            reports[host] = {"error": str(err) or err.__class__.__name__}
    return reports


# deploy --------------------------------------------------------------------------------


def deploy_across_hosts(lab: Lab, hosts: list[HostFacts], strict: bool = False) -> dict[str, Any] | Failed | None:
    """Deploy a placed lab through its hosts' slices; None when it all lands on this host
    (the caller then deploys in-process, as on a single host). ``strict``: as deploy-lab's,
    on every host."""
    logger = get_run_logger()
    previous = load_lab_state(lab.id)
    lab, _ = recover_lost(lab, hosts, previous)  # a lost host's nodes: re-placed, saved configs
    placement = place(lab, hosts)  # unplaceable: TopologyError, nothing created
    used = sorted(set(placement.values()))
    logger.info("placement: %s", ", ".join(f"{n}@{h}" for n, h in sorted(placement.items())))
    lost_hosts = {h.name for h in hosts if h.lost}  # each removes its part itself when back (reclaim-host)
    left = sorted({n.host for n in (previous.nodes if previous else []) if n.host} - set(used) - lost_hosts)
    if used == [get_settings().host_name] and not left:  # (a lab leaving other hosts: their part goes below)
        return None
    crossing = crossings(lab, placement)
    with fleet_allocation():  # one lab at a time over the fleet chooses its VNIs and subnet, and records them
        lab = plan_mgmt(lab, previous)  # one management subnet, every node's address
        vnis = allocate_vnis(lab.id, [c.key for c in crossing], _vnis_before(previous))  # the one VNI allocation
        state = LabState(
            lab_id=lab.id, status=LabStatus.ALLOCATED,
            nodes=[NodeRecord(name=n.name, kind=n.kind, provider=n.vendor.provider.value, host=placement[n.name],
                              runtime_name=names.container_name(lab.id, n.name, n.name_prefix) if n.vendor.provider.value == "docker"
                              else names.domain_name(lab.id, n.name), mgmt_ipv4=n.mgmt_ipv4)
                   for n in lab.nodes.values()],
            links=[LinkRecord(id=link.id, endpoints=[str(end) for end in link.ends], vlan=0, vni=vnis.get(link.id),
                              vnis={c.key.rpartition("@")[2]: vnis[c.key] for c in crossing if c.segment and c.link_id == link.id})
                   for link in lab.links],
        )
        keep_link_controls(previous, state)  # a link's state and impairment survive a redeploy, as on one host
        state.mgmt_ipv4_subnet = lab.mgmt.ipv4_subnet
        publish_lab_state(state)  # the VNIs are remembered before any tunnel exists
    address = {h.name: h.address for h in hosts}
    text, files = slice_document(lab, placement)
    remember_topology(lab.id, text)  # a container's cold move re-creates it from it (flows.migrate_node)
    params = {
        host: {"lab_id": lab.id, "host": host, "topology": text, "files": files,
               "tunnels": _tunnels_of(host, crossing, vnis, address), "strict": strict}
        for host in used
    }
    reports = _on_hosts("deploy", "deploy-slice", params, lab.id)  # each slice ends with exactly its tunnels
    if left:  # hosts the lab no longer uses: their part goes
        gone = _on_hosts("destroy", "destroy-slice", {h: {"lab_id": lab.id, "host": h} for h in left}, lab.id)
        state.errors += [r["error"] for r in gone.values() if "error" in r] + [e for r in gone.values() for e in r.get("errors", [])]
    _merge(state, reports)
    route_to_nodes(lab.id, lab.mgmt.ipv4_subnet, routes_to_nodes(lab, placement, address))  # from here
    state.status = LabStatus.FAILED if state.errors else LabStatus.DEPLOYED
    publish_lab_state(state)
    result = {
        "lab_id": lab.id,
        "nodes": [{"name": n.name, "kind": n.kind, "provider": n.provider, "state": n.shown_state,
                   "ready_seconds": n.ready_seconds, "host": n.host,
                   "config_errors": config_errors.as_json(n.config_errors)} for n in state.nodes],
        "links": [{"endpoints": link.endpoints, "vlan": link.vlan, "vlans": link.vlans, "vni": link.vni,
                   **({"vnis": link.vnis} if link.vnis else {})}
                  for link in state.links],
        "errors": state.errors,
    }
    if state.errors:
        return Failed(message=f"lab {lab.id}: " + "; ".join(state.errors)[:1000], data=result)
    return result


def _vnis_before(previous: LabState | None) -> dict[str, int]:
    """The VNIs a previous deploy gave, by crossing key (a redeploy keeps them)."""
    before: dict[str, int] = {}
    for link in previous.links if previous else []:
        if link.vni:
            before[link.id] = link.vni
        before.update({f"{link.id}@{pair}": vni for pair, vni in link.vnis.items()})
    return before


def _tunnels_of(host: str, crossing: list[Crossing], vnis: dict[str, int],
                address: dict[str, str | None]) -> list[dict[str, Any]]:
    """This host's ends of the lab's tunnels (a segment's: one per other host, named by it)."""
    tunnels = []
    for tunnel in crossing:
        if host not in tunnel.ends:
            continue
        peer = tunnel.peer_of(host)
        tunnels.append({"link_id": tunnel.link_id, "node": tunnel.ends[host], "vni": vnis[tunnel.key],
                        "remote": address[peer], **({"peer": peer} if tunnel.segment else {})})
    return tunnels


def _merge(state: LabState, reports: dict[str, dict[str, Any]]) -> None:
    nodes = {n.name: n for n in state.nodes}
    links = {_node_ends(link.endpoints): link for link in state.links}
    for host, report in reports.items():
        if "error" in report:
            state.errors.append(report["error"])
            for node in nodes.values():
                if node.host == host:
                    node.state, node.error = NodePhase.FAILED, report["error"]
            continue
        for entry in report.get("nodes", []):
            if entry["name"] in nodes:
                node = nodes[entry["name"]]
                node.state, node.failed_stage = NodeRecord.parse_state(entry["state"])
                node.ready_seconds = entry.get("ready_seconds")
                node.config_errors = config_errors.parse(entry.get("config_errors"))
        for entry in report.get("links", []):
            link = links.get(_node_ends(entry["endpoints"]))
            if link is not None:
                link.vlans[host] = entry["vlan"]
                link.vlan = link.vlan or entry["vlan"]
        state.errors += report.get("errors", [])


def _node_ends(endpoints: list[str]) -> frozenset[str]:
    """A link's ends on nodes: what names it in a host's report (a segment there may lack
    its host:IF ends, made on one host only)."""
    return frozenset(e for e in endpoints if not e.startswith(f"{names.HOST_NODE}:"))


# destroy and configs ----------------------------------------------------------------------


def destroy_across_hosts(lab_id: str, hosts: list[HostFacts]) -> dict[str, Any]:
    """Every alive host removes what it has of the lab; a host not alive is an error."""
    alive = [h.name for h in hosts if h.alive]
    reports = _on_hosts("destroy", "destroy-slice", {h: {"lab_id": lab_id, "host": h} for h in alive}, lab_id)
    removed: dict[str, list[str]] = {}
    errors: list[str] = []
    for host, report in reports.items():
        if "error" in report:
            errors.append(report["error"])
        for resource, items in report.get("removed", {}).items():
            removed.setdefault(resource, []).extend(f"{host}:{item}" for item in items)
        errors += [f"host {host}: {e}" for e in report.get("errors", [])]
    previous = load_lab_state(lab_id)
    unroute(lab_id, previous.mgmt_ipv4_subnet if previous else None)
    down = sorted({n.host for n in (previous.nodes if previous else []) if n.host} - set(alive))
    errors += [f"host {h} is not alive: its part of lab {lab_id} was not removed" for h in down]
    return {"lab_id": lab_id, "removed": removed, "errors": errors}


def extract_across_hosts(lab_id: str, folder: Path, hosts: list[HostFacts]) -> dict[str, Any] | None:
    """The configs of a lab on other hosts, written here; None when the lab is not on them."""
    state = load_lab_state(lab_id)
    used = sorted({n.host for n in (state.nodes if state else []) if n.host})
    if not used or used == [get_settings().host_name]:
        return None
    reports = _on_hosts("configs", "extract-slice", {h: {"lab_id": lab_id, "host": h} for h in used}, lab_id)
    from lab.private import private_dir, write_private

    private_dir(folder)
    configs: dict[str, dict[str, Any]] = {}
    for host, report in reports.items():
        if "error" in report:
            for node in (n for n in state.nodes if n.host == host):
                configs[node.name] = {"ok": False, "path": None, "error": report["error"], "host": host}
            continue
        for node, entry in report.get("configs", {}).items():
            path = None
            if entry.get("ok"):
                path = folder / f"{node}.cfg"
                write_private(path, entry["text"])  # root only (DESIGN.md, Security); the host published the artifact
            configs[node] = {"ok": bool(entry.get("ok")), "path": str(path) if path else None,
                             "error": entry.get("error"), "host": host}
    return {"lab_id": lab_id, "configs": dict(sorted(configs.items()))}
