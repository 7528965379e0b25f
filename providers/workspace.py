"""A lab's files in the workspace (disks, data volumes, node files, serial logs).

Modes (lab/private.py): the workspace root and the folders QEMU traverses to a VM's files
(``disks/<lab>``, ``data/<lab>``, ``images/...``) are 0711, set here wherever such a folder
is made or used, whoever made it; everything else is 0700/0600.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from lab import names
from lab.private import search_only_dirs
from providers.base import CleanupReport

# Extracted configs are the user's output: destroy keeps them (DESIGN, Identity: configs/).
LAB_FOLDERS = (names.disks_dir, names.data_dir, names.lab_dir, names.logs_dir)


# What a restore put in the lab's files folder for its nodes to bind (flows/restore_lab.py):
# the lab's, not the user's, so it goes with the lab.
RESTORED_FILES = "_restored-*"


def remove_lab_files(lab_id: str) -> CleanupReport:
    report = CleanupReport()
    for folder_of in LAB_FOLDERS:
        remove_tree(folder_of(lab_id), report, f"lab {lab_id}")
    files = names.lab_files_dir(lab_id)
    for restored in sorted(files.glob(RESTORED_FILES)) if files.is_dir() else []:
        remove_tree(restored, report, f"lab {lab_id}")
        with contextlib.suppress(OSError):
            files.rmdir()  # only when nothing else is there (the user's own files stay)
    return report


def remove_tree(folder: Path, report: CleanupReport, owner: str) -> None:
    """Remove ``folder`` if it exists; the outcome goes to ``report``, never an exception."""
    if not folder.exists():
        return
    try:
        shutil.rmtree(folder)
        report.add("folders", str(folder))
    except OSError as err:
        report.errors.append(f"{owner}: cannot remove {folder}: {err}")


def workspace_labs() -> set[str]:
    """Lab ids that own a folder in the workspace."""
    labs: set[str] = set()
    for folder_of in LAB_FOLDERS:
        parent = folder_of("x").parent
        if parent.is_dir():
            labs.update(p.name for p in parent.iterdir() if p.is_dir() and names.is_valid_lab_id(p.name))
    return labs


def is_ours(path: Path) -> bool:
    """``path`` lies in the workspace: Archetype may set its folders' modes."""
    return path.resolve().is_relative_to(names.workspace().resolve())


def vm_folder(path: Path) -> Path:
    """A folder inside the workspace that QEMU must traverse (a lab's ``disks/`` or ``data/``
    folder, a folder of ``images/``): it exists, and it and every folder from the workspace
    root down to it are 0711."""
    root = names.workspace().resolve()
    return search_only_dirs(root, path.resolve())
