"""Fault tests (issue 7): real dockerd, libvirtd + QEMU, Open vSwitch and a real Prefect
server; deploys run as `archetype deploy` subprocesses so they can be SIGKILLed.

Other labs may be running on this host: every test uses its own lab ids, and never
removes anything else (orphan cleanup is always given every other lab as known).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.prefect_server import PrefectServer


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _require(what: str, argv: list[str]) -> None:
    try:
        ok = shutil.which(argv[0]) is not None and subprocess.run(
            argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        message = f"{what} does not answer `{' '.join(argv)}` (run `make setup` or scripts/start-daemons.sh)"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def host_daemons() -> None:
    """dockerd, libvirtd and OVS answer (fail under CI, skip elsewhere)."""
    _require("dockerd", ["docker", "info", "--format", "{{.ServerVersion}}"])
    _require("libvirtd", ["virsh", "-c", "qemu:///system", "list", "--all", "--name"])
    _require("Open vSwitch", ["ovs-vsctl", "--timeout=5", "show"])


@pytest.fixture(scope="session")
def mini_ios_image() -> None:
    from lab.settings import get_settings

    folder = get_settings().image_dir / "mini-ios"
    if not (folder / "vmlinuz").exists() or not (folder / "initrd.img").exists():
        message = f"the mini-ios image is not built in {folder} (images/mini-ios/build.sh)"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, host_daemons: None) -> Iterator[PrefectServer]:
    """One real Prefect server for the whole reliability session."""
    prefect = PrefectServer.start(tmp_path_factory.mktemp("reliability-prefect"))
    try:
        yield prefect
    finally:
        prefect.stop()
