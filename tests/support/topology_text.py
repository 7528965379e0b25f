"""Topologies written as YAML text in a test, loaded as a user's file would be."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lab.errors import TopologyError
from topology import Lab, load_topology


def lab_of(text: str, tmp_path: Path) -> Lab:
    path = tmp_path / "lab.yml"
    path.write_text(textwrap.dedent(text))
    return load_topology(path)


def problems_of(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(TopologyError) as info:
        lab_of(text, tmp_path)
    return info.value.problems
