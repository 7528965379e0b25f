"""save-configs: every node keeps its running config where the device itself keeps it
(FRR ``write memory``, cEOS ``Cli -p 15 -c wr``, IOS ``write memory``: from the catalog),
so that it survives a restart of the node."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from lab import names
from lab.errors import ArchetypeError, TopologyError
from tasks.labs import discover_labs_live
from tasks.mgmt import save_node_config
from topology import NodeRef
from vendors import catalog
from vendors.model import ConfigSaveMethod


@flow(name="save-configs", flow_run_name="save-configs/{lab}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def save_configs(lab: str) -> dict[str, Any]:
    """Make every node of a lab save its running config on the device.

    Args:
        lab: the lab id.
    """
    if not names.is_valid_lab_id(lab):
        raise TopologyError([f"lab: invalid lab id {lab!r}"])
    found = discover_labs_live(lab)
    if not found:
        raise ArchetypeError(f"no lab {lab!r} on this host")
    saved: dict[str, dict[str, Any]] = {}
    nodes: list[NodeRef] = []
    for status in found[0].nodes:
        vendor = catalog().find(status.kind)
        if vendor is None:
            saved[status.name] = {"ok": False, "command": None, "error": f"kind {status.kind!r} is not in the catalog"}
        elif vendor.config_save.method is ConfigSaveMethod.NONE:
            # nothing to save: a kind whose device keeps no config of its own (linux)
            saved[status.name] = {"ok": None, "command": None, "error": None}
        else:
            nodes.append(NodeRef(status.name, vendor))
    futures = {n.name: save_node_config.submit(lab, n) for n in nodes}
    for node in nodes:
        future = futures[node.name]
        future.wait()
        command = node.vendor.config_save.command
        if future.state.is_completed():
            saved[node.name] = {"ok": True, "command": command, "error": None}
        else:
            saved[node.name] = {"ok": False, "command": command, "error": _error(future)}
    result = {"lab_id": lab, "nodes": saved}
    failed = {name: s["error"] for name, s in saved.items() if s["ok"] is False}
    if failed:
        return Failed(message=f"lab {lab}: not saved on " + "; ".join(f"{n}: {e}" for n, e in failed.items())[:1000],
                      data=result)
    return result


def _error(future: Any) -> str:
    try:
        future.result()
    except Exception as err:  # noqa: BLE001 - reported per node
        return str(err) or err.__class__.__name__
    return "not completed"
