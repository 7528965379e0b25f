"""A real Prefect server (and optionally a process worker) for flow and e2e tests.

The server has API auth on, as every server Archetype starts (DESIGN.md, Security): its
clients (``env()``, ``api()``) carry the auth string; ``request()`` lets a test send what it
wants, credentials or none."""

from __future__ import annotations

import base64
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
ARCHETYPE = str(Path(sys.executable).parent / "archetype")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# As Prefect's own client: 429/502/503 (503 is the server's answer when its SQLite database
# is busy) are retried with exponential backoff and jitter, Retry-After honoured.
RETRY_STATUS = {429, 502, 503}
RETRIES = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiet_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="INFO")
    env.update(extra)
    return env


@dataclass
class PrefectServer:
    url: str  # .../api
    home: Path
    process: subprocess.Popen
    auth: str = ""  # the API auth string, ``user:password``
    pool: str | None = None  # the work pool whose deployments (deploy-lab/<pool>, ...) tests run

    @classmethod
    def start(cls, home: Path, timeout: float = 150) -> PrefectServer:  # a loaded 2-core host: >60 s seen
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        auth = f"archetype:{secrets.token_urlsafe(16)}"
        env = quiet_env(PREFECT_HOME=str(home), PREFECT_SERVER_UI_API_URL=url, PREFECT_SERVER_API_AUTH_STRING=auth)
        env.pop("PREFECT_API_AUTH_STRING", None)
        env.pop("PREFECT_API_URL", None)
        log = open(home / "server.log", "w")  # noqa: SIM115 - lives as long as the server
        process = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return cls(url=url, home=home, process=process, auth=auth)
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                break
            time.sleep(0.3)
        stop_process(process)
        raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")

    def env(self, **extra: str) -> dict[str, str]:
        return quiet_env(PREFECT_API_URL=self.url, PREFECT_HOME=str(self.home), PREFECT_API_AUTH_STRING=self.auth,
                         **extra)

    @property
    def headers(self) -> dict[str, str]:
        """What a REST caller sends: HTTP basic auth of the auth string (``curl -u``)."""
        return {"Authorization": "Basic " + base64.b64encode(self.auth.encode()).decode()}

    def request(self, method: str, path: str, *, authenticated: bool = True, **kwargs: Any) -> httpx.Response:
        """One REST call, retried as Prefect's client retries (429, 502, 503)."""
        headers = {**(self.headers if authenticated else {}), **kwargs.pop("headers", {})}
        for attempt in range(RETRIES + 1):
            response = httpx.request(method, f"{self.url}{path}", timeout=30, headers=headers, **kwargs)
            if response.status_code not in RETRY_STATUS or attempt == RETRIES:
                return response
            time.sleep(retry_delay(response, attempt))
        return response

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def deployment_id(self, flow: str) -> str:
        """The id of ``flow``'s deployment on this server's work pool (``flow/pool``)."""
        assert self.pool, "no deployments made from prefect.yaml on this server"
        return self.api("GET", f"/deployments/name/{flow}/{self.pool}")["id"]

    def run_deployment(self, flow: str, parameters: dict[str, Any]) -> str:
        """Create a flow run through the REST API, as the UI's Run button does."""
        run = self.api("POST", f"/deployments/{self.deployment_id(flow)}/create_flow_run", json={"parameters": parameters})
        return run["id"]

    def wait_flow_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/flow_runs/{run_id}")
            if run["state_type"] in TERMINAL:
                return run
            time.sleep(1)
        raise TimeoutError(f"flow run {run_id} not finished after {timeout} s")

    def artifact(self, key: str) -> dict[str, Any] | None:
        found = self.api("POST", "/artifacts/latest/filter", json={"artifacts": {"key": {"any_": [key]}}})
        return found[0] if found else None

    def flow_run_logs(self, run_id: str) -> str:
        logs = self.api("POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
        return "\n".join(entry["message"] for entry in logs)

    def stop(self) -> None:
        from archetype.handoff import stop_executor

        stop_executor(self.home)  # the one its CLI runs started (the commands' PREFECT_HOME is ours)
        stop_process(self.process)


def retry_delay(response: httpx.Response, attempt: int) -> float:
    """Retry-After when the server gives one, else 2**attempt seconds with up to 20% jitter."""
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return 2**attempt * (1 + random.uniform(0, 0.2))  # noqa: S311 - jitter, not secrecy


def stop_process(process: subprocess.Popen, grace: float = 5) -> None:
    """SIGINT twice (a Prefect worker needs two), then SIGKILL the whole session."""
    if process.poll() is not None:
        return
    for _ in range(2):
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=10)


def start_worker(server: PrefectServer, pool: str) -> subprocess.Popen:
    """A process worker of ``pool``, as the README starts one, asking for runs every 2 s
    (Prefect's default, 10 s, made each REST-created run of the suite wait ~5 s for nothing)."""
    log = open(server.home / f"worker-{pool}.log", "w")  # noqa: SIM115
    return subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", pool, "--limit", "4"],
        env=server.env(ARCHETYPE_HOME=str(REPO), ARCHETYPE_WORK_POOL=pool, PREFECT_WORKER_QUERY_SECONDS="2"),
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def deploy_from_prefect_yaml(server: PrefectServer, pool: str) -> None:
    env = server.env(ARCHETYPE_HOME=str(REPO), ARCHETYPE_WORK_POOL=pool)
    subprocess.run([PREFECT, "work-pool", "create", pool, "--type", "process"], env=env, cwd=REPO, check=True,
                   capture_output=True, timeout=120)
    result = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    server.pool = pool
    pause_scheduled_cleanup(server)


def pause_scheduled_cleanup(server: PrefectServer) -> None:
    """Turn off the cleanup-orphans cron of the pool's deployments (it stays declared).

    A test session's worker lives until the session ends, through every later test: its
    scheduled cleanup would take every lab on the host that this server does not know (other
    tests' labs, made through other servers or none; other people's). It once removed a
    reliability lab while `archetype status` was listing it: "two of four containers"."""
    deployment = server.api("GET", f"/deployments/name/cleanup-orphans/{server.pool}")
    for schedule in deployment["schedules"]:
        server.api("PATCH", f"/deployments/{deployment['id']}/schedules/{schedule['id']}", json={"active": False})
    paused = server.api("GET", f"/deployments/{deployment['id']}")["schedules"]
    assert paused and not any(s["active"] for s in paused), paused
