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


# deploy-lab runs two steps per node: bring-up (create, wire, ready: one task) and then
# post-boot. Waits order those steps (containerlab's stage names map onto our stages, and
# our stages onto the steps), so a wait on a node's create waits for its whole bring-up.
BRING_UP = "bring-up"
POST_BOOT = "post-boot"
STEP_OF = {"create": BRING_UP, "wire": BRING_UP, "ready": BRING_UP, "post-boot": POST_BOOT}

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


def stage_waits(nodes: dict[str, Node], booting: set[str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(node, step) -> the (node, step)s it waits for: its own bring-up before its post-boot,
    and its ``wait_for``. Only nodes in ``booting`` have a post-boot step: a wait *for* one
    that has none waits for its bring-up, a wait *of* one that has none is moot."""
    waits: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name in nodes:
        waits[(name, BRING_UP)] = []
        if name in booting:
            waits[(name, POST_BOOT)] = [(name, BRING_UP)]
    for name, node in nodes.items():
        for wait in node.wait_for:
            key = (name, STEP_OF[wait.stage])
            dep_step = STEP_OF[wait.node_stage]
            dep = (wait.node, dep_step if wait.node in booting or dep_step == BRING_UP else BRING_UP)
            if key in waits and wait.node in nodes and dep != key and dep not in waits[key]:
                waits[key].append(dep)
    return waits


def check_wait_for(nodes: dict[str, Node], problems: Problems) -> None:
    """Every node waited for exists, and no chain of waits comes back to where it began
    (judged on the steps deploy-lab runs, every node taken to have a post-boot step)."""
    for node in nodes.values():
        for wait in node.wait_for:
            if wait.node not in nodes:
                problems.error(f"topology.nodes.{node.name}.stages", f"waits for unknown node {wait.node!r}")
            elif wait.node == node.name and list(STEP_OF).index(wait.node_stage) >= list(STEP_OF).index(wait.stage):
                problems.error(f"topology.nodes.{node.name}.stages", f"waits for its own {wait.node_stage} stage")
    edges = stage_waits(nodes, set(nodes))
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
