"""A workspace that setup never saw (ARCHETYPE_WORKSPACE, a documented setting), made and used
under ``umask 077``: a VM lab deploys and its VM is ready, because the code itself gives the
folders QEMU traverses (the root, data/, data/<lab>) mode 0711, and keeps everything else
root-only. Before, every folder came out 0700 and QEMU (libvirt-qemu) could not open the
VM's data disk: "Cannot access storage file ... Permission denied", after three retries.

Also: a workspace below a folder QEMU cannot traverse, and that is not ours, gives a clear
error naming that folder, and nothing is created."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.leftovers import lab_domains
from tests.support.local_host import fresh_host
from tests.support.prefect_server import ARCHETYPE

pytestmark = [pytest.mark.prefect, pytest.mark.libvirt, pytest.mark.ovs, pytest.mark.slow]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _topology(folder: Path, lab_id: str) -> Path:
    path = folder / "lab.yml"
    path.write_text(f"name: {lab_id}\ntopology:\n  nodes:\n    v1: {{kind: mini-ios}}\n")
    return path


def _archetype(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The command as a user under ``umask 077`` runs it (the executor and the local server it
    starts inherit the umask too)."""
    return subprocess.run([ARCHETYPE, *args], env=env, capture_output=True, text=True, timeout=timeout, umask=0o077)


@pytest.fixture
def unseen_workspace(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A host environment whose workspace is a new folder under /var/tmp (which QEMU can
    traverse), 0700 as made under umask 077; its own local server and executor."""
    root = Path(tempfile.mkdtemp(prefix="arch-unseen-", dir="/var/tmp"))  # 0700
    with fresh_host(tmp_path) as env:
        env["ARCHETYPE_WORKSPACE"] = str(root / "ws")
        try:
            yield root / "ws", env
        finally:
            subprocess.run([ARCHETYPE, "server", "stop"], env=env, capture_output=True, timeout=60)
            shutil.rmtree(root, ignore_errors=True)


def test_a_vm_lab_deploys_from_a_workspace_setup_never_saw_under_umask_077(
    unseen_workspace: tuple[Path, dict[str, str]], tmp_path: Path, unique_lab_id: str
) -> None:
    workspace, env = unseen_workspace
    os.chmod(workspace.parent, 0o711)  # the folder above the workspace: the user's, QEMU may pass
    topology = _topology(tmp_path, unique_lab_id)
    try:
        deployed = _archetype(env, "deploy", str(topology), "--json")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        (node,) = json.loads(deployed.stdout)["nodes"]
        assert (node["name"], node["state"]) == ("v1", "ready"), node

        for folder in (workspace, workspace / "data", workspace / "data" / unique_lab_id):
            assert _mode(folder) == 0o711, folder  # search only: QEMU reaches the data disk
        for folder in ("prefect", "locks", "logs", f"logs/{unique_lab_id}"):
            assert _mode(workspace / folder) == 0o700, folder
        assert _mode(workspace / "data" / unique_lab_id / "v1.qcow2") & 0o077 == 0
        assert _mode(workspace / "logs" / unique_lab_id / "v1.serial.log") & 0o077 == 0
    finally:
        destroyed = _archetype(env, "destroy", unique_lab_id, "--json")
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert lab_domains(unique_lab_id) == []


def test_a_folder_qemu_cannot_traverse_outside_the_workspace_is_a_clear_error_and_nothing_is_made(
    tmp_path: Path, unique_lab_id: str
) -> None:
    closed = tmp_path / "closed"  # 0700 and not ours: QEMU cannot pass, and Archetype may not change it
    closed.mkdir()
    os.chmod(closed, 0o700)
    with fresh_host(tmp_path) as env:
        env["ARCHETYPE_WORKSPACE"] = str(closed / "ws")
        deployed = _archetype(env, "deploy", str(_topology(tmp_path, unique_lab_id)), "--json")
        try:
            assert deployed.returncode == 1, deployed.stdout + deployed.stderr[-3000:]
            assert "QEMU (user libvirt-qemu" in deployed.stderr and "cannot reach" in deployed.stderr, deployed.stderr
            assert "not Archetype's to change" in deployed.stderr
            assert "Cannot access storage file" not in deployed.stderr  # never libvirt's own word, retried
            assert "Retry" not in deployed.stderr, deployed.stderr  # not transient: tried once
            blocking = re.search(r"folder (\S+) \(mode 0700", deployed.stderr)
            assert blocking and Path(blocking[1]) in (closed, *closed.parents), deployed.stderr  # the path named
            assert lab_domains(unique_lab_id) == []
            assert not (closed / "ws" / "data" / unique_lab_id).exists()
            assert _mode(closed) == 0o700
        finally:
            _archetype(env, "destroy", unique_lab_id, "--json")
