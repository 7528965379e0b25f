"""Root-only files and folders in the workspace (DESIGN.md, Security): configs, serial
logs, locks, secrets and the Prefect database hold what users typed.

Folders are made 0700 and files 0600 whatever the process umask is. The workspace root
itself is 0711 (see ``workspace_mode``): QEMU runs unprivileged (libvirt-qemu) and must
traverse it to open a VM's disks and kernel, but nobody else may list it.
"""

from __future__ import annotations

import os
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
