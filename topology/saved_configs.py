"""A lab started from its last extracted configs (``deploy --from-configs``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lab import names
from topology.document import Lab, Node


def config_path(lab_id: str, node: str, folder: Path | None = None) -> Path:
    """Where ``extract-configs`` keeps a node's config (the lab's configs folder)."""
    return (folder or names.configs_dir(lab_id)) / f"{node}.cfg"


def takes_startup_config(node: Node) -> bool:
    return node.vendor.startup_config_refusal is None


def with_saved_configs(lab: Lab, folder: Path | None = None, only: set[str] | None = None) -> tuple[Lab, dict[str, str]]:
    """The lab whose nodes (``only`` these, when given) start from their last extracted
    config instead of the topology's startup-config; nodes without one (or whose kind takes
    no startup config) stay as the topology says. Also: node -> the file used."""
    used: dict[str, str] = {}
    nodes = dict(lab.nodes)
    for name, node in lab.nodes.items():
        path = config_path(lab.id, name, folder)
        if (only is not None and name not in only) or not path.is_file() or not takes_startup_config(node):
            continue
        text = path.read_text()
        if text.strip():
            nodes[name] = replace(node, startup_config=text)
            used[name] = str(path)
    return replace(lab, nodes=nodes), used
