"""save-configs: every node keeps its running config where the device itself keeps it
(FRR ``write memory``, cEOS ``Cli -p 15 -c wr``, IOS ``write memory``: from the catalog),
so that it survives a restart of the node."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from lab import names
from lab.errors import TopologyError
from tasks.labs import failure_of, live_node_refs
from tasks.mgmt import save_node_config
from topology import NodeRef
from vendors.model import ConfigSaveMethod


@flow(name="save-configs", flow_run_name="save-configs/{lab}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def save_configs(lab: str) -> dict[str, Any]:
    """Make every node of a lab save its running config on the device.

    Args:
        lab: the lab id.
    """
    if not names.is_valid_lab_id(lab):
        raise TopologyError([f"lab: invalid lab id {lab!r}"])
    refs, unknown = live_node_refs(lab)
    saved: dict[str, dict[str, Any]] = {name: {"ok": False, "command": None, "error": why} for name, why in unknown.items()}
    nodes: list[NodeRef] = []
    for node in refs:
        if node.vendor.config_save.method is ConfigSaveMethod.NONE:
            # nothing to save: a kind whose device keeps no config of its own (linux)
            saved[node.name] = {"ok": None, "command": None, "error": None}
        else:
            nodes.append(node)
    futures = {n.name: save_node_config.submit(lab, n) for n in nodes}
    for node in nodes:
        future = futures[node.name]
        future.wait()
        command = node.vendor.config_save.command
        if future.state.is_completed():
            saved[node.name] = {"ok": True, "command": command, "error": None}
        else:
            saved[node.name] = {"ok": False, "command": command, "error": failure_of(future)}
    result = {"lab_id": lab, "nodes": saved}
    failed = {name: s["error"] for name, s in saved.items() if s["ok"] is False}
    if failed:
        return Failed(message=f"lab {lab}: not saved on " + "; ".join(f"{n}: {e}" for n, e in failed.items())[:1000],
                      data=result)
    return result

