"""set-link: a link's state (up/down) and impairment (delay, jitter, loss, rate), put on
the host and kept in the lab state, so that a redeploy or a node restart keeps them."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from lab.errors import TopologyError
from lab.locks import lab_lock
from tasks import controls
from tasks.controls import apply_links
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
    """
    controls.check_lab_id(lab)
    if state is not None and state not in controls.LINK_STATES:
        raise TopologyError([f"state: {state!r} is not up or down"])
    with lab_lock(lab):
        lab_state = controls.check_lab(lab, load_lab_state(lab))
        link, _ = controls.find_link(lab_state, endpoint)
        conditions = controls.new_conditions(link.conditions, clear=clear, delay_ms=delay_ms, jitter_ms=jitter_ms,
                                             loss_percent=loss_percent, rate_kbit=rate_kbit)
        link.state, link.conditions = state or link.state, conditions
        notes = apply_links(lab, lab_state, [link])
        publish_lab_state(lab_state)
    return {"lab_id": lab, "link": controls.link_view(lab, link), "notes": notes}


def links_document(lab: str) -> dict[str, Any]:
    """Every link of the lab with its state and impairment (`archetype link LAB`): read from
    the lab state record, with the pid of each impaired link's relay. Not a flow: a read."""
    controls.check_lab_id(lab)
    state = controls.check_lab(lab, load_lab_state(lab))
    return {"lab_id": lab, "links": [controls.link_view(lab, link) for link in state.links]}
