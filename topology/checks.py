"""Tests in the topology: the top-level ``validate:`` section, in netlab's form as far as it fits.

```yaml
validate:
  ospf_up:                      # the test's name
    description: r1 has a Full OSPF neighbour
    nodes: [r1]                 # default: every node (with a per-kind command: those of its kinds)
    wait: 60                    # seconds to keep trying (default: one try)
    show: vtysh -c 'show ip ospf neighbor json'   # or per kind: {frr: ..., ceos: ...}
    expect:
      - json: neighbors         # a key path into the JSON output ('*' fans out)
        at_least: 1
      - contains: '"converged":"Full"'
```

A test runs one command per node, the way ``exec`` does (argv split shell-style for a
container, one CLI line for a VM), and holds when the command succeeded and every expectation
holds. Expectations are data and are never evaluated as code: ``contains: TEXT``,
``regex: RE`` over the output, or ``json: PATH`` with ``equals``, ``contains``, ``regex`` or
``at_least`` (no comparison: the path exists). netlab's fields that Archetype does not use
(``plugin``, ``valid``, ``devices``, ...) give a warning; a test made only of them is left to
``netlab validate``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from topology.problems import Problems

TEST_FIELDS = frozenset({"description", "nodes", "show", "exec", "expect", "wait", "stop_on_error"})

# netlab's test fields (netsim/defaults/attributes.yml, _v_entry) that Archetype reads and
# ignores, each with the reason the warning gives.
NETLAB_TEST_FIELDS: dict[str, str] = {
    "plugin": "netlab's validation plugins run with `netlab validate`",
    "valid": "a Python expression is never evaluated: use expect",
    "devices": "name the nodes (nodes:), or give the command per kind",
    "suzieq": "", "ansible": "", "config": "netlab's config templates are applied by netlab",
    "level": "every failed test is a failure", "pass": "", "fail": "", "wait_msg": "",
}

COMPARISONS = ("equals", "contains", "regex", "at_least")
_TEXT_COMPARISONS = ("contains", "regex")
PathStep = str | int
MAX_OUTPUT = 1_000_000  # characters of a command's output that expectations read


class Expectation(BaseModel, frozen=True):
    """One expectation over a command's output: ``compare`` against ``value``, on the
    text (``path`` None) or on the values a key path selects in its JSON."""

    path: list[PathStep] | None = None
    compare: Literal["equals", "contains", "regex", "at_least", "exists"]
    value: Any = None

    def describe(self) -> str:
        where = f"json {_shown_path(self.path)} " if self.path is not None else ""
        value = f"'{self.value}'" if isinstance(self.value, str) else json.dumps(self.value)
        return f"{where}{self.compare}" + ("" if self.compare == "exists" else f" {value}")

    def holds(self, output: str) -> tuple[bool, str]:
        """(it holds, the output's relevant part: what matched, or what was found instead)."""
        output = output[:MAX_OUTPUT]
        if self.path is None:
            return _compare_text(self.compare, self.value, output)
        try:
            document = json.loads(output)
        except ValueError as err:
            return False, f"not JSON ({err}): {_excerpt(output)}"
        found = select(document, self.path)
        if not found:
            return False, f"{_shown_path(self.path)}: no such key in the output"
        for value in found:
            ok, detail = _compare_value(self.compare, self.value, value)
            if not ok:
                return False, f"{_shown_path(self.path)}: {detail}"
        return True, f"{_shown_path(self.path)} = {_excerpt(json.dumps(found[0] if len(found) == 1 else found))}"


class Check(BaseModel, frozen=True):
    """A test of the topology, resolved: the command to run on each of its nodes."""

    name: str
    description: str = ""
    commands: dict[str, str]  # node -> its command (the per-kind form resolved)
    expect: list[Expectation] = Field(default_factory=list)
    wait: float = 0.0
    stop_on_error: bool = False

    @property
    def nodes(self) -> list[str]:
        return list(self.commands)


def select(document: Any, path: list[PathStep]) -> list[Any]:
    """The values a key path selects: a key of a mapping, an index of a list (a number,
    negative from the end), or ``*`` for every member."""
    current = [document]
    for step in path:
        following: list[Any] = []
        for value in current:
            if step == "*":
                members = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
                following.extend(members)
            elif isinstance(value, dict) and str(step) in value:
                following.append(value[str(step)])
            elif isinstance(value, list) and _is_index(step) and -len(value) <= int(step) < len(value):
                following.append(value[int(step)])
        current = following
    return current


def _is_index(step: PathStep) -> bool:
    return isinstance(step, int) or (isinstance(step, str) and re.fullmatch(r"-?\d+", step) is not None)


def _compare_text(compare: str, expected: Any, output: str) -> tuple[bool, str]:
    if compare == "contains":
        at = output.find(str(expected))
        if at < 0:
            return False, f"{expected!r} not in the output: {_excerpt(output)}"
        return True, _around(output, at, len(str(expected)))
    found = re.search(str(expected), output, re.MULTILINE)
    if found is None:
        return False, f"no match for /{expected}/ in the output: {_excerpt(output)}"
    return True, _around(output, found.start(), found.end() - found.start())


def _compare_value(compare: str, expected: Any, value: Any) -> tuple[bool, str]:
    shown = _excerpt(json.dumps(value))
    if compare == "exists":
        return True, shown
    if compare == "equals":
        same = value == expected and isinstance(value, bool) == isinstance(expected, bool)
        return same, f"{shown}, expected {json.dumps(expected)}"
    if compare == "at_least":
        measure = len(value) if isinstance(value, (list, dict)) else value
        if isinstance(measure, bool) or not isinstance(measure, (int, float)):
            return False, f"{shown} is neither a number nor a list or mapping"
        return measure >= expected, f"{shown}, expected at least {expected:g}"
    if compare == "contains":
        if isinstance(value, (list, dict)):
            return expected in value, f"{shown}, expected to hold {json.dumps(expected)}"
        return str(expected) in str(value), f"{shown}, expected to contain {expected!r}"
    text = value if isinstance(value, str) else json.dumps(value)
    return re.search(str(expected), text) is not None, f"{shown}, expected to match /{expected}/"


def _around(output: str, start: int, length: int, margin: int = 60) -> str:
    """The matched part of the output with a little of what surrounds it, on one line."""
    begin, end = max(0, start - margin), min(len(output), start + length + margin)
    text = " ".join(output[begin:end].split())
    return ("..." if begin else "") + text + ("..." if end < len(output) else "")


def _excerpt(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _shown_path(path: list[PathStep] | None) -> str:
    return ".".join(str(step) for step in path or [])


# -- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeKinds:
    """What the parser needs of the lab's resolved nodes: each node's kind, which are
    containers (their command is split into argv), and the catalog's kind of a name or
    alias (None: unknown)."""

    kinds: dict[str, str]
    containers: frozenset[str]
    canonical: Callable[[str], str | None]


def parse_checks(value: Any, nodes: NodeKinds, problems: Problems) -> tuple[Check, ...]:
    """The ``validate:`` section: every problem collected with its place."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        problems.error("validate", "must be a mapping of test name -> test")
        return ()
    checks = []
    for name, body in value.items():
        check = _parse_test(str(name), body, nodes, problems)
        if check is not None:
            checks.append(check)
    return tuple(checks)


def _parse_test(name: str, body: Any, nodes: NodeKinds, problems: Problems) -> Check | None:
    where = f"validate.{name}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name):
        problems.error(where, "invalid test name: letters, digits, '_', '.' and '-', at most 63 characters")
    if not isinstance(body, dict):
        problems.error(where, "must be a mapping (description, nodes, show or exec, expect, wait, stop_on_error)")
        return None
    for key in body:
        if key in NETLAB_TEST_FIELDS:
            why = f": {NETLAB_TEST_FIELDS[key]}" if NETLAB_TEST_FIELDS[key] else ""
            problems.warn(f"{where}.{key}", f"netlab field not used by Archetype, ignored{why}")
        elif key not in TEST_FIELDS:
            problems.error(f"{where}.{key}", f"unknown field {key!r} (known: {', '.join(sorted(TEST_FIELDS))})")
    action = [key for key in ("show", "exec") if key in body]
    if not action:
        if set(body) & set(NETLAB_TEST_FIELDS):
            problems.warn(where, "no show or exec: not run by `archetype test` (netlab validate runs it)")
        else:
            problems.error(where, "give the command to run: show or exec")
        return None
    if len(action) > 1:
        problems.error(where, "give show or exec, not both")
        return None
    commands = _commands(body[action[0]], body.get("nodes"), f"{where}.{action[0]}", nodes, problems)
    expect = _expectations(body.get("expect"), f"{where}.expect", problems)
    description = body.get("description", "")
    if not isinstance(description, str):
        problems.error(f"{where}.description", "must be text")
    stop = body.get("stop_on_error", False)
    if not isinstance(stop, bool):
        problems.error(f"{where}.stop_on_error", "must be true or false")
    wait = _wait(body.get("wait", 0), f"{where}.wait", problems)
    if commands is None:
        return None
    return Check(name=name, description=str(description), commands=commands, expect=expect, wait=wait,
                 stop_on_error=stop is True)


def _wait(value: Any, where: str, problems: Problems) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
        problems.error(where, f"must be a number of seconds from 0 to 3600, not {value!r}")
        return 0.0
    return float(value)


def _commands(value: Any, named: Any, where: str, nodes: NodeKinds, problems: Problems) -> dict[str, str] | None:
    """node -> command: one command for every node, or one per kind."""
    per_kind = _per_kind(value, where, nodes, problems)
    listed = _listed_nodes(named, where.rsplit(".", 1)[0] + ".nodes", nodes, problems)
    if per_kind is None or listed is None:
        return None
    chosen = listed or [n for n in nodes.kinds if "" in per_kind or nodes.kinds[n] in per_kind]
    if not chosen:
        problems.error(where, f"no node of the lab is of a kind given here ({', '.join(sorted(per_kind))})")
        return None
    commands: dict[str, str] = {}
    for node in chosen:
        command = per_kind.get(nodes.kinds[node], per_kind.get(""))
        if command is None:
            problems.error(where, f"no command for node {node}'s kind {nodes.kinds[node]} "
                                  f"(given for: {', '.join(sorted(per_kind))})")
            continue
        if node in nodes.containers and not _splits(command, where, problems):
            continue
        commands[node] = command
    return commands if len(commands) == len(chosen) else None


def _per_kind(value: Any, where: str, nodes: NodeKinds, problems: Problems) -> dict[str, str] | None:
    """{canonical kind: command}, or {"": command} for every kind."""
    if isinstance(value, str) and value.strip():
        return {"": value}
    if not isinstance(value, dict) or not value:
        problems.error(where, "must be a command, or a mapping of kind -> command")
        return None
    per_kind: dict[str, str] = {}
    for kind, command in value.items():
        vendor = nodes.canonical(str(kind))
        if vendor is None:
            problems.error(f"{where}.{kind}", f"unknown kind {kind!r}")
        elif not isinstance(command, str) or not command.strip():
            problems.error(f"{where}.{kind}", "must be a command")
        else:
            per_kind[vendor] = command
    return per_kind


def _listed_nodes(value: Any, where: str, nodes: NodeKinds, problems: Problems) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value):
        problems.error(where, "must be a list of node names")
        return None
    unknown = [n for n in value if n not in nodes.kinds]
    if unknown:
        problems.error(where, f"unknown node(s) {', '.join(unknown)} (the lab's: {', '.join(nodes.kinds)})")
        return None
    return list(dict.fromkeys(value))


def _splits(command: str, where: str, problems: Problems) -> bool:
    try:
        argv = shlex.split(command)
    except ValueError as err:
        problems.error(where, f"cannot split {command!r} into arguments: {err}")
        return False
    if not argv:
        problems.error(where, "an empty command")
    return bool(argv)


def _expectations(value: Any, where: str, problems: Problems) -> list[Expectation]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        problems.error(where, "must be a list of expectations (contains, regex, or json with a comparison)")
        return []
    found = []
    for index, item in enumerate(value):
        expectation = _expectation(item, f"{where}[{index}]", problems)
        if expectation is not None:
            found.append(expectation)
    return found


def _expectation(item: Any, where: str, problems: Problems) -> Expectation | None:
    if not isinstance(item, dict):
        problems.error(where, "must be a mapping: contains: TEXT, regex: RE, or json: PATH with a comparison")
        return None
    unknown = set(item) - {"json", *COMPARISONS}
    if unknown:
        problems.error(where, f"unknown field(s) {', '.join(sorted(map(str, unknown)))} "
                              f"(known: json, {', '.join(COMPARISONS)})")
        return None
    comparisons = [key for key in COMPARISONS if key in item]
    if len(comparisons) > 1:
        problems.error(where, f"one comparison per expectation, not {', '.join(comparisons)}")
        return None
    compare = comparisons[0] if comparisons else "exists"
    path = _path(item["json"], f"{where}.json", problems) if "json" in item else None
    if "json" not in item and compare not in _TEXT_COMPARISONS:
        problems.error(where, "over text: contains or regex; equals and at_least need a json path")
        return None
    value = item.get(compare)
    if not _valid_value(compare, value, f"{where}.{compare}", problems) or ("json" in item and path is None):
        return None
    return Expectation(path=path, compare=compare, value=value)


def _valid_value(compare: str, value: Any, where: str, problems: Problems) -> bool:
    if compare == "regex":
        if not isinstance(value, str):
            problems.error(where, "must be a regular expression (text)")
            return False
        try:
            re.compile(value)
        except re.error as err:
            problems.error(where, f"invalid regular expression {value!r}: {err}")
            return False
    elif compare == "at_least" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        problems.error(where, f"must be a number, not {value!r}")
        return False
    elif compare == "contains" and (value is None or isinstance(value, (dict, list))):
        problems.error(where, "must be a text or a number")
        return False
    return True


def _path(value: Any, where: str, problems: Problems) -> list[PathStep] | None:
    """A key path: ``neighbors.*.0.converged``, or a list of steps for keys holding dots
    (``["routes", "10.0.0.3/32", 0, "protocol"]``)."""
    if isinstance(value, str) and value and all(value.split(".")):
        return list(value.split("."))
    if isinstance(value, list) and value and all(isinstance(s, (str, int)) and not isinstance(s, bool) for s in value):
        return list(value)
    problems.error(where, "must be a key path: 'a.b.0.c' ('*' for every member), or a list of keys and indexes")
    return None
