"""The workspace is root's alone (configs, serial logs and the Prefect database hold what
users typed): the setup's permission step fixes a host set up before the rule, and the
code makes its files and folders root-only whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from lab.private import open_private_log, private_dir, write_private
from tests.support.prefect_server import REPO

PRIVATE = ("configs", "configs/lab-a", "logs", "logs/lab-a", "locks", "prefect", "secrets", "vlans", "labs", "files")
PRIVATE_FILES = ("configs/lab-a/r1.cfg", "logs/lab-a/v1.serial.log", "prefect/prefect.db", "prefect/prefect.db-wal",
                 "secrets/prefect-api-auth", "locks/lab-lab-a.lock", "vlans/lab-a.json")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_setup_makes_an_open_workspace_root_only(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    for folder in (*PRIVATE, "disks/lab-a", "data", "images/mini-ios"):
        (workspace / folder).mkdir(parents=True, exist_ok=True)
    for name in PRIVATE_FILES:
        (workspace / name).write_text("what a user typed\n")
    for path in [workspace, *workspace.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)  # a host set up before the rule, and worse

    result = subprocess.run(["bash", str(REPO / "scripts/setup-host.sh"), "--permissions-only"],
                            env={**os.environ, "ARCHETYPE_WORKSPACE": str(workspace)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    assert _mode(workspace) == 0o711  # search only: QEMU (libvirt-qemu) reaches disks/ and images/
    for name in ("disks", "data", "images", "disks/lab-a"):
        assert _mode(workspace / name) == 0o711, name
    for name in PRIVATE:
        assert _mode(workspace / name) == 0o700, name
    for name in PRIVATE_FILES:
        assert _mode(workspace / name) & 0o077 == 0, name


def test_the_code_makes_root_only_files_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        folder = private_dir(tmp_path / "configs" / "lab-a")
        config = write_private(folder / "r1.cfg", "secret\n")
        with open_private_log(tmp_path / "logs" / "server.log") as log:
            log.write("x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "configs") == _mode(folder) == 0o700
    assert _mode(config) == 0o600 and _mode(tmp_path / "logs" / "server.log") == 0o600
