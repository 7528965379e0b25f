"""destroy-lab: remove every node, port, disk and VLAN record of a lab; report every failure."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.states import Failed

from lab.errors import TopologyError
from lab.locks import lab_lock
from lab.names import is_valid_lab_id
from lab.state import LabState, LabStatus
from tasks.labs import destroy_lab_everywhere
from tasks.state import load_lab_state, publish_lab_state


@flow(name="destroy-lab", flow_run_name="destroy-lab/{lab}")
def destroy_lab(lab: str) -> dict[str, Any]:
    """Destroy a lab: containers, VMs, disks, OVS ports, veths and VLAN reservations.

    Args:
        lab: the lab id (the topology's `name`).
    """
    started_at = time.time()
    if not is_valid_lab_id(lab):
        raise TopologyError([f"lab: invalid lab id {lab!r}"])
    from flows import fleet

    hosts = fleet.fleet_hosts()
    if hosts:  # a fleet: every host removes its part
        result = fleet.destroy_across_hosts(lab, hosts)
        publish_lab_state(LabState(lab_id=lab, status=LabStatus.DESTROYED, errors=result["errors"]))
        if result["errors"]:
            return Failed(message=f"lab {lab}: not all removed: " + "; ".join(result["errors"])[:1000], data=result)
        return result
    with lab_lock(lab):
        report = destroy_lab_everywhere(lab)
        previous = load_lab_state(lab)
        # Destroyed even if something stayed: the lab is no longer known, so orphan cleanup
        # takes what is left.
        state = LabState(lab_id=lab, status=LabStatus.DESTROYED, errors=report.errors)
        if previous is not None or report.removed:
            publish_lab_state(state)
    result = {"lab_id": lab, "removed": report.removed, "errors": report.errors,
              "timings": {"flow_started_at": started_at, "finished_at": time.time()}}
    if report.errors:  # the run shows failed (UI, automations); its report is its result all the same
        return Failed(message=f"lab {lab}: not all removed: " + "; ".join(report.errors)[:1000], data=result)
    return result
