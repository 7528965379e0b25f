"""Root-only files and folders in the workspace (DESIGN.md, Security): configs, serial
logs, locks, secrets and the Prefect database hold what users typed.

Folders are made 0700 and files 0600 whatever the process umask is. The workspace root
and the folders on the way to a VM's files (``disks/``, ``data/``, ``images/`` and their
lab folders) are 0711 (``search_only_dirs``): QEMU runs unprivileged (libvirt-qemu) and
must traverse them to open a VM's disks and kernel, but nobody else may list them. The mode
is set by the code wherever such a folder is made or used, whoever made it before and
whatever the umask was (a workspace setup never saw, a simulated host's).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# Search-only for others: QEMU (uid libvirt-qemu) opens disks/ and images/ below it.
WORKSPACE_MODE = 0o711


def private_dir(path: Path) -> Path:
    """``mkdir -p`` whose new folders are 0700 (an existing folder keeps its mode)."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def search_only_dirs(root: Path, path: Path) -> Path:
    """``mkdir -p path`` where ``root`` and every folder from it down to ``path`` are 0711
    (search only), existing ones included: a folder made earlier by ``private_dir``, by a
    script under ``umask 077`` or by hand is mended. Folders above ``root`` are not ours
    and are left as they are (their parents are made when missing, with the umask's mode)."""
    parts = path.relative_to(root).parts  # ValueError when path is not inside root
    chain = [root.joinpath(*parts[:depth]) for depth in range(len(parts) + 1)]
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
    for folder in chain:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=WORKSPACE_MODE)
        if stat.S_IMODE(folder.stat().st_mode) != WORKSPACE_MODE:
            os.chmod(folder, WORKSPACE_MODE)  # mkdir's mode is filtered by the umask
    return path


def write_private(path: Path, text: str) -> Path:
    """Write a file 0600, atomically (temp file + rename): no reader sees half of it, and
    no moment exists where the file is readable by others."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def open_private_log(path: Path):  # noqa: ANN201 - a text file object
    """A log file for a child process, 0600 from its creation."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "a")
