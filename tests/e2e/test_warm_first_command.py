"""The first command is warm: `make setup` leaves the local Prefect server and the command
executor running (scripts/start-daemons.sh, its `prefect` step, as it leaves dockerd,
libvirtd and OVS running), so that a user's first `archetype deploy` of the demo starts its
flow within 1 s of the command: no server start, no imports.

The host here is a fresh one of its own (its own workspace and server port, nothing of
Prefect running), prepared by the very step `make setup` runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.leftovers import leftovers
from tests.support.local_host import fresh_host
from tests.support.prefect_server import ARCHETYPE, REPO

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs, pytest.mark.slow]

FIRST_FLOW_SECONDS = 1.0
# Prefect's console line: "13:14:18.123 | INFO    | Flow run 'deploy-lab/...' - Beginning flow run ..."
BEGINNING = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \| INFO +\| Flow run .* - Beginning flow run", re.MULTILINE)


@pytest.fixture
def set_up_host(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh host after `make setup`'s Prefect step: the server and the executor run."""
    root = Path(tempfile.mkdtemp(prefix="arch-warm-", dir="/var/tmp"))
    os.chmod(root, 0o711)  # the demo has a VM: QEMU passes through to the workspace
    with fresh_host(tmp_path) as env:
        env["ARCHETYPE_WORKSPACE"] = str(root / "ws")
        try:
            started = subprocess.run(["bash", str(REPO / "scripts" / "start-daemons.sh"), "prefect"], env=env,
                                     capture_output=True, text=True, timeout=300)
            assert started.returncode == 0, started.stderr[-3000:]
            yield env
        finally:
            subprocess.run([ARCHETYPE, "server", "stop"], env=env, capture_output=True, timeout=60)
            shutil.rmtree(root, ignore_errors=True)


def _demo(folder: Path, lab_id: str) -> Path:
    """examples/demo.yml under a lab id of its own (a person's `demo` lab may run here)."""
    shutil.copytree(REPO / "examples" / "configs", folder / "configs")
    text = (REPO / "examples" / "demo.yml").read_text()
    path = folder / "demo.yml"
    path.write_text(re.sub(r"^name: demo$", f"name: {lab_id}", text, count=1, flags=re.MULTILINE))
    return path


def test_after_setup_the_first_deploy_starts_its_flow_within_a_second(
    set_up_host: dict[str, str], tmp_path: Path, unique_lab_id: str
) -> None:
    env = set_up_host
    demo = _demo(tmp_path / "lab", unique_lab_id)
    try:
        command_at = datetime.now()
        started = time.monotonic()
        deployed = subprocess.run([ARCHETYPE, "deploy", str(demo), "--json"], env=env, capture_output=True, text=True,
                                  timeout=900)
        took = time.monotonic() - started
        began = BEGINNING.search(deployed.stderr)
        assert began, deployed.stderr[-3000:]
        flow_at = datetime.combine(command_at.date(), datetime.strptime(began[1], "%H:%M:%S.%f").time())
        to_flow = (flow_at - command_at).total_seconds()
        print(f"\n[figures] first deploy after setup: flow began {to_flow:.3f} s after the command; whole deploy {took:.1f} s")
        assert "starting the local Prefect server" not in deployed.stderr  # setup started it
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert {n["state"] for n in json.loads(deployed.stdout)["nodes"]} == {"ready"}
        assert to_flow < FIRST_FLOW_SECONDS, f"the flow began {to_flow:.3f} s after the command"
    finally:
        destroyed = subprocess.run([ARCHETYPE, "destroy", unique_lab_id, "--json"], env=env, capture_output=True,
                                   text=True, timeout=600)
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert leftovers(unique_lab_id) == {}
