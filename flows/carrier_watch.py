"""The carrier watcher: a node stopped outside any flow (``docker kill``, QEMU killed) takes
its peers' carrier, on this host and across hosts, and gives it back when it starts.

One small process per host (``python -m deployments.carrier_watch``: ``make setup`` starts it
on a host, ``scripts/sim-fleet.sh`` on each simulated one). It waits on docker's and libvirt's
event streams (no polling: idle, it costs nothing), gathers a lab's events for a moment, then,
holding the lab's lock (a flow that holds it is in charge: the watcher looks after it and
finds nothing left to do), makes the host match what runs (``providers.carrier``).

On a fleet (``PREFECT_API_URL`` set), a node of this host that crashed or came back outside
any flow is recorded in the lab's state (failed, with the reason; ready again), and each
host with an end of one of its links is told by a ``control-node/<host>`` run of its part
(as ``archetype node stop``/``start`` does it), which sets the carrier of its ends there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict

from lab.errors import ArchetypeError
from lab.locks import lab_lock
from lab.settings import get_settings
from tasks.carrier import Change, NodeEvent, docker_events, libvirt_events, reconcile

log = logging.getLogger("archetype.carrier")

GATHER_SECONDS = 0.5  # a lab's events within this are handled together
LOCK_WAIT_SECONDS = 3600.0  # a flow holding the lab (a deploy of hundreds of nodes) may take long
OUTSIDE = "stopped outside any flow"


class Watcher:
    def __init__(self, fleet: bool) -> None:
        self.fleet = fleet
        self._pending: dict[str, set[str]] = defaultdict(set)
        self._last: dict[str, float] = {}
        self._busy: set[str] = set()
        self._cond = threading.Condition()

    def emit(self, event: NodeEvent) -> None:
        with self._cond:
            self._pending[event.lab_id].add(event.node)
            self._last[event.lab_id] = time.monotonic()
            self._cond.notify()

    def run(self, stop: threading.Event) -> None:
        for stream in (docker_events, libvirt_events):
            threading.Thread(target=stream, args=(self.emit, stop), daemon=True, name=stream.__name__).start()
        while not stop.is_set():
            with self._cond:
                self._cond.wait(timeout=GATHER_SECONDS)
                now = time.monotonic()
                ready = [lab for lab, nodes in self._pending.items()
                         if nodes and lab not in self._busy and now - self._last[lab] >= GATHER_SECONDS]
                batches = {lab: self._pending.pop(lab) for lab in ready}
                self._busy |= set(batches)
            for lab, nodes in batches.items():
                threading.Thread(target=self._handle, args=(lab, nodes), daemon=True, name=f"carrier-{lab}").start()

    def _handle(self, lab_id: str, nodes: set[str]) -> None:
        try:
            with lab_lock(lab_id, timeout=LOCK_WAIT_SECONDS):
                changes = reconcile(lab_id, nodes)
            for change in changes:
                if change.peers_here:
                    log.info("lab %s: %s %s: carrier %s on %s", lab_id, change.node, "started" if change.up else "stopped",
                             "back" if change.up else "taken", ", ".join(change.peers_here))
            if self.fleet and changes:
                tell_the_fleet(lab_id, changes)
        except Exception as err:  # noqa: BLE001 - the next event of the lab tries again
            log.warning("lab %s: carrier of %s's peers not followed: %s", lab_id, ", ".join(sorted(nodes)), err)
        finally:
            with self._cond:
                self._busy.discard(lab_id)
                self._cond.notify()


def tell_the_fleet(lab_id: str, changes: list[Change]) -> None:
    """Record in the lab's state what happened to this host's nodes outside any flow, and have
    each other host with an end of their links follow (a ``control-node/<host>`` run)."""
    from prefect.deployments import run_deployment

    from lab.state import NodePhase
    from tasks.hosts import read_hosts
    from tasks.state import load_lab_state, publish_lab_state

    state = load_lab_state(lab_id)
    if state is None:
        return
    here = get_settings().host_name
    records = {n.name: n for n in state.nodes}
    told: list[tuple[str, bool, set[str]]] = []
    for change in changes:
        record = records.get(change.node)
        if record is None or record.host != here:
            continue
        if not change.up and record.state is NodePhase.READY:
            record.state, record.failed_stage, record.error = NodePhase.FAILED, None, OUTSIDE
        elif change.up and record.state is NodePhase.FAILED and record.error == OUTSIDE:
            record.state, record.error = NodePhase.READY, None
        else:
            continue  # a flow stopped or started it, and told the other hosts itself
        told.append((change.node, change.up, set(change.remotes.values())))
    if not told:
        return
    publish_lab_state(state)  # the other hosts read it: the node is failed (or ready again)
    hosts = {h.address: h.name for h in read_hosts() if h.address}
    for node, up, addresses in told:
        for host in sorted(hosts[a] for a in addresses if a in hosts):
            run = run_deployment(f"control-node/{host}", timeout=0, parameters={
                "lab": lab_id, "node": node, "action": "start" if up else "stop", "host": host})
            log.info("lab %s: %s %s: host %s follows (run %s)", lab_id, node, "started" if up else "stopped", host, run.name)


def watch_forever(stop: threading.Event | None = None) -> None:
    """Watch this host's runtimes until ``stop`` (or forever)."""
    fleet = bool(os.environ.get("PREFECT_API_URL"))
    if fleet and not get_settings().host_name:
        raise ArchetypeError("a fleet host's watcher needs ARCHETYPE_HOST_NAME")
    log.info("carrier watcher on %s (%s)", get_settings().host_name, "fleet" if fleet else "this host only")
    Watcher(fleet).run(stop or threading.Event())
