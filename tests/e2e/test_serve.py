"""`archetype serve` (single-host mode) serves every flow, cleanup on a cron schedule."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.prefect_server import PrefectServer, stop_process

pytestmark = [pytest.mark.prefect]
FLOWS = {"deploy-lab", "destroy-lab", "extract-configs", "save-configs", "discover-labs", "cleanup-orphans",
         "control-node", "set-link", "exec-node", "capture-link", "migrate-node",
         "test-lab", "snapshot-lab", "restore-lab"}
HOST = "serve-test-host"


def _deployments_named(server: PrefectServer, name: str) -> dict[str, dict]:
    """``name``'s deployments by flow name."""
    found = server.api("POST", "/deployments/filter", json={"deployments": {"name": {"any_": [name]}}})
    # After the deployments: a flow registered meanwhile is in this list too.
    flows = {f["id"]: f["name"] for f in server.api("POST", "/flows/filter", json={})}
    return {flows[d["flow_id"]]: d for d in found}


def test_serve_registers_every_flow_with_the_cleanup_schedule(prefect_server: PrefectServer) -> None:
    # Deployments made from prefect.yaml on the same server (other tests' pool) must keep
    # their pool: serve's are named after this host, not after the flow.
    pooled_before = {d["id"]: d["work_pool_name"] for d in prefect_server.api("POST", "/deployments/filter", json={})
                     if d.get("work_pool_name")}
    archetype = str(Path(sys.executable).parent / "archetype")
    # A cron that does not fire while the test runs: a served cleanup would take every lab on
    # the host that this test server does not know (other tests', other people's).
    env = prefect_server.env(ARCHETYPE_HOST_NAME=HOST, ARCHETYPE_CLEANUP_CRON="0 0 1 1 *")
    process = subprocess.Popen([archetype, "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        served: dict[str, dict] = {}
        while time.monotonic() < deadline and not set(served) >= FLOWS:  # served may hold more (drain-host)
            time.sleep(1)
            assert process.poll() is None, "archetype serve exited"
            served = _deployments_named(prefect_server, HOST)
        assert set(served) >= FLOWS
        assert all(d["work_pool_name"] is None and "archetype" in d["tags"] for d in served.values())
        assert any(s["schedule"].get("cron") for s in served["cleanup-orphans"]["schedules"])
        assert not served["deploy-lab"]["schedules"]
        pooled_after = {d["id"]: d["work_pool_name"] for d in prefect_server.api("POST", "/deployments/filter", json={})
                        if d["id"] in pooled_before}
        assert pooled_after == pooled_before
    finally:
        stop_process(process)
