"""set-link: a link's state (up/down) and impairment (delay, jitter, loss, rate), put on
the host and kept in the lab state, so that a redeploy or a node restart keeps them.

A link whose ends are on two hosts: the run gives each end's host its part as a child run
of ``set-link/<host>`` (with ``host`` set and the link's whole new record: state, every
impairment, ``clear``), and each keeps it in its own record of the lab. The impairment
is applied on one side only (the first end's host: a relay between its end and the
link's tunnel), in both directions, as on one host.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.locks import lab_lock
from lab.settings import get_settings
from lab.state import LabState, LinkRecord
from tasks import controls
from tasks.controls import apply_links
from tasks.hosts import publish_report
from tasks.state import load_lab_state, publish_lab_state


@flow(name="set-link", flow_run_name="set-link/{lab}/{endpoint}")
def set_link(
    lab: str,
    endpoint: str,
    state: Literal["up", "down"] | None = None,
    delay_ms: float | None = None,
    jitter_ms: float | None = None,
    loss_percent: float | None = None,
    rate_kbit: int | None = None,
    clear: bool = False,
    host: str | None = None,
) -> dict[str, Any]:
    """Change one link of a deployed lab. Each impairment applies to each direction.

    Args:
        lab: the lab id.
        endpoint: one end of the link, NODE:INTERFACE (e.g. r1:eth1).
        state: up or down (empty: unchanged). Down takes the carrier from both ends.
        delay_ms: one-way delay, in each direction, milliseconds.
        jitter_ms: +/- this much, uniformly, on the delay.
        loss_percent: packets lost at random, in each direction.
        rate_kbit: bandwidth of each direction, kbit/s.
        clear: remove every impairment first (then apply the values given).
        host: leave empty. (A link across hosts: the run gives each end's host its part,
            with its name here.)
    """
    controls.check_lab_id(lab)
    if state is not None and state not in controls.LINK_STATES:
        raise TopologyError([f"state: {state!r} is not up or down"])
    if host and host != get_settings().host_name:
        raise ArchetypeError(f"this part is for host {host}, and this is {get_settings().host_name}")
    key = names.slice_state_key(lab, host) if host else None
    with lab_lock(lab):
        lab_state = controls.check_lab(lab, load_lab_state(lab, key))
        link, _ = controls.find_link(lab_state, endpoint)
        conditions = controls.new_conditions(link.conditions, clear=clear, delay_ms=delay_ms, jitter_ms=jitter_ms,
                                             loss_percent=loss_percent, rate_kbit=rate_kbit)
        ends_at = _ends_elsewhere(lab_state, link) if not host else {}
        if conditions.active and names.is_segment_link(link.id) and (len(link.endpoints) > 2 or ends_at):
            raise TopologyError([f"endpoint: {endpoint} is on LAN segment {link.id} ({len(link.endpoints)} ends"
                                 f"{', over several hosts' if ends_at else ''}): an impairment is made by a relay "
                                 "between the two ends of a link, which a LAN does not have (its state up/down applies)"])
        link.state, link.conditions = state or link.state, conditions
        notes = _on_hosts(lab, link, ends_at) if ends_at else apply_links(lab, lab_state, [link])
        publish_lab_state(lab_state, key)
    result = {"lab_id": lab, "link": controls.link_view(lab, link), "notes": notes}
    if host:
        publish_report(names.host_report_key(lab, "set-link", host), result)
    return result


def _ends_elsewhere(state: LabState, link: LinkRecord) -> dict[str, str]:
    """host -> the link's end there, when an end is on another host than this one (else {})."""
    hosts = {n.name: n.host for n in state.nodes}
    ends = {hosts.get(e.partition(":")[0]) or "": e for e in reversed(link.endpoints)
            if e.partition(":")[0] != names.HOST_NODE}  # a host:IF end is on one of its nodes' hosts
    return ends if set(ends) - {get_settings().host_name, ""} else {}


def _on_hosts(lab: str, link: LinkRecord, ends_at: dict[str, str]) -> list[str]:
    """Each end's host puts the link's new record on its end, as a child run."""
    from flows.fleet import host_step

    conditions = link.conditions
    notes: list[str] = []
    for host, endpoint in sorted(ends_at.items()):
        parameters = {"lab": lab, "endpoint": endpoint, "state": link.state, "delay_ms": conditions.delay_ms,
                      "jitter_ms": conditions.jitter_ms, "loss_percent": conditions.loss_percent,
                      "rate_kbit": conditions.rate_kbit, "clear": True, "host": host}
        report = host_step("set-link", "set-link", host, parameters, lab)
        if "error" in report:
            raise ArchetypeError(f"link {link.id}: {report['error']}")
        notes += report.get("notes", [])
    return notes


def links_document(lab: str) -> dict[str, Any]:
    """Every link of the lab with its state and impairment (`archetype link LAB`): read from
    the lab state record, with the pid of each impaired link's relay. Not a flow: a read."""
    controls.check_lab_id(lab)
    state = controls.check_lab(lab, load_lab_state(lab))
    return {"lab_id": lab, "links": [controls.link_view(lab, link) for link in state.links]}
