"""containerlab's node ordering (``stages``, ``wait-for``) and ``prefix``: parsed, and
checked across nodes (every node waited for exists, no wait comes back to itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from lab import names
from topology.problems import Problems


class Node(Protocol):
    """What the wait-for check reads of a resolved node."""

    @property
    def name(self) -> str: ...

    @property
    def wait_for(self) -> tuple[WaitFor, ...]: ...


# The order of a node's stages in deploy-lab (containerlab's stage names map onto these).
STAGE_ORDER = ("create", "wire", "ready", "post-boot")

# containerlab's deployment stages, and the stage of ours each maps to.
CLAB_STAGES = {"create": "create", "create-links": "wire", "healthy": "ready", "configure": "post-boot"}


@dataclass(frozen=True)
class WaitFor:
    """This node's ``stage`` starts once ``node`` has finished its ``node_stage`` (our stage names)."""

    stage: str
    node: str
    node_stage: str


def parse(value: Any, legacy: Any, where: str, problems: Problems) -> tuple[WaitFor, ...]:
    """containerlab's ``stages: {STAGE: {wait-for: [{node, stage}]}}`` (and the older
    node-level ``wait-for: [NODE, ...]``: created after those nodes are created)."""
    found: list[WaitFor] = []
    if legacy is not None:
        if not isinstance(legacy, list) or not all(isinstance(n, str) for n in legacy):
            problems.error(f"{where}.wait-for", "must be a list of node names")
        else:
            found += [WaitFor("create", n, "create") for n in legacy]
    if value is None:
        return tuple(found)
    if not isinstance(value, dict):
        problems.error(f"{where}.stages", "must be a mapping of stage -> {wait-for: [...]}")
        return tuple(found)
    for stage, body in value.items():
        place = f"{where}.stages.{stage}"
        if stage not in CLAB_STAGES:
            reason = "the exit stage is not waited for" if stage == "exit" else "unknown stage"
            problems.error(place, f"{reason} (supported: {', '.join(CLAB_STAGES)})")
            continue
        if not isinstance(body, dict):
            problems.error(place, "must be a mapping with 'wait-for'")
            continue
        for key in body:
            if key == "exec":
                problems.error(f"{place}.exec", "per-stage commands are not run: use the node's 'exec' "
                               "(run after the node is ready)")
            elif key != "wait-for":
                problems.error(f"{place}.{key}", f"unknown field {key!r}")
        for i, item in enumerate(body.get("wait-for") or []):
            dep_stage = item.get("stage", "create") if isinstance(item, dict) else None
            if not isinstance(item, dict) or not isinstance(item.get("node"), str) or dep_stage not in CLAB_STAGES:
                problems.error(f"{place}.wait-for[{i}]", f"expected {{node: NAME, stage: "
                               f"{'|'.join(CLAB_STAGES)}}}, not {item!r}")
                continue
            found.append(WaitFor(CLAB_STAGES[stage], item["node"], CLAB_STAGES[dep_stage]))
    return tuple(found)


def prefix(document: dict[str, Any], problems: Problems) -> str | None:
    """containerlab's ``prefix``: runtime names ``<prefix>-<lab>-<node>`` (empty: bare node names)."""
    if "prefix" not in document:
        return None
    value = document["prefix"]
    if value is None:
        value = ""
    if not isinstance(value, str) or (value and not names.is_valid_node_name(value)):
        problems.error("prefix", f"bad prefix {value!r}: letters, digits, '_' and '-', or empty")
        return None
    return value


def check_wait_for(nodes: dict[str, Node], problems: Problems) -> None:
    """Every node waited for exists, and no chain of waits comes back to where it began."""
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for node in nodes.values():
        for i, stage in enumerate(STAGE_ORDER[1:], start=1):
            edges.setdefault((node.name, stage), []).append((node.name, STAGE_ORDER[i - 1]))
        for wait in node.wait_for:
            if wait.node not in nodes:
                problems.error(f"topology.nodes.{node.name}.stages", f"waits for unknown node {wait.node!r}")
                continue
            if wait.node == node.name and order[wait.node_stage] >= order[wait.stage]:
                problems.error(f"topology.nodes.{node.name}.stages", f"waits for its own {wait.node_stage} stage")
                continue
            edges.setdefault((node.name, wait.stage), []).append((wait.node, wait.node_stage))
    state: dict[tuple[str, str], int] = {}  # 1: being visited, 2: done

    def visit(key: tuple[str, str], path: list[tuple[str, str]]) -> bool:
        if state.get(key) == 2:
            return True
        if state.get(key) == 1:
            cycle = path[path.index(key):] + [key]
            problems.error("topology.nodes", "wait-for cycle: " + " -> ".join(f"{n}.{s}" for n, s in cycle))
            return False
        state[key] = 1
        ok = all(visit(dep, [*path, key]) for dep in edges.get(key, []))
        state[key] = 2
        return ok

    for key in list(edges):
        if not visit(key, []):
            return
