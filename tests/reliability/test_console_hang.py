"""A console that hangs during post-boot: the command times out, is retried once from itself, and
the run fails with a message naming the node and the command. Nothing hangs: the deploy
ends within a bounded time and leaves no console process behind.

The hang is real: the VM's `exec` holds a mini-ios `ping` that runs for hours (one lost
probe per second), and ARCHETYPE_COMMAND_TIMEOUT is a few seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lab import names
from tests.reliability import faults
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs]

HANG = "ping 192.0.2.1 repeat 100000 timeout 1"
COMMAND_TIMEOUT = 5


def _task_runs(server: PrefectServer, name: str) -> list[dict]:
    return server.api("POST", "/task_runs/filter", json={"task_runs": {"name": {"any_": [name]}}})


def test_a_hanging_post_boot_command_times_out_retries_and_reports(
    server: PrefectServer, tmp_path: Path, mini_ios_image: None
) -> None:
    lab = faults.lab_id("hang")
    topology = faults.mixed_lab(lab, tmp_path, vm_exec=["configure terminal", "hostname v1", "end", HANG])
    started = time.monotonic()
    try:
        done = faults.cli(server, "deploy", str(topology), "--json", timeout=300,
                          ARCHETYPE_COMMAND_TIMEOUT=str(COMMAND_TIMEOUT), ARCHETYPE_CONSOLE_TIMEOUT="15")
        seconds = time.monotonic() - started
        assert done.returncode == 1, f"exit {done.returncode}: {done.stderr[-3000:]}"
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert errors, done.stderr[-3000:]
        assert "v1" in errors[0] and HANG in errors[0] and "timed out" in errors[0], errors
        assert "r1" not in errors[0].split(f"lab {lab}: ", 1)[-1].split(":", 1)[0], errors  # only v1 failed
        assert seconds < 240, f"the failing deploy took {seconds:.0f} s"
        # --json still prints the lab: which nodes came up, which failed
        report = json.loads(done.stdout)
        assert {n["name"]: n["state"] for n in report["nodes"]} == {"r1": "ready", "v1": "failed (post-boot)"}

        # The timed-out command was retried once, from itself (the task resumes where the
        # commands got to, rather than Prefect re-running every command), then the task and
        # the deploy's run failed.
        (flow_run,) = server.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"any_": [f"deploy-lab/{lab}"]}}})
        assert flow_run["state_type"] == "FAILED"
        runs = [r for r in _task_runs(server, "post-boot/v1") if r["flow_run_id"] == flow_run["id"]]
        assert [(r["run_count"], r["state_type"]) for r in runs] == [(1, "FAILED")]
        logs = server.flow_run_logs(flow_run["id"])
        assert logs.count("retrying from command") == 1, logs[-3000:]

        assert faults.state_status(server, lab) == "failed"
        assert faults.node_states(server, lab) == {"r1": "ready", "v1": "failed (post-boot)"}
        assert faults.console_processes(lab) == [], "a console session outlived the deploy"
        # The rest of the lab came up; the VM runs; discovery sees both.
        faults.assert_discovered(lab, {"r1": "running", "v1": "running"})
        assert faults.containers(lab)[0]["state"] == "running"
        assert faults.domains(lab) == [names.domain_name(lab, "v1")]

        faults.destroy_and_check(server, lab)
    finally:
        faults.safety_destroy(server, lab)
    assert leftovers(lab) == {}
