"""The layers of DESIGN.md, checked on the code: every import of ours (at the top of a module
or inside a function) points down, and no group of modules imports itself round a cycle.

Walks the source with ``ast``, imports nothing."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# DESIGN.md, "Layers": what each top-level package may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "lab": set(),
    "vendors": {"lab"},
    "topology": {"lab", "vendors"},
    "providers": {"topology", "lab", "vendors"},
    "tasks": {"providers", "topology", "lab", "vendors"},
    "flows": {"tasks", "topology", "lab", "vendors"},
    "deployments": {"flows", "lab"},
    # The CLI sits on top: flows, and providers directly for read-only commands.
    "archetype": {"deployments", "flows", "providers", "topology", "lab", "vendors"},
}
OURS = set(MAY_IMPORT)


def _modules() -> Iterator[tuple[str, Path]]:
    for package in sorted(OURS):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


MODULES = dict(_modules())


def _imports(module: str, path: Path) -> set[str]:
    """Every module of ours that ``module`` imports, wherever in the file."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {name for name in found if name.split(".")[0] in OURS}


def _unit(module: str) -> str:
    """What a cycle is counted between: a top-level package's own modules one by one, and
    each sub-package (``providers.docker``) as a whole."""
    return ".".join(module.split(".")[:2])


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}


def test_the_walk_sees_the_layers() -> None:
    assert "providers.docker.provider" in MODULES and "topology.document" in MODULES
    assert "lab.errors" in IMPORTS["vendors.catalog"]
    assert "providers.docker" in IMPORTS["providers"]  # the registry's lazy import, inside a function


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module: str) -> None:
    layer = module.split(".")[0]
    upward = sorted(name for name in IMPORTS[module] if name.split(".")[0] not in {layer} | MAY_IMPORT[layer])
    assert not upward, f"{module} ({layer}/) imports {upward}: {layer}/ may import only {sorted(MAY_IMPORT[layer])}"


def test_no_package_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for module, imported in IMPORTS.items():
        unit = _unit(module)
        graph.setdefault(unit, set()).update(_unit(name) for name in imported if _unit(name) != unit)
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(unit: str) -> list[str] | None:
        colour[unit] = GREY
        stack.append(unit)
        for nxt in sorted(graph.get(unit, ())):
            if colour.get(nxt, WHITE) == GREY:
                return [*stack[stack.index(nxt):], nxt]
            if colour.get(nxt, WHITE) == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[unit] = BLACK
        return None

    for unit in sorted(graph):
        if colour[unit] == WHITE:
            found = visit(unit)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_one() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
