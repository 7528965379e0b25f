"""A host's steps of moving a node (``migrate-node``), served as ``migrate-step/<host>`` by
each host's worker and run by the coordinator as child runs, one step each:

- ``describe`` (source): the running VM as the destination must know it;
- ``prepare`` (destination): VLANs for the node's links here, the tunnels of the links that
  will cross hosts (BEFORE the switch), the disks and serial log (providers.libvirt.migration);
- ``tunnels`` (the other end's host): its end of a link's new tunnel, before the switch;
- ``send`` (source): the live migration itself, then the source's files and the links it no
  longer has (their old tunnels: AFTER the switch); SIGTERM (a cancelled run) aborts it;
- ``finish`` (destination): our markers on the VM's ports, the links' old tunnels go;
- ``abort`` (destination) and ``untunnel`` (other hosts): after a failed switch, nothing of
  the node stays where it was going;
- a container's cold move has steps of its own: ``extract``, ``stage``, ``cutover``,
  ``unstage`` (tasks.cold_move).

Each step leaves its result as the artifact ``lab.names.host_report_key`` (as the slices do).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.settings import get_settings
from tasks import cold_move, migration
from tasks.hosts import publish_report
from tasks.migration import CANCEL

__all__ = ["CANCEL", "STEPS", "migrate_step", "migrate_step_flows"]  # CANCEL: for deployments/step_runner.py

STEP_FUNCTIONS = {**migration.STEP_FUNCTIONS, **cold_move.STEP_FUNCTIONS}
STEPS = tuple(STEP_FUNCTIONS)


def _check(lab_id: str, host: str, step: str) -> None:
    if not names.is_valid_lab_id(lab_id):
        raise TopologyError([f"lab: invalid lab id {lab_id!r}"])
    if step not in STEPS:
        raise TopologyError([f"step: {step!r} is not one of {', '.join(STEPS)}"])
    if host != get_settings().host_name:
        raise ArchetypeError(f"this step is for host {host}, and this is {get_settings().host_name}")


@flow(name="migrate-step", flow_run_name="migrate-{step}/{lab_id}/{host}")
def migrate_step(lab_id: str, host: str, step: str, args: dict[str, Any]) -> dict[str, Any]:
    """One host's step of moving a node to another host (run by migrate-node).

    Args:
        lab_id: the lab.
        host: this host's name (a check: a step sent to the wrong host fails).
        step: one of STEPS (a live move's, tasks.migration; a cold move's, tasks.cold_move).
        args: the step's arguments, as migrate-node gives them.
    """
    _check(lab_id, host, step)
    result = STEP_FUNCTIONS[step](lab_id, args)
    publish_report(names.host_report_key(lab_id, f"migrate-{step}", host), result)
    if step in ("send", "finish", "abort", "stage", "unstage", "cutover"):
        from flows.slices import refresh_facts

        refresh_facts()  # `status` reads where the node runs from the hosts' facts
    return result


def migrate_step_flows() -> list:
    return [migrate_step]
