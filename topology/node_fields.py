"""Validation of one node's fields: each parser returns the clean value or reports a
problem naming its place, and never raises."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.settings import get_settings
from topology.problems import Problems


@dataclass(frozen=True)
class Bind:
    host: Path
    container: str
    mode: str = "rw"


def string_map(value: Any, where: str, problems: Problems) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.error(where, "must be a mapping")
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def honoured_extras(extras: Any, vendor: Any, where: str, problems: Problems) -> dict[str, str]:
    """containerlab ``extras`` that the vendor turns into env vars, e.g. ``frr.daemons``."""
    env: dict[str, str] = {}
    if not isinstance(extras, dict) or vendor.container is None:
        return env
    for dotted, variable in vendor.container.extras_env.items():
        value: Any = extras
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, str) and v.isidentifier() for v in value):
            env[variable] = " ".join(value)
        else:
            problems.error(f"{where}.extras.{dotted}", "must be a list of names")
    return env


def allowed_roots(base_dir: Path) -> list[Path]:
    settings = get_settings()
    return [base_dir.resolve(), settings.workspace.resolve(), *(p.resolve() for p in settings.allowed_roots)]


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def startup_config(
    value: Any, where: str, base_dir: Path, roots: list[Path], problems: Problems
) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.error(where, "must be a file path or the configuration text")
        return None
    if "\n" in value:
        return value  # inline configuration text
    path = (base_dir / value).resolve()
    if not inside(path, roots):
        problems.error(where, f"{value!r} is outside the allowed folders ({', '.join(map(str, roots))})")
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        problems.error(where, f"unreadable startup-config {value!r}: {err.strerror or err}")
        return None


def binds(
    value: Any, where: str, vendor: Any, base_dir: Path, roots: list[Path], problems: Problems
) -> tuple[Bind, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.error(where, "must be a list of 'host:container[:ro|rw]'")
        return ()
    if vendor.container is None:
        problems.error(where, f"kind {vendor.kind} runs as a VM: binds are for containers")
        return ()
    binds = []
    for i, spec in enumerate(value):
        parts = spec.split(":") if isinstance(spec, str) else []
        if (
            len(parts) not in (2, 3)
            or not all(parts[:2])
            or (len(parts) == 3 and parts[2] not in ("ro", "rw"))
        ):
            problems.error(f"{where}[{i}]", f"bad bind {spec!r}: expected 'host:container[:ro|rw]'")
            continue
        host = (base_dir / parts[0]).resolve()
        if not inside(host, roots):
            problems.error(f"{where}[{i}]", f"host path {parts[0]!r} is outside the allowed folders")
            continue
        if not parts[1].startswith("/"):
            problems.error(f"{where}[{i}]", f"container path {parts[1]!r} must be absolute")
            continue
        binds.append(Bind(host=host, container=parts[1], mode=parts[2] if len(parts) == 3 else "rw"))
    return tuple(binds)


def exec(value: Any, where: str, vendor: Any, problems: Problems) -> tuple[tuple[str, ...], ...]:
    """Container commands are split shell-style into argv (they never reach a shell);
    VM commands are console lines, kept whole in ``exec_lines``."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.error(where, "must be a list of commands")
        return ()
    commands = []
    for i, command in enumerate(value):
        try:
            commands.append(tuple(shlex.split(command)))
        except ValueError as err:
            if vendor.container is not None:
                problems.error(f"{where}[{i}]", f"cannot split {command!r}: {err}")
            commands.append(tuple(command.split()))
    return tuple(commands)


def memory(value: Any, where: str, problems: Problems) -> int | None:
    """Memory in MiB: an int, or a string like '512MB', '2GB', '1Gi' (containerlab style)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    text = str(value).strip().lower().removesuffix("b").removesuffix("i")
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    try:
        if text and text[-1] in units:
            mib = float(text[:-1]) * units[text[-1]]
        else:
            mib = float(text) / (1024 * 1024)  # a bare number in a string is bytes
    except ValueError:
        mib = 0
    if mib < 1:
        problems.error(where, f"bad memory {value!r}: use MiB as a number, or e.g. '512MB', '2GB'")
        return None
    return int(mib)


def positive_int(value: Any, where: str, problems: Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.error(where, f"must be a positive number, not {value!r}")
        return None
    return max(1, int(value))


RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def restart_policy(value: Any, where: str, problems: Problems) -> str | None:
    """containerlab's ``restart-policy``: docker's own names."""
    if value is None:
        return None
    if value is False:  # YAML 1.1 reads a bare `no` as false
        return "no"
    if value not in RESTART_POLICIES:
        problems.error(where, f"bad restart policy {value!r} (one of {', '.join(RESTART_POLICIES)})")
        return None
    return str(value)


def startup_delay(value: Any, where: str, problems: Problems) -> float:
    """containerlab's ``startup-delay``: seconds to wait before the node is created."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        problems.error(where, f"must be a number of seconds from 0 to 3600, not {value!r}")
        return 0.0
    return float(value)


# containerlab's deployment stages, and the stage of ours each maps to.
CLAB_STAGES = {"create": "create", "create-links": "wire", "healthy": "ready", "configure": "post-boot"}


@dataclass(frozen=True)
class WaitFor:
    """This node's ``stage`` starts once ``node`` has finished its ``node_stage`` (our stage names)."""

    stage: str
    node: str
    node_stage: str


def stages(value: Any, legacy: Any, where: str, problems: Problems) -> tuple[WaitFor, ...]:
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
