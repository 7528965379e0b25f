"""A host's steps of a multi-host lab, served as `<flow>/<host>` by each host's worker and
run by the coordinator as child runs: deploy-slice, destroy-slice, extract-slice.

Each leaves its result as the artifact ``lab.names.host_report_key`` (the coordinator reads
it back), and refreshes the host's published facts so that ``status`` sees the change.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.locks import lab_lock
from lab.settings import get_settings
from tasks.hosts import publish_report, publish_this_host
from tasks.labs import leave_lab_here
from topology import load_topology
from topology.slices import local_part, write_files


def _check(lab_id: str, host: str) -> None:
    if not names.is_valid_lab_id(lab_id):
        raise TopologyError([f"lab: invalid lab id {lab_id!r}"])
    if host != get_settings().host_name:
        raise ArchetypeError(f"this step is for host {host}, and this is {get_settings().host_name}")


def refresh_facts() -> None:
    with contextlib.suppress(Exception):  # the periodic publication catches up
        publish_this_host()


@flow(name="deploy-slice", flow_run_name="deploy-slice/{lab_id}/{host}", task_runner=ThreadPoolTaskRunner(max_workers=512))
def deploy_slice(lab_id: str, host: str, topology: str, files: dict[str, str], tunnels: list[dict[str, Any]],
                 strict: bool = False) -> dict:
    """This host's part of a multi-host lab (run by the coordinating deploy-lab).

    Args:
        lab_id: the lab.
        host: this host's name (a check: a step sent to the wrong host fails).
        topology: the whole lab, placed (every node with its host, startup configs inline).
        files: the files its binds name (relative path -> base64), put in the lab's files folder.
        tunnels: this host's ends of cross-host links: link_id, node, vni, remote.
        strict: a startup-config line a device refuses fails its node (deploy-lab's).
    """
    from flows.deploy_lab import converge_here

    _check(lab_id, host)
    folder = names.slice_files_dir(lab_id)
    write_files(files, folder)
    whole = load_topology(topology, base_dir=folder)
    if whole.id != lab_id:
        raise TopologyError([f"name: the topology is lab {whole.id!r}, not {lab_id!r}"])
    lab = local_part(whole, host)
    result, failure = converge_here(lab, state_key=names.slice_state_key(lab_id, host), whole=whole,
                                    tunnels=tuple(tunnels), strict=strict)
    publish_report(names.host_report_key(lab_id, "deploy", host), result)
    refresh_facts()
    if failure:
        return Failed(message=f"host {host}: {failure}", data=result)
    return result


@flow(name="destroy-slice", flow_run_name="destroy-slice/{lab_id}/{host}")
def destroy_slice(lab_id: str, host: str) -> dict:
    """Remove everything of the lab on this host (run by the coordinating destroy-lab)."""
    _check(lab_id, host)
    with lab_lock(lab_id):
        report = leave_lab_here(lab_id, host)
    result = {"removed": report.removed, "errors": report.errors}
    publish_report(names.host_report_key(lab_id, "destroy", host), result)
    refresh_facts()
    if report.errors:
        return Failed(message=f"host {host}: not all removed: " + "; ".join(report.errors)[:1000], data=result)
    return result


@flow(name="extract-slice", flow_run_name="extract-slice/{lab_id}/{host}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def extract_slice(lab_id: str, host: str) -> dict:
    """The running configs of the lab's nodes on this host, texts included in the report."""
    from flows.extract_configs import extract_here

    _check(lab_id, host)
    # The user's copy is written where the coordinator runs: nothing stays on this host.
    with tempfile.TemporaryDirectory(prefix=f"configs-{lab_id}-") as folder:
        result = extract_here(lab_id, Path(folder))
        for entry in result["configs"].values():
            entry["text"] = Path(entry["path"]).read_text() if entry["ok"] else None
            entry["path"] = None
    publish_report(names.host_report_key(lab_id, "configs", host), result)
    return result


def slice_flows() -> list:
    return [deploy_slice, destroy_slice, extract_slice]
