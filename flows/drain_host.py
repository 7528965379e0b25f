"""drain-host: take a host out of service without stopping its labs (DESIGN.md, "Draining
and losing hosts").

mark the host drained (placement skips it) -> every node of every known lab that the labs'
records put on it -> a host with room for each, all placed before any moves (a node that
cannot be placed stops the drain with its reason: nothing moved, and a mark this run set is
taken back) -> each node moved as a child run of migrate-node, one at a time (containers
cold, then VMs live, their links with them) -> what is left there of a lab that has no node
there any more goes (destroy-slice).

A drain killed halfway leaves each node on its old host or its new one: a move records
where its node goes before it makes anything there, and the drain's mark lists the labs it
moves. The next drain first converges those labs where a node does not run on the host its
record names (a cold move cut short), finishes a live move cut after its switch where the
node runs, and moves what is left.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.state import NodePhase
from tasks.fleet_plan import route_lab
from tasks.hosts import child_error, drain_record, read_hosts, read_report, run_on_host, set_drained
from tasks.migration import placed_topology
from tasks.state import known_lab_ids, load_lab_state
from topology import load_topology
from topology.placement import HostFacts, place_away


class DrainRefused(ArchetypeError):
    """A node of the host has nowhere to go (nothing was moved)."""


@flow(name="drain-host", flow_run_name="drain-host/{host}")
def drain_host(host: str, labs: list[str] | None = None) -> dict[str, Any] | Failed:
    """Mark a host drained (nothing new is placed there) and move each node of each lab on
    it to another host with room: a VM live, a container cold, with its links. The labs
    keep running. `archetype hosts undrain HOST` makes it schedulable again.

    Args:
        host: the host to drain (archetype hosts).
        labs: only these labs' nodes move now (empty: every lab's); the host is drained all
            the same, and a later drain moves the others.
    """
    logger = get_run_logger()
    started = time.monotonic()
    _fleet_host(host)
    bad = [lab_id for lab_id in labs or [] if not names.is_valid_lab_id(lab_id)]
    if bad:
        raise TopologyError([f"labs: invalid lab id {lab_id!r}" for lab_id in bad])
    record = drain_record(host)  # an earlier drain's, or None
    earlier = set(record.get("labs") or []) if record else set()
    set_drained(host, True, sorted(earlier))
    _finish_cut_moves(earlier, read_hosts())
    try:
        moves = plan_drain(host, read_hosts(), only=set(labs or []))
    except DrainRefused:
        if record is None:
            set_drained(host, False)  # nothing moved: the host is as it was
        raise
    set_drained(host, True, sorted(earlier | {lab_id for lab_id, _ in moves}))
    logger.info("draining %s: %s", host, ", ".join(f"{lab}/{node} -> {to}" for (lab, node), to in moves.items())
                or "nothing runs there")
    results, errors = [], []
    for (lab_id, node), to_host in moves.items():
        result = _move(lab_id, node, to_host)
        results.append(result)
        errors += [f"{lab_id}/{node}: {e}" for e in result.get("errors", [])]
    errors += _clear(host, sorted({lab_id for lab_id, _ in moves}))
    for lab_id in sorted({lab_id for lab_id, _ in moves}):  # from here, wherever each move ran
        route_lab(lab_id)
    result = {"host": host, "drained": True, "moves": results, "errors": errors,
              "seconds": round(time.monotonic() - started, 2)}
    if errors:  # the run ends Failed, its report as its result (draining again resumes)
        return Failed(message=f"drain of {host}: " + "; ".join(errors)[:1000], data=result)
    return result


def undrain_host(host: str) -> dict[str, Any]:
    """The host is schedulable again (its labs stay where the drain put them)."""
    _fleet_host(host)
    set_drained(host, False)
    return {"host": host, "drained": False}


def _fleet_host(host: str) -> list[HostFacts]:
    if not names.is_valid_host_name(host):
        raise TopologyError([f"host: invalid host name {host!r}"])
    hosts = read_hosts()
    if host not in {h.name for h in hosts}:
        raise TopologyError([f"host: no host {host!r} in the fleet (known: {', '.join(h.name for h in hosts) or 'none'})"])
    return hosts


def plan_drain(host: str, hosts: list[HostFacts], only: set[str] = frozenset()) -> dict[tuple[str, str], str]:
    """(lab, node) -> destination for every node the labs' records put on ``host``:
    containers first (a cold move converges the lab, which makes its networks on the
    destination: a VM's live move finds its management bridge there), then VMs. DrainRefused
    naming every node that cannot move, and why."""
    leaving, problems, moves = [], [], {}
    source = next((h for h in hosts if h.name == host), None)
    if source is not None and not source.alive:
        problems.append(f"host {host} is not alive (no facts published recently): its nodes cannot move live or "
                        "have their configs read")
    for lab_id in known_lab_ids():
        if only and lab_id not in only:
            continue
        state = load_lab_state(lab_id)
        here = [n for n in (state.nodes if state else []) if n.host == host]
        if not here:
            continue
        text = placed_topology(lab_id)
        if text is None:
            problems.append(f"lab {lab_id}: its placed topology is not on the server (deployed before moves "
                            "existed?): deploy it again, then drain")
            continue
        try:
            lab = load_topology(text)
        except TopologyError as err:
            problems += [f"lab {lab_id}: its placed topology: {problem}" for problem in err.problems]
            continue
        for record in here:
            node = lab.nodes.get(record.name)
            elsewhere = [h.name for h in hosts if h.alive and h.name != host and h.runs(lab_id, record.name)]
            if node is None:
                problems.append(f"lab {lab_id} node {record.name}: not in its placed topology")
            elif elsewhere:  # a move killed after its switch: finished where the node runs
                moves[(lab_id, record.name)] = elsewhere[0]
            elif record.state is NodePhase.STOPPED:
                problems.append(f"lab {lab_id} node {record.name}: stopped (a stopped node does not move): "
                                "start it, then drain")
            elif node.binds and node.vendor.provider.value != "libvirt":
                problems.append(f"lab {lab_id} node {record.name}: binds host files, which a cold move does not carry")
            else:
                leaving.append((lab_id, node))
    try:
        moves.update(place_away(leaving, hosts, host))
    except TopologyError as err:
        problems += err.problems
    if problems:
        raise DrainRefused("\n".join([f"cannot drain {host}, nothing was moved:", *problems]))
    vms = {(lab_id, node.name) for lab_id, node in leaving if node.vendor.provider.value == "libvirt"}
    return dict(sorted(moves.items(), key=lambda item: (item[0][0], item[0] in vms, item[0][1])))


def _finish_cut_moves(labs: set[str], hosts: list[HostFacts]) -> None:
    """The labs an earlier drain was moving: where a node does not run on the host its
    record names (a cold move cut short: the lab's record and placed topology already say
    where it goes), the lab converges to its placed topology, as a child run of deploy-lab."""
    from flows.deploy_lab import deploy_lab

    alive = {h.name: h for h in hosts if h.alive}
    for lab_id in sorted(labs):
        state = load_lab_state(lab_id)
        text = placed_topology(lab_id)
        if state is None or not state.is_known or text is None:
            continue
        # a node running on another host than its record's (a live move cut after its
        # switch) is not missing: the plan finishes its move where it runs
        missing = sorted(n.name for n in state.nodes if n.state is not NodePhase.STOPPED and n.host in alive
                         and not any(h.runs(lab_id, n.name) for h in alive.values()))
        if not missing:
            continue
        get_run_logger().warning("lab %s: %s not running where its record says (a move cut short): converging it",
                                 lab_id, ", ".join(missing))
        outcome = deploy_lab(topology=text, return_state=True)
        if not outcome.is_completed():
            raise ArchetypeError(f"lab {lab_id}: the moves of an earlier drain could not be finished: {outcome.message}")


def _clear(host: str, labs: list[str]) -> list[str]:
    """What is left on the host of each lab it no longer runs a node of (a VM's live move
    leaves the lab's networks and records there), removed by its destroy-slice child run."""
    from prefect.runtime import flow_run

    errors = []
    for lab_id in labs:
        state = load_lab_state(lab_id)
        if state is None or any(n.host == host for n in state.nodes):
            continue
        run = run_on_host("destroy-slice", host, {"lab_id": lab_id, "host": host},
                          key=f"{flow_run.id}-{host}-destroy-{lab_id}")  # one per lab
        error = child_error(run)
        report = read_report(names.host_report_key(lab_id, "destroy", host), run.id) or {}
        errors += [f"lab {lab_id} on {host}: {e}" for e in (report.get("errors") or ([error] if error else []))]
    return errors


def _move(lab_id: str, node: str, to_host: str) -> dict[str, Any]:
    """One move as a child run of migrate-node; its result (a failed move: its error)."""
    from flows.migrate_node import migrate_node

    state = migrate_node(lab=lab_id, node=node, to_host=to_host, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException) or not isinstance(result, dict):
        get_run_logger().error("moving %s of %s to %s failed: %s", node, lab_id, to_host, result)
        return {"lab_id": lab_id, "node": node, "to": to_host, "errors": [str(result) or type(result).__name__]}
    return result
