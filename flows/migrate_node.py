"""migrate-node: move a running node of a multi-host lab to another host (DESIGN.md,
"Moving nodes").

A VM moves live: describe it on its host -> prepare the destination (VLANs for its links
there, the tunnels of links that will cross hosts, its disks) -> the other ends' tunnels ->
the switch (libvirt p2p live migration, non-shared storage) -> markers on its ports there,
the old tunnels go -> the lab's state records the new host. Make before break: every new
path exists before the switch; the old ones go after it. A failure before the switch
leaves the VM running where it was, with its links, and nothing where it was going.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from prefect import flow, get_run_logger

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.settings import get_settings
from lab.state import LabState, LinkRecord, NodeRecord
from tasks.fleet_plan import fleet_allocation
from tasks.hosts import allocate_vnis, read_hosts
from tasks.migration import placed_topology, remember_topology
from tasks.state import load_lab_state, publish_lab_state
from topology.placement import HostFacts
from vendors.catalog import get_vendor


class MigrationRefused(ArchetypeError):
    """The node cannot move as asked (nothing was changed)."""


@dataclass
class LinkMove:
    """What one link of the moving node becomes."""

    link: LinkRecord
    interface: str  # the moving node's end
    other_node: str
    other_host: str
    local_after: bool  # both ends on the destination afterwards
    other_interface: str = ""
    vni: int | None = None  # a new tunnel's VNI (links that cross hosts afterwards)


@dataclass
class SegmentMove:
    """What a LAN segment of the moving node becomes (a container's cold move): the hosts
    with members change, and so do the pairs of hosts joined by a tunnel."""

    link: LinkRecord
    interface: str  # the moving node's end
    marker_nodes: dict[str, str]  # each host with members afterwards -> its first member (its tunnels' marker)
    new_pairs: list[str]  # "host-a+host-b", sorted: joined afterwards, not before
    gone_pairs: list[str]
    vnis: dict[str, int] = field(default_factory=dict)  # new pair -> its VNI


@dataclass
class MovePlan:
    lab_id: str
    node: str
    source: HostFacts
    destination: HostFacts
    links: list[LinkMove] = field(default_factory=list)
    segments: list[SegmentMove] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)  # every host's data-plane address, as planned


class Laps:
    """A move's phases, each with its seconds (the ``timings`` of its result)."""

    def __init__(self, started: float) -> None:
        self.timings: dict[str, float] = {}
        self._lap = started

    def __call__(self, phase: str) -> float:
        now = time.monotonic()
        self.timings[phase] = round(now - self._lap, 2)
        self._lap = now
        return self.timings[phase]


def _host_step(lab_id: str, host: str, step: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one step on a host; its report, or MigrationError naming the host."""
    from flows.fleet import host_step

    report = host_step.fn(f"migrate-{step}", "migrate-step", host,
                          {"lab_id": lab_id, "host": host, "step": step, "args": args}, lab_id)
    if "error" in report:
        raise ArchetypeError(report["error"])
    return report


def plan_move(state: LabState, node: str, to_host: str, hosts: list[HostFacts]) -> MovePlan:
    """Where each link of the node goes; refuses (nothing changed) what cannot move."""
    records = {n.name: n for n in state.nodes}
    record = records.get(node)
    if record is None:
        raise MigrationRefused(f"lab {state.lab_id} has no node {node!r}")
    by_name = {h.name: h for h in hosts}
    source, destination = by_name.get(record.host or ""), by_name.get(to_host)
    if destination is None:
        raise MigrationRefused(f"no host {to_host!r} in the fleet (archetype hosts)")
    if source is None:
        raise MigrationRefused(f"node {node} is on host {record.host!r}, which is not in the fleet")
    if source.name == to_host:
        raise MigrationRefused(f"node {node} already runs on {to_host}")
    for host in (source, destination):
        if not host.alive:
            raise MigrationRefused(f"host {host.name} is not alive (its worker publishes no facts): nothing was moved")
        if not host.address:
            raise MigrationRefused(f"host {host.name} publishes no data-plane address")
    plan = MovePlan(state.lab_id, node, source, destination, addresses={h.name: h.address for h in hosts if h.address})
    for link in state.links:
        ends = [e.partition(":") for e in link.endpoints]
        mine = [iface for name, _, iface in ends if name == node]
        if not mine:
            continue
        if any(name == names.HOST_NODE for name, _, _ in ends):
            raise MigrationRefused(f"node {node} is on {link.id} (a host:IF end): moving such a node is not supported "
                                   "yet (deploy the lab again with its host: changed)")
        if names.is_segment_link(link.id):
            if record.provider == "libvirt":
                raise MigrationRefused(f"node {node} is a VM on LAN segment {link.id}: a live move of such a node is "
                                       "not supported yet (deploy the lab again with its host: changed)")
            plan.segments.append(_segment_move(link, node, mine[0], records, to_host))
            continue
        (other_node, _, other_interface), = [e for e in ends if e[0] != node] or [(node, "", mine[-1])]
        other_host = to_host if other_node == node else records[other_node].host or source.name
        plan.links.append(LinkMove(link, mine[0], other_node, other_host, local_after=other_host == to_host,
                                   other_interface=other_interface))
    return plan


def _segment_move(link: LinkRecord, node: str, interface: str, records: dict[str, NodeRecord],
                  to_host: str) -> SegmentMove:
    def marker_nodes(moved: bool) -> dict[str, str]:
        first: dict[str, str] = {}
        for end in link.endpoints:
            member = end.partition(":")[0]
            first.setdefault(to_host if moved and member == node else records[member].host or "", member)
        return first

    def pairs(hosts: dict[str, str]) -> set[str]:
        return {f"{a}+{b}" for a, b in combinations(sorted(hosts), 2)}

    before, after = marker_nodes(False), marker_nodes(True)
    return SegmentMove(link, interface, after, sorted(pairs(after) - pairs(before)), sorted(pairs(before) - pairs(after)))


def _ends_on_destination(plan: MovePlan, kind: str, vlans: dict[str, int]) -> list[dict[str, Any]]:
    vendor = get_vendor(kind)
    ends = []
    for move in plan.links:
        port = vendor.interfaces.port_of(move.interface)
        ends.append({"link_id": move.link.id, "interface": move.interface, "port": port,
                     "vlan": vlans[move.link.id],
                     "port_name": names.host_port_name(plan.lab_id, plan.node, move.interface)})
    return ends


def _keep_on_source(state: LabState, plan: MovePlan) -> list[str]:
    """The lab's links that still have an end on the source host after the move."""
    hosts = {n.name: n.host for n in state.nodes}
    hosts[plan.node] = plan.destination.name
    return sorted(link.id for link in state.links
                  if any(hosts.get(e.partition(":")[0]) == plan.source.name for e in link.endpoints))


@flow(name="migrate-node", flow_run_name="migrate-node/{lab}/{node}")
def migrate_node(lab: str, node: str, to_host: str) -> dict[str, Any]:
    """Move a running node of a lab to another host of the fleet: a VM live (it is not
    rebooted), keeping its links.

    Args:
        lab: the lab id.
        node: the node's name.
        to_host: the host it moves to (archetype hosts).
    """
    problems = []
    if not names.is_valid_lab_id(lab):
        problems.append(f"lab: invalid lab id {lab!r}")
    if not names.is_valid_node_name(node):
        problems.append(f"node: invalid node name {node!r}")
    if not names.is_valid_host_name(to_host):
        problems.append(f"to_host: invalid host name {to_host!r}")
    if problems:
        raise TopologyError(problems)
    started = time.monotonic()
    state = load_lab_state(lab)
    if state is None or not state.nodes:
        raise MigrationRefused(f"no lab {lab!r} is known (deploy it first)")
    hosts = read_hosts()
    plan = plan_move(state, node, to_host, hosts)
    record = next(n for n in state.nodes if n.name == node)
    if record.provider == "libvirt" and _runs_on(hosts, lab, node) == to_host:
        return _adopt(state, plan, record, started)
    with fleet_allocation():  # the new tunnels' VNIs are the lab's, in its published state, only at the end
        if record.provider != "libvirt":
            return _move_cold(state, plan, record, started)
        return _move_live(state, plan, record, started)


def _move_live(state: LabState, plan: MovePlan, record: NodeRecord, started: float) -> dict[str, Any]:
    """A VM: describe, prepare (and the other ends' tunnels), send, finish; see the module."""
    logger = get_run_logger()
    settings = get_settings()
    lab, node = plan.lab_id, plan.node
    crossing = _number_crossing(plan, state)
    src, dst = plan.source, plan.destination
    logger.info("moving %s of %s: %s -> %s; links: %s", node, lab, src.name, dst.name,
                ", ".join(f"{m.link.id} ({'local' if m.local_after else f'VNI {m.vni}'})" for m in plan.links))
    timed = Laps(started)
    timed("plan")
    timings = timed.timings

    # the other ends' new tunnels need nothing from the source or the destination: made meanwhile
    other_tunnels: dict[str, list[dict[str, Any]]] = {}
    for move in crossing:
        other_tunnels.setdefault(move.other_host, []).append(
            {"link_id": move.link.id, "node": move.other_node, "vni": move.vni, "remote": dst.address,
             "vlan": move.link.vlans.get(move.other_host, move.link.vlan)})
    tunnelling = {host: _submit_step(lab, host, "tunnels", {"tunnels": tunnels}) for host, tunnels in other_tunnels.items()}
    described: dict[str, Any] | None = None
    prepared: dict[str, Any] | None = None
    finishing = None
    made_tunnels: dict[str, list[str]] = {}
    try:
        try:
            described = _host_step(lab, src.name, "describe", {"node": node})
            timed("describe")
            links_here = [
                {"link_id": m.link.id, "port": names.host_port_name(lab, node, m.interface),
                 "vlan": m.link.vlans.get(dst.name) if m.local_after else None,
                 "tunnel": None if m.local_after else {"vni": m.vni, "remote": _address_of(m.other_host, plan)}}
                for m in plan.links
            ]
            prepared = _host_step(lab, dst.name, "prepare", {"plan": described["plan"], "seed": described["seed"],
                                                             "links": links_here})
            timed("prepare")
        finally:
            failures = []
            for host, future in tunnelling.items():
                report = _step_report(future)
                if "error" in report:
                    failures.append(report["error"])
                else:
                    made_tunnels[host] = report["devices"]
            if failures:
                raise ArchetypeError("; ".join(failures))
        timed("other ends' tunnels")
        # the destination's finish waits for the VM there: it is done as soon as the switch is,
        # while the source still cleans up
        finishing = _submit_step(lab, dst.name, "finish", {
            "node": node, "ends": _ends_on_destination(plan, record.kind, prepared["vlans"]),
            "old_devices": [names.vxlan_device_name(lab, m.link.id) for m in plan.links if m.local_after and m.link.vni],
            "arrival": {"uuid": described["plan"]["uuid"], "timeout": settings.migrate_timeout}})
        sent = _host_step(lab, src.name, "send", {
            "plan": described["plan"], "dest_uri": f"qemu+tcp://{dst.address}/system",
            "migration_uri": f"tcp://{dst.address}", "tags": prepared["tags"], "timeout": settings.migrate_timeout,
            "bandwidth_mib": settings.migrate_bandwidth_mib,
            "keep_links": _keep_on_source(state, plan),
        })
        timed("send")
    except BaseException as err:
        logger.error("the move of %s failed before the switch: %s; undoing on %s", node, err, dst.name)  # noqa: TRY400 - the error is re-raised with its traceback
        if finishing is not None:
            _call_off(lab, dst.name, "finish", finishing)
        _undo(lab, plan, described, prepared, made_tunnels)
        raise
    finished = _step_report(finishing)
    if "error" in finished or finished.get("arrived") is False:  # switched (send says so), not finished there
        raise ArchetypeError(f"node {node}: it was sent to {dst.name}, which did not finish taking it "
                             f"({finished.get('error') or 'not seen running there'}): `archetype migrate {lab} "
                             f"{node} --to {dst.name}` again finishes the move")
    timed("finish")
    _record_move(state, plan, prepared["vlans"])
    timed("record")
    errors = [*sent.get("errors", []), *finished.get("errors", [])]
    seconds = time.monotonic() - started
    downtime = sent.get("downtime_ms")
    logger.info("%s moved to %s in %.1f s (migration %.1f s, downtime %s ms, %s); steps: %s", node, dst.name, seconds,
                sent["seconds"], downtime, sent.get("downtime_source", "qemu"), timings)
    return {"lab_id": lab, "node": node, "from": src.name, "to": dst.name, "mode": "live",
            "seconds": round(seconds, 2), "downtime_seconds": None if downtime is None else downtime / 1000,
            "downtime_source": sent.get("downtime_source", "qemu"), "migration_seconds": round(sent["seconds"], 2),
            "timings": timings, "errors": errors}


def _submit_step(lab_id: str, host: str, step: str, args: dict[str, Any]) -> Any:
    """A host's step started beside the flow's own work (a future of its report)."""
    from flows.fleet import host_step

    return host_step.submit(f"migrate-{step}", "migrate-step", host,
                            {"lab_id": lab_id, "host": host, "step": step, "args": args}, lab_id)


def _call_off(lab_id: str, host: str, step: str, future: Any) -> None:
    """A step started beside the flow's work and no longer wanted: cancelled, and waited for."""
    from flows.fleet import cancel_host_step

    try:
        cancel_host_step(f"migrate-{step}", host)
    except Exception as err:  # noqa: BLE001 - it gives up on its own (its wait ends)
        get_run_logger().warning("could not cancel the %s step on %s: %s", step, host, err)
    _step_report(future)


def _step_report(future: Any) -> dict[str, Any]:
    future.wait()
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - the host is named in the error
        return {"error": str(err) or err.__class__.__name__}


def _runs_on(hosts: list[HostFacts], lab: str, node: str) -> str | None:
    """The alive host whose published facts list the node running (None: none says so)."""
    for host in hosts:
        if _listed_on(host, lab, node):
            return host.name
    return None


def _listed_on(host: HostFacts, lab: str, node: str) -> bool:
    return host.alive and host.runs(lab, node)


def _adopt(state: LabState, plan: MovePlan, record: NodeRecord, started: float) -> dict[str, Any]:
    """The node already runs on the destination: an earlier move switched and was killed
    before it finished. Finish it (markers, old tunnels, the state), move nothing."""
    logger = get_run_logger()
    logger.warning("%s already runs on %s (an earlier move did not finish): finishing it", plan.node,
                   plan.destination.name)
    with fleet_allocation():
        return _finish_adopted(state, plan, record, started)


def _finish_adopted(state: LabState, plan: MovePlan, record: NodeRecord, started: float) -> dict[str, Any]:
    _number_crossing(plan, state)
    ends = _ends_on_destination(plan, record.kind, {m.link.id: m.link.vlans.get(plan.destination.name)
                                                    if m.local_after else None for m in plan.links})
    old_devices = [names.vxlan_device_name(plan.lab_id, m.link.id) for m in plan.links if m.local_after and m.link.vni]
    finished = _host_step(plan.lab_id, plan.destination.name, "finish",
                          {"node": plan.node, "ends": ends, "old_devices": old_devices, "downtime": True})
    _record_move(state, plan, finished["vlans"])
    downtime = finished.get("downtime_ms")
    return {"lab_id": plan.lab_id, "node": plan.node, "from": plan.source.name, "to": plan.destination.name,
            "mode": "live", "seconds": round(time.monotonic() - started, 2),
            "downtime_seconds": None if downtime is None else downtime / 1000,
            "downtime_source": None if downtime is None else "qemu",
            "errors": [f"the node was already on {plan.destination.name}: an earlier move was finished",
                       *finished.get("errors", [])]}


def _number_crossing(plan: MovePlan, state: LabState) -> list[LinkMove]:
    """The links that cross hosts after the move, each with its new tunnel's VNI: one no
    tunnel of the lab holds, nor the link's own old one (the new tunnel never meets it); and
    the VNIs of the pairs of hosts a segment of the node newly joins (``SegmentMove.vnis``)."""
    crossing = [m for m in plan.links if not m.local_after]
    new_pairs = [f"{seg.link.id}@{pair}" for seg in plan.segments for pair in seg.new_pairs]
    if not crossing and not new_pairs:
        return crossing
    moving = {m.link.id for m in crossing}
    held = {link.id: link.vni for link in state.links if link.vni is not None and link.id not in moving}
    held |= {f"{link.id}@{pair}": vni for link in state.links for pair, vni in link.vnis.items()}
    held |= {f"{m.link.id}#before": m.link.vni for m in crossing if m.link.vni is not None}
    vnis = allocate_vnis(plan.lab_id, [*sorted(moving), *new_pairs, *held], held)
    for move in crossing:
        move.vni = vnis[move.link.id]
    for seg in plan.segments:
        seg.vnis = {pair: vnis[f"{seg.link.id}@{pair}"] for pair in seg.new_pairs}
    return crossing


def _address_of(host: str, plan: MovePlan) -> str:
    address = plan.addresses.get(host)
    if not address:
        raise MigrationRefused(f"host {host} publishes no data-plane address")
    return address


def _undo(lab: str, plan: MovePlan, described: dict | None, prepared: dict | None,
          made_tunnels: dict[str, list[str]]) -> None:
    """What the move made goes: the destination's part (a prepare that failed undid its own),
    the other ends' new tunnels."""
    logger = get_run_logger()
    steps = []
    if described is not None and prepared is not None:
        steps.append((plan.destination.name, "abort", {"plan": described["plan"], "made": prepared["made"],
                                                       "devices": prepared["devices"],
                                                       "keep_links": prepared["had_links"]}))
    steps += [(host, "untunnel", {"devices": devices}) for host, devices in made_tunnels.items() if devices]
    for host, step, args in steps:
        try:
            _host_step(lab, host, step, args)
        except Exception as err:  # noqa: BLE001 - the next migrate or deploy of the lab cleans up
            logger.error("undo on %s (%s) failed: %s", host, step, err)  # noqa: TRY400 - one line is the story


def _record_move(state: LabState, plan: MovePlan, vlans: dict[str, int]) -> None:
    """The lab's state: the node's new host, each link's VNI and per-host tags."""
    nodes: dict[str, NodeRecord] = {n.name: n for n in state.nodes}
    nodes[plan.node].host = plan.destination.name
    for move in plan.links:
        link = move.link
        if move.other_host != plan.source.name:  # the source has no end of it any more
            link.vlans.pop(plan.source.name, None)
        link.vlans[plan.destination.name] = vlans[link.id]
        link.vni = None if move.local_after else move.vni
        link.vlan = vlans[link.id] if move.local_after else link.vlan
    for seg in plan.segments:
        seg.link.vlans[plan.destination.name] = vlans[seg.link.id]
        if plan.source.name not in seg.marker_nodes:
            seg.link.vlans.pop(plan.source.name, None)
        seg.link.vnis = {pair: vni for pair, vni in {**seg.link.vnis, **seg.vnis}.items() if pair not in seg.gone_pairs}
    publish_lab_state(state)
    _remember_host(state.lab_id, plan.node, plan.destination.name)
    from tasks.fleet_plan import reroute_node

    reroute_node(state, plan.node, plan.destination.address)  # its management address, routed to its new host


def _remember_host(lab_id: str, node: str, host: str) -> None:
    """The placed topology follows the move (a later cold move converges from it)."""
    import yaml

    text = placed_topology(lab_id)
    if text is None:
        return
    document = yaml.safe_load(text)
    document["topology"]["nodes"][node]["host"] = host
    remember_topology(lab_id, yaml.safe_dump(document, sort_keys=False))


# Containers: cold ---------------------------------------------------------------------------

def _move_cold(state: LabState, plan: MovePlan, record: NodeRecord, started: float) -> dict[str, Any]:
    """A container: made again on the destination from its running config, configured there
    with its ports down while it still runs on the source (tasks.cold_move); then the switch
    (the old one goes, the links follow, the new one's ports come up). Down: the switch."""
    import yaml

    logger = get_run_logger()
    lab, node, src, dst = state.lab_id, plan.node, plan.source, plan.destination
    document = _placed_document(state)
    entry = document["topology"]["nodes"][node]
    if entry.get("binds"):
        raise MigrationRefused(f"node {node} binds host files: a cold move does not carry them")
    timed = Laps(started)
    timed("plan")
    if not _listed_on(src, lab, node) and _listed_on(dst, lab, node):
        # a move cut short in its switch (the old one gone, the new one there): finish it
        logger.warning("%s no longer runs on %s and runs on %s: finishing an earlier move", node, src.name, dst.name)
        extracted = {"config": entry.get("startup-config") or "", "macs": {}}
    else:
        extracted = _host_step(lab, src.name, "extract", {"node": node, "kind": record.kind})
    entry["host"], entry["startup-config"] = dst.name, extracted["config"]
    moved_text = yaml.safe_dump(document, sort_keys=False)
    _number_crossing(plan, state)
    timed("extract")
    staged = _host_step(lab, dst.name, "stage", {
        "topology": moved_text, "node": node, "macs": extracted["macs"],
        "addresses": {n.name: n.mgmt_ipv4 for n in state.nodes if n.mgmt_ipv4},
        "new_here": not any(n.host == dst.name for n in state.nodes),
        "links": [*({"link_id": m.link.id, "interface": m.interface,
                     "vlan": m.link.vlans.get(dst.name) if m.local_after else None} for m in plan.links),
                  *({"link_id": seg.link.id, "interface": seg.interface, "vlan": seg.link.vlans.get(dst.name)}
                    for seg in plan.segments)],
        "tunnels": _staged_tunnels(plan),
    })
    timed("stage")
    errors = _switch(state, plan, staged)
    downtime = timed("switch")
    _record_move(state, plan, staged["vlans"])
    remember_topology(lab, moved_text)
    timed("record")
    seconds = time.monotonic() - started
    logger.info("%s moved cold to %s in %.1f s: configured there in %.1f s before the switch, down %.2f s; steps: %s",
                node, dst.name, seconds, staged["ready_seconds"], downtime, timed.timings)
    return {"lab_id": lab, "node": node, "from": src.name, "to": dst.name, "mode": "cold",
            "seconds": round(seconds, 2), "downtime_seconds": downtime, "downtime_source": "measured",
            "timings": timed.timings, "errors": errors}


def _staged_tunnels(plan: MovePlan) -> list[dict[str, Any]]:
    """The destination's ends of the node's new tunnels, made before the switch (their other
    ends, made at the switch, are what lets traffic through)."""
    dst = plan.destination.name
    tunnels = [{"link_id": m.link.id, "node": plan.node, "vni": m.vni, "remote": _address_of(m.other_host, plan)}
               for m in plan.links if not m.local_after]
    for seg in plan.segments:
        for pair, vni in seg.vnis.items():
            for here, other in _both_ways(pair):
                if here != dst:
                    continue
                tunnels.append({"link_id": seg.link.id, "node": seg.marker_nodes[dst], "vni": vni,
                                "remote": _address_of(other, plan), "peer": other})
    return tunnels


def _placed_document(state: LabState) -> dict[str, Any]:
    import yaml

    text = placed_topology(state.lab_id)
    if text is None:
        raise MigrationRefused(f"lab {state.lab_id}: its placed topology is not on the server (deployed before "
                               "moves existed?): deploy it again, then move the node")
    return yaml.safe_load(text)


def _switch(state: LabState, plan: MovePlan, staged: dict[str, Any]) -> list[str]:
    """The source lets the old node go first (a failure there undoes the destination: the
    node runs where it was); then every other host switches at once. Returns what failed
    after the old node was gone (the node has moved; leftovers are reported)."""
    lab = state.lab_id
    steps = _cutovers(state, plan, staged)
    try:
        left = _host_step(lab, plan.source.name, "cutover", steps.pop(plan.source.name))
    except BaseException as err:
        get_run_logger().error("the switch of %s failed on %s: %s; undoing on %s", plan.node, plan.source.name,  # noqa: TRY400 - re-raised
                               err, plan.destination.name)
        _host_step(lab, plan.destination.name, "unstage", {
            "node": plan.node, "devices": staged["devices"], "had_links": staged["had_links"],
            "leave": staged["new_here"]})
        raise
    reports = {host: _submit_step(lab, host, "cutover", args) for host, args in steps.items()}
    errors = [f"{plan.source.name}: {e}" for e in left.get("errors", [])]
    for host, future in reports.items():
        report = _step_report(future)
        errors += [f"{host}: {e}" for e in ([report["error"]] if "error" in report else report.get("errors", []))]
    return errors


def _cutovers(state: LabState, plan: MovePlan, staged: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each host's part of the switch (tasks.cold_move ``cutover``)."""
    lab, node, src, dst = state.lab_id, plan.node, plan.source.name, plan.destination.name
    hosts = {n.name: n.host for n in state.nodes}
    steps: dict[str, dict[str, Any]] = {src: {"remove_node": node, "keep_links": _keep_on_source(state, plan),
                                              "leave": not any(h == src for n, h in hosts.items() if n != node)},
                                        dst: {"ports_up": [], "old_devices": []}}
    for move in plan.links:
        other = steps.setdefault(move.other_host, {})
        port = names.host_port_name(lab, node, move.interface)
        if move.link.state == "up":
            steps[dst]["ports_up"].append(port)
            if move.other_node != node:
                other.setdefault("peers", []).append(names.host_port_name(lab, move.other_node, move.other_interface))
        if move.local_after:  # its old tunnel to the source goes
            if move.link.vni:
                steps[dst]["old_devices"].append(names.vxlan_device_name(lab, move.link.id))
        else:  # the other end's tunnel now reaches the destination (replaced in place)
            other.setdefault("tunnels", []).append({
                "link_id": move.link.id, "node": move.other_node, "vni": move.vni, "remote": plan.destination.address,
                "vlan": move.link.vlans.get(move.other_host, move.link.vlan)})
    for seg in plan.segments:
        _segment_cutovers(plan, seg, steps)
    return steps


def _segment_cutovers(plan: MovePlan, seg: SegmentMove, steps: dict[str, dict[str, Any]]) -> None:
    """A segment's part of the switch: the node's port up; on each host, its tunnels of the
    pairs joined now (the destination made its own at the stage), and those of pairs no
    longer joined go (a source that leaves the segment lets them go with its links)."""
    lab, dst = plan.lab_id, plan.destination.name
    if seg.link.state == "up":
        steps[dst]["ports_up"].append(names.host_port_name(lab, plan.node, seg.interface))
    for pair, vni in seg.vnis.items():
        for here, there in _both_ways(pair):
            if here != dst:
                steps.setdefault(here, {}).setdefault("tunnels", []).append({
                    "link_id": seg.link.id, "node": seg.marker_nodes[here], "vni": vni,
                    "remote": _address_of(there, plan), "vlan": seg.link.vlans[here], "peer": there})
    for pair in seg.gone_pairs:
        for here, there in _both_ways(pair):
            if here in seg.marker_nodes:  # still on the segment
                steps.setdefault(here, {}).setdefault("old_devices", []).append(
                    names.vxlan_device_name(lab, f"{seg.link.id}@{there}"))


def _both_ways(pair: str) -> list[tuple[str, str]]:
    a, b = pair.split("+")
    return [(a, b), (b, a)]

