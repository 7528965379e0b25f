"""`archetype serve` (single-host mode) serves the five flows, cleanup on a cron schedule."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.prefect_server import PrefectServer, stop_process

pytestmark = [pytest.mark.prefect]
FLOWS = {"deploy-lab", "destroy-lab", "extract-configs", "discover-labs", "cleanup-orphans"}


def test_serve_registers_every_flow_with_the_cleanup_schedule(prefect_server: PrefectServer) -> None:
    archetype = str(Path(sys.executable).parent / "archetype")
    process = subprocess.Popen([archetype, "serve"], env=prefect_server.env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        served: dict[str, dict] = {}
        while time.monotonic() < deadline and set(served) < FLOWS:
            time.sleep(1)
            assert process.poll() is None, "archetype serve exited"
            found = prefect_server.api("POST", "/deployments/filter", json={"deployments": {"tags": {"all_": ["archetype"]}}})
            served = {d["name"]: d for d in found if d.get("work_pool_name") is None}
        assert set(served) >= FLOWS
        assert any(s["schedule"].get("cron") for s in served["cleanup-orphans"]["schedules"])
        assert not served["deploy-lab"]["schedules"]
    finally:
        stop_process(process)
