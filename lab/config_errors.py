"""Startup-config lines a device refused: the node's ``config_errors``.

A real device that boots a config with a bad line logs it and applies the rest; so does a
deploy (unless ``--strict``): the node comes up ready and carries what it refused, each a
line with the device's own message. The field is the same for every provider (a VM's
console lines, an FRR container's lines that vtysh refused).

Besides the lab state record (``lab.state``), each host keeps its nodes' errors in the
workspace, where ``archetype status`` (which never starts Prefect) reads them:
``labs/<lab>/config-errors/<node>.json``, removed with the lab's folder at destroy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from lab import names
from lab.errors import ArchetypeError
from lab.private import write_private

_CARET_ONLY = re.compile(r"^\s*\^\s*$")  # IOS's marker under the echoed line: nothing without the echo


class ConfigError(BaseModel):
    line: str  # as the startup-config has it
    message: str  # what the device answered

    @classmethod
    def refused(cls, line: str, output: str) -> ConfigError:
        """The error of ``line`` from the device's output: its non-blank lines, without a
        lone ``^`` marker (it points into an echo the output no longer has)."""
        kept = [text.strip() for text in output.splitlines() if text.strip() and not _CARET_ONLY.match(text)]
        return cls(line=line.strip(), message=" ".join(kept) or "refused")

    def text(self) -> str:
        """``'interface Nonexistent9/9': % Invalid input detected at '^' marker.``"""
        return f"{self.line!r}: {self.message}"


class ConfigRefusedError(ArchetypeError):
    """A strict deploy: a node whose device refused startup-config lines fails (retrying
    would be refused again)."""

    def __init__(self, node: str, errors: list[ConfigError]):
        self.node, self.errors = node, list(errors)
        lines = "; ".join(error.text() for error in errors)
        super().__init__(f"node {node}: startup-config refused (strict): {lines}")


_LIST = TypeAdapter(list[ConfigError])


def record_path(lab_id: str, node: str) -> Path:
    return names.lab_dir(lab_id) / "config-errors" / f"{node}.json"


def save(lab_id: str, node: str, errors: list[ConfigError]) -> None:
    """The node's errors as of its last configuration (none: the record goes)."""
    path = record_path(lab_id, node)
    if errors:
        write_private(path, _LIST.dump_json(errors).decode())
    else:
        path.unlink(missing_ok=True)


def load(lab_id: str, node: str) -> list[ConfigError]:
    """The node's errors on this host ([] when none or unreadable: they are a report)."""
    try:
        return _LIST.validate_json(record_path(lab_id, node).read_text())
    except (OSError, ValueError):
        return []


def as_json(errors: list[ConfigError]) -> list[dict[str, str]]:
    return [error.model_dump() for error in errors]


def parse_json(text: str) -> list[ConfigError]:
    return _LIST.validate_json(text or "[]")


def parse(items: list[dict[str, str]] | None) -> list[ConfigError]:
    """``as_json``'s form back (a host's report)."""
    return _LIST.validate_python(items or [])


def dumps(errors: list[ConfigError]) -> str:
    return json.dumps(as_json(errors)) if errors else ""
