"""Where a topology's paths may point (DESIGN.md, Security): ``startup-config`` and
``binds`` resolve only inside the lab's own folders, never the working directory, the
project's code, ``/`` or the workspace's internals.

The allowed folders are the topology file's folder (a file given by path), the lab's
own files folder in the workspace (``{workspace}/files/<lab>/``: YAML text given through
the API or the UI has no folder of its own), and ``ARCHETYPE_ALLOWED_ROOTS``. Paths are
resolved (``..`` and symlinks followed) before they are checked, so neither leads out.
Nothing is opened here but the files that passed the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lab import names
from lab.settings import get_settings
from topology.problems import Problems

PROJECT = Path(__file__).resolve().parents[1]
# Folders of the project that hold lab files rather than code (the examples' configs).
PROJECT_DATA = (PROJECT / "examples",)


def inside(path: Path, roots: tuple[Path, ...] | list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def forbidden(path: Path) -> str | None:
    """Why a resolved path may never be used, whatever the allowed folders say."""
    settings = get_settings()
    workspace = settings.workspace.resolve()
    if path == Path("/"):
        return "the root folder"
    if inside(path, [PROJECT]) and not inside(path, PROJECT_DATA):
        return "inside Archetype's own code"
    if inside(path, [workspace]) and not inside(path, [names.lab_files_root().resolve()]):
        return "inside the workspace's internals"
    if inside(path, [settings.image_dir.resolve()]):
        return "inside the VM image folder"
    if inside(path, [Path(p).resolve() for p in _prefect_homes()]):
        return "inside Prefect's database folder"
    return None


def forbidden_topology_file(path: Path) -> str | None:
    """Why a topology file may not be read: it must be a YAML file outside the workspace's
    internals (the project's own examples and test data are fine to read)."""
    if path.suffix.lower() not in (".yml", ".yaml"):
        return "not a topology file (a .yml or .yaml file, or the YAML text)"
    reason = forbidden(path)
    return None if reason == "inside Archetype's own code" else reason


def _prefect_homes() -> list[str]:
    import os

    return [os.environ["PREFECT_HOME"]] if os.environ.get("PREFECT_HOME") else []


@dataclass
class Folders:
    """The folders one topology may use; ``used`` collects every path that passed."""

    base: Path  # where relative paths start
    allowed: tuple[Path, ...]
    used: list[Path] = field(default_factory=list)

    @classmethod
    def of_file(cls, folder: Path) -> Folders:
        """A topology file's: its own folder, plus the configured roots."""
        return cls._with_roots(folder.resolve())

    @classmethod
    def of_text(cls, lab_id: str | None) -> Folders:
        """YAML text's: the lab's files folder in the workspace, plus the configured roots."""
        if lab_id is None or not names.is_valid_lab_id(lab_id):
            return cls(base=names.lab_files_root().resolve(), allowed=())
        return cls._with_roots(names.lab_files_dir(lab_id).resolve())

    @classmethod
    def _with_roots(cls, base: Path) -> Folders:
        roots = [base, *(Path(p).resolve() for p in get_settings().allowed_roots)]
        # A root that is itself forbidden (`/`, the project, the workspace) allows nothing.
        return cls(base=base, allowed=tuple(dict.fromkeys(r for r in roots if forbidden(r) is None)))

    def describe(self) -> str:
        return ", ".join(map(str, self.allowed)) or "none"

    def resolve(self, value: str, where: str, problems: Problems, *, what: str = "path") -> Path | None:
        """``value`` resolved against ``base``, or None with a problem naming the field, the
        path and the allowed folders."""
        path = (self.base / value).resolve()  # `..` and symlinks followed: no way out
        reason = forbidden(path)
        if reason is None and not inside(path, self.allowed):
            reason = "outside the allowed folders"
        if reason is not None:
            problems.error(where, f"{what} {value!r} resolves to {path}, {reason}; allowed folders: {self.describe()} "
                                  "(more with ARCHETYPE_ALLOWED_ROOTS)")
            return None
        self.used.append(path)
        return path
