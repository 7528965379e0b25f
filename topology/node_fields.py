"""Validation of one node's fields: each parser returns the clean value or reports a
problem naming its place, and never raises."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topology.paths import Folders
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


def startup_config(value: Any, where: str, folders: Folders, problems: Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.error(where, "must be a file path or the configuration text")
        return None
    if "\n" in value:
        return value  # inline configuration text
    path = folders.resolve(value, where, problems, what="startup-config")
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        problems.error(where, f"unreadable startup-config {value!r} ({path}): {err.strerror or err}")
        return None


def binds(value: Any, where: str, vendor: Any, folders: Folders, problems: Problems) -> tuple[Bind, ...]:
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
        if not parts[1].startswith("/"):
            problems.error(f"{where}[{i}]", f"container path {parts[1]!r} must be absolute")
            continue
        host = folders.resolve(parts[0], f"{where}[{i}]", problems, what="host path")
        if host is None:
            continue
        if not host.exists():  # docker would create it, as root, wherever it points
            problems.error(f"{where}[{i}]", f"host path {parts[0]!r} ({host}) does not exist")
            continue
        binds.append(Bind(host=host, container=parts[1], mode=parts[2] if len(parts) == 3 else "rw"))
    return tuple(binds)


def exec(value: Any, where: str, vendor: Any, problems: Problems) -> tuple[str, ...]:
    """The commands as written. A container kind's are checked to split shell-style into
    argv (its provider runs them without a shell); a VM's are console lines."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.error(where, "must be a list of commands")
        return ()
    if vendor.container is not None:
        for i, command in enumerate(value):
            try:
                shlex.split(command)
            except ValueError as err:
                problems.error(f"{where}[{i}]", f"cannot split {command!r}: {err}")
    return tuple(value)


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


def host(value: Any, where: str, problems: Problems) -> str | None:
    """``host:`` names a lab host of the fleet (whether it exists is placement's question)."""
    from lab.names import is_valid_host_name

    if value is None:
        return None
    if not isinstance(value, str) or not is_valid_host_name(value):
        problems.error(where, f"invalid host name {value!r}: lowercase letters, digits and dashes, at most 31 characters")
        return None
    return value


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
