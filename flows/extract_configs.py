"""extract-configs: every node's running configuration, as files and as artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from lab import names
from lab.errors import TopologyError
from lab.private import private_dir, write_private
from tasks.labs import failure_of, live_node_refs
from tasks.nodes import extract_config
from tasks.state import publish_config
from topology import NodeRef
from vendors.model import ExtractionMethod


@flow(name="extract-configs", flow_run_name="extract-configs/{lab}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def extract_configs(lab: str, out_dir: str | None = None) -> dict[str, Any]:
    """Pull the running configuration of every node of a lab.

    Args:
        lab: the lab id.
        out_dir: a folder under the workspace's configs folder for the files: a name
            (``before-upgrade``) or a path inside it (default: ``configs/<lab>/``). The
            flow writes nowhere else.
    """
    if not names.is_valid_lab_id(lab):
        raise TopologyError([f"lab: invalid lab id {lab!r}"])
    folder = output_folder(lab, out_dir)  # invalid input fails the run before any lookup
    from flows import fleet

    hosts = fleet.fleet_hosts()
    result = fleet.extract_across_hosts(lab, folder, hosts) if hosts else None
    if result is None:
        result = extract_here(lab, folder)
    failed = {name: c["error"] for name, c in result["configs"].items() if not c["ok"]}
    if failed:  # the run shows failed; the configs that could be pulled are saved all the same
        return Failed(message=f"lab {lab}: no config from " + "; ".join(f"{n}: {e}" for n, e in failed.items())[:1000],
                      data=result)
    return result


def extract_here(lab: str, folder: Path) -> dict[str, Any]:
    """The configs of the lab's nodes on this host, saved in ``folder`` and as artifacts."""
    refs, unknown = live_node_refs(lab)
    private_dir(folder)
    configs: dict[str, dict[str, Any]] = {name: {"ok": False, "path": None, "error": why} for name, why in unknown.items()}
    nodes: list[NodeRef] = []
    for node in refs:
        if node.vendor.config_extraction.method is ExtractionMethod.NONE:
            configs[node.name] = {"ok": False, "path": None, "error": f"kind {node.vendor.kind} has no config extraction"}
        else:
            nodes.append(node)
    futures = {node.name: extract_config.submit(lab, node) for node in nodes}
    for node in nodes:
        future = futures[node.name]
        future.wait()
        if not future.state.is_completed():
            configs[node.name] = {"ok": False, "path": None, "error": failure_of(future)}
            continue
        text = future.result()
        path = folder / f"{node.name}.cfg"
        write_private(path, text)  # root only: a config holds secrets (DESIGN.md, Security)
        publish_config(lab, node.name, text)
        configs[node.name] = {"ok": True, "path": str(path), "error": None}
    return {"lab_id": lab, "configs": configs}


def output_folder(lab: str, out_dir: str | None) -> Path:
    """Where the configs go: always below the workspace's configs folder (resolved, so
    neither ``..`` nor a symlink leads out)."""
    root = names.configs_root().resolve()
    if not out_dir:
        return names.configs_dir(lab)
    folder = (root / out_dir).resolve()  # an absolute out_dir replaces root: checked below
    if folder == root or not folder.is_relative_to(root):
        raise TopologyError([f"out_dir: {out_dir!r} resolves to {folder}, outside the workspace's configs folder "
                             f"{root}: give a name (e.g. 'before-upgrade') or a path inside it"])
    return folder

