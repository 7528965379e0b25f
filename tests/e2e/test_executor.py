"""The warm executor (archetype/executor.py) as a person meets it: the first flow-backed
command starts it with the local server, and from then on every command is run by a forked
child of that one process, which has Prefect and the flows imported, with the caller's
folder, environment and terminal: the same output and exit codes as in-process. A killed
command takes its run with it. Commands for another Prefect server (PREFECT_API_URL) have an
executor of their own, in their Prefect folder. A caller in other namespaces, with other PREFECT_
variables, or after the code changed runs in its own process, as before."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archetype.handoff import stop_executor
from lab import names
from tests.support.leftovers import leftovers
from tests.support.local_host import ARCHETYPE, fresh_host
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh host: its own workspace and port, no server, no executor, no PREFECT_API_URL."""
    with fresh_host(tmp_path) as env:
        yield env


def archetype(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([ARCHETYPE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def home(env: dict[str, str]) -> Path:
    """The commands' Prefect folder, where their executor lives."""
    return Path(env.get("PREFECT_HOME") or Path(env["ARCHETYPE_WORKSPACE"]) / "prefect")


def executor_log(env: dict[str, str]) -> str:
    path = home(env) / "executor.log"
    return path.read_text() if path.exists() else ""


def executor_pid(env: dict[str, str]) -> int:
    return int(json.loads((home(env) / "executor.json").read_text())["pid"])


def served(env: dict[str, str], *argv: str) -> list[int]:
    """The pids of the executor's children that ran ``archetype ARGV``."""
    line = re.compile(rf"pid (\d+): archetype {re.escape(' '.join(argv))}$", re.MULTILINE)
    return [int(pid) for pid in line.findall(executor_log(env))]


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


def two_hosts(folder: Path, lab_id: str) -> Path:
    """Two linux hosts on a link; their exec lines may run again (a redeploy after a kill)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab.yml"
    path.write_text(f"""\
name: {lab_id}
topology:
  nodes:
    h1: {{kind: linux, exec: ["ip addr replace 10.77.0.1/24 dev eth1"]}}
    h2: {{kind: linux, exec: ["ip addr replace 10.77.0.2/24 dev eth1"]}}
  links:
    - endpoints: ["h1:eth1", "h2:eth1"]
""")
    return path


def test_commands_run_in_the_executor_with_the_callers_folder_output_and_exit_codes(
    host: dict[str, str], tmp_path: Path, unique_lab_id: str
) -> None:
    labs = tmp_path / "labs"
    two_hosts(labs, unique_lab_id)
    try:
        # A path relative to the caller's folder: the child works in that folder.
        deployed = archetype(host, "deploy", "lab.yml", "--json", cwd=labs)
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert "starting the local Prefect server" in deployed.stderr  # the first command started it
        result = json.loads(deployed.stdout)  # stdout: exactly the JSON document
        assert result["lab_id"] == unique_lab_id
        assert {n["name"]: n["state"] for n in result["nodes"]} == {"h1": "ready", "h2": "ready"}
        assert served(host, "deploy", "lab.yml", "--json"), executor_log(host)
        executor = executor_pid(host)

        status = archetype(host, "status", unique_lab_id, "--json")
        assert status.returncode == 0, status.stderr
        (lab,) = json.loads(status.stdout)["labs"]
        assert {n["name"]: n["state"] for n in lab["nodes"]} == {"h1": "running", "h2": "running"}
        assert served(host, "status", unique_lab_id, "--json")

        (labs / "bad.yml").write_text("name: Not_Valid\ntopology: {nodes: {}}\n")
        invalid = archetype(host, "deploy", "bad.yml", cwd=labs)  # exit 2, stderr only
        assert invalid.returncode == 2 and invalid.stdout == "", (invalid.stdout, invalid.stderr)
        assert invalid.stderr.startswith("error: "), invalid.stderr
        assert served(host, "deploy", "bad.yml")

        destroyed = archetype(host, "destroy", unique_lab_id, "--json")
        assert destroyed.returncode == 0, destroyed.stderr[-3000:]
        assert served(host, "destroy", unique_lab_id, "--json")
        assert executor_pid(host) == executor  # one process served them all
    finally:
        archetype(host, "destroy", unique_lab_id, "--json")
    assert leftovers(unique_lab_id) == {}


def test_a_killed_command_takes_its_run_with_it_and_the_lab_stays_deployable(
    host: dict[str, str], tmp_path: Path, unique_lab_id: str, docker_client: object
) -> None:
    topology = two_hosts(tmp_path / "labs", unique_lab_id)
    try:
        deploy = subprocess.Popen([ARCHETYPE, "deploy", str(topology), "--json"], env=host, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 180
        # sparse: existence only, no inspect per container. A container of the deploy can go
        # between the list and its inspect (the create path removes one whose start failed,
        # before the step's retry): a 404 here failed this poll once in CI under load.
        while not docker_client.containers.list(all=True, sparse=True,
                                                filters={"label": f"{names.LABEL_LAB}={unique_lab_id}"}):
            assert deploy.poll() is None and time.monotonic() < deadline, "the deploy ended before any node was made"
            time.sleep(0.1)
        (child,) = served(host, "deploy", str(topology), "--json")
        os.killpg(deploy.pid, signal.SIGKILL)  # the caller and its whole group, as a crash would
        deploy.wait(timeout=30)
        assert gone(child, within=20), f"the executor's child {child} outlived its killed caller"
        assert re.search(rf"pid {child}: killed by signal {signal.SIGKILL}", executor_log(host)), executor_log(host)

        again = archetype(host, "deploy", str(topology), "--json")
        assert again.returncode == 0, again.stderr[-3000:]
        assert {n["state"] for n in json.loads(again.stdout)["nodes"]} == {"ready"}
    finally:
        destroyed = archetype(host, "destroy", unique_lab_id, "--json")
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert leftovers(unique_lab_id) == {}


def test_callers_it_must_not_serve_run_in_their_own_process(host: dict[str, str], unique_lab_id: str) -> None:
    started = archetype(host, "destroy", unique_lab_id, "--json")  # a flow command: starts the executor
    assert started.returncode == 0, started.stderr[-3000:]
    executor = executor_pid(host)

    other_prefect = archetype(host | {"PREFECT_LOGGING_LEVEL": "WARNING"}, "status", "--json")
    assert other_prefect.returncode == 0 and "labs" in json.loads(other_prefect.stdout)
    assert "refused: the caller's PREFECT_ variables differ" in executor_log(host)

    elsewhere = subprocess.run(["unshare", "--net", ARCHETYPE, "status", "--json"], env=host, capture_output=True,
                               text=True, timeout=120)  # another network namespace: a simulated host's
    assert elsewhere.returncode == 0 and "labs" in json.loads(elsewhere.stdout), elsewhere.stderr
    assert "refused: the caller runs in other namespaces" in executor_log(host)
    assert not served(host, "status", "--json")

    later = time.time() + 2
    os.utime(REPO / "lab" / "names.py", (later, later))  # the code changed on disk
    changed = archetype(host, "status", "--json")
    assert changed.returncode == 0 and "labs" in json.loads(changed.stdout)
    assert "refused: the code changed since this executor started" in executor_log(host)
    assert gone(executor, within=10), "an executor with old code kept running"

    fresh = archetype(host, "destroy", unique_lab_id, "--json")  # the next flow command starts a new one
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert executor_pid(host) != executor
    assert len(served(host, "destroy", unique_lab_id, "--json")) == 2


def test_commands_for_another_prefect_server_are_served_by_their_folders_executor(
    prefect_server: PrefectServer, unique_lab_id: str
) -> None:
    env = prefect_server.env()  # PREFECT_API_URL and PREFECT_HOME: a fleet's or a remote server's
    # The session's server may have one from earlier tests, with older code (a test above
    # changes the code's mtime): this test's first command starts the one it checks.
    stop_executor(prefect_server.home)
    destroyed = archetype(env, "destroy", unique_lab_id, "--json")
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert json.loads(destroyed.stdout)["lab_id"] == unique_lab_id
    assert "starting the local Prefect server" not in destroyed.stderr  # its runs went to that server
    status = archetype(env, "status", "--json")
    assert status.returncode == 0 and "labs" in json.loads(status.stdout)
    assert served(env, "destroy", unique_lab_id, "--json") and served(env, "status", "--json"), executor_log(env)
    (run,) = prefect_server.api("POST", "/flow_runs/filter",
                                json={"flow_runs": {"name": {"any_": [f"destroy-lab/{unique_lab_id}"]}}})
    assert run["state_type"] == "COMPLETED"
