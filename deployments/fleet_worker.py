"""A fleet host's worker: serves every flow and the per-host steps as `<flow>/<host>`
deployments on the shared server (a move's steps run in this very process:
deployments/step_runner.py), and publishes this host's facts when it starts and every
``host_facts_interval`` seconds (a host whose facts grow old is not alive).

    PREFECT_API_URL=... ARCHETYPE_HOST_NAME=lab-2 ARCHETYPE_DATA_ADDRESS=10.0.0.2 \\
        python -m deployments.fleet_worker
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("archetype.fleet")


def publish_facts_forever(stop: threading.Event) -> None:
    from flows.fleet import publish_this_host
    from lab.settings import get_settings

    interval = get_settings().host_facts_interval
    while not stop.is_set():
        try:
            publish_this_host()
        except Exception as err:  # noqa: BLE001 - try again at the next beat
            log.warning("could not publish this host's facts: %s", err)
        stop.wait(interval)


def reclaim() -> None:
    """This host's copies of nodes that moved away while it was lost, removed (reclaim-host,
    a flow run of its own); a failure is logged and the worker serves all the same."""
    from flows.evacuate_host import reclaim_host

    try:
        state = reclaim_host(return_state=True)
        if not state.is_completed():
            log.error("reclaim-host: %s", state.message)
    except Exception:  # noqa: BLE001 - the next start tries again; serving matters more
        log.exception("reclaim-host could not run")


def main() -> None:
    # this process and the runs it serves are on a lab host: the routes to labs' management
    # addresses are the coordinator's (tasks.fleet_plan), never made here
    os.environ["ARCHETYPE_COORDINATOR_ROUTES"] = "false"
    from prefect import serve

    from deployments.serve import deployments
    from deployments.step_runner import StepRunner
    from flows.fleet import publish_this_host, ready_for_vms
    from flows.migrate_steps import migrate_step_flows
    from flows.slices import slice_flows
    from flows.test_lab import test_slice
    from lab.settings import get_settings

    get_settings.cache_clear()  # read again, with the line above
    host = get_settings().host_name
    # libvirtd probes QEMU once, at the first call that needs it (4-8 s): before any VM comes
    threading.Thread(target=ready_for_vms, daemon=True, name="libvirt-capabilities").start()
    reclaim()  # back from lost: what moved away goes first, so nothing of a lab runs twice
    publish_this_host()  # before serving: a coordinator can place on it at once
    stop = threading.Event()
    threading.Thread(target=publish_facts_forever, args=(stop,), daemon=True, name="host-facts").start()
    steps = [f.to_deployment(name=host, tags=["archetype", "fleet"]) for f in (*slice_flows(), test_slice)]
    # a move's steps run in this process, at once (deployments/step_runner.py): not one process each
    StepRunner(migrate_step_flows(), host, get_settings().step_poll_seconds).start()
    try:
        serve(*deployments(), *steps, limit=32, query_seconds=get_settings().runner_poll_seconds)
    finally:
        stop.set()


if __name__ == "__main__":
    main()
