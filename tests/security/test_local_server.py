"""The long-lived local Prefect server of the CLI: started once by the first flow-backed
command (two at once start one), found by the next, auth on, its files root-only, ended by
`archetype server stop`. A server on the network without auth is refused."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.local_host import ARCHETYPE, fresh_host

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh host: its own workspace and port, no server, no PREFECT_API_URL."""
    with fresh_host(tmp_path) as env:
        yield env


def _archetype(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([ARCHETYPE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _status(env: dict[str, str]) -> dict:
    done = subprocess.run([ARCHETYPE, "server", "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout)


def test_commands_share_one_local_server_started_once(host: dict[str, str], sec_lab_id: str) -> None:
    first, second = (_archetype(host, "destroy", f"{sec_lab_id}{i}", "--json") for i in (1, 2))
    outputs = [p.communicate(timeout=400) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    starts = sum(err.count("starting the local Prefect server") for _out, err in outputs)
    assert starts == 1, outputs  # the lock made the other command wait for it, then use it

    server = _status(host)
    assert server["state"] == "running"
    third = _archetype(host, "destroy", f"{sec_lab_id}3", "--json")
    _out, err = third.communicate(timeout=400)
    assert third.returncode == 0 and "starting" not in err, err
    assert _status(host)["pid"] == server["pid"]  # the same server, found answering

    workspace = Path(host["ARCHETYPE_WORKSPACE"])
    auth = (workspace / "secrets" / "prefect-api-auth").read_text().strip()
    api = server["url"] + "/api"
    assert httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).status_code == 401
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, auth=tuple(auth.split(":", 1)), timeout=30)
    assert runs.status_code == 200 and len(runs.json()) == 3
    for path in (workspace / "secrets" / "prefect-api-auth", workspace / "prefect" / "prefect.db",
                 workspace / "prefect" / "server.log"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path

    stopped = subprocess.run([ARCHETYPE, "server", "stop", "--json"], env=host, capture_output=True, text=True, timeout=60)
    assert json.loads(stopped.stdout)["state"] == "stopped"
    assert not Path(f"/proc/{server['pid']}").exists() or "Z" in Path(f"/proc/{server['pid']}/stat").read_text().split(")")[-1][:3]
    assert _status(host)["state"] == "not running"


def test_a_server_on_the_network_without_auth_is_refused(host: dict[str, str]) -> None:
    env = {**host, "PREFECT_SERVER_API_AUTH_STRING": ""}  # auth turned off on purpose
    refused = subprocess.run([ARCHETYPE, "serve", "--host", "0.0.0.0"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: refusing to start a Prefect server on 0.0.0.0 without API auth")
    assert not (Path(host["ARCHETYPE_WORKSPACE"]) / "prefect" / "server.json").exists()
