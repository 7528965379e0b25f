"""The long-lived local Prefect server that the CLI and ``archetype serve`` share.

With no ``PREFECT_API_URL``, the first flow-backed command starts one detached
``prefect server start`` (loopback, API auth on, its database in the workspace's
``prefect/`` folder) and the following commands find it answering: no command pays
Prefect's temporary-server start again. A lock file makes two commands started at once
start one server. ``archetype server stop`` ends it (``make clean-host`` does too).

Files, all in the workspace and root-only: ``prefect/server.json`` (pid, url),
``prefect/server.log``, ``locks/prefect-server.lock``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock, Timeout

from lab import api_auth
from lab.errors import ArchetypeError, TopologyError
from lab.private import FILE_MODE, open_private_log, private_dir, write_private
from lab.processes import alive, terminate
from lab.settings import get_settings

START_TIMEOUT = 120.0  # a cold first start (database migrations) on a loaded 2-core host


class ServerError(ArchetypeError):
    """The local Prefect server cannot be started, reached or stopped."""


@dataclass(frozen=True)
class LocalServer:
    pid: int
    url: str  # http://HOST:PORT/api

    @property
    def ui(self) -> str:
        return self.url.removesuffix("/api")


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or get_settings().workspace / "prefect")


def record_path() -> Path:
    return prefect_home() / "server.json"


def log_path() -> Path:
    return prefect_home() / "server.log"


def lock_path() -> Path:
    return get_settings().workspace / "locks" / "prefect-server.lock"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str) -> None:
    """A server reachable from the network runs root flows for anyone: never without auth."""
    if not is_loopback(host) and not api_auth.auth_string():
        raise TopologyError([  # invalid input: exit 2
            f"refusing to start a Prefect server on {host} without API auth: flows run as root on this "
            f"host. Unset {api_auth.SERVER_VARIABLE} (Archetype then uses {api_auth.auth_path()}) or "
            "give it a value, or bind to 127.0.0.1"
        ])


def owner() -> str | None:
    """Who started the recorded server (``ARCHETYPE_SERVER_OWNER`` then), if one is recorded."""
    try:
        return str(json.loads(record_path().read_text()).get("owner", ""))
    except (OSError, ValueError, AttributeError):
        return None


def running() -> LocalServer | None:
    """The recorded server, if its process lives and it answers with our credentials."""
    try:
        record = json.loads(record_path().read_text())
        server = LocalServer(pid=int(record["pid"]), url=str(record["url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not alive(server.pid) or not _answers(server.url):
        return None
    return server


def ensure(host: str = "127.0.0.1", port: int | None = None, on_start: Callable[[str], None] | None = None) -> LocalServer:
    """The running local server, or a new one (started once, whoever asks at the same time).
    ``on_start`` is told the address when this call is the one that starts it."""
    port = port or get_settings().server_port
    check_bind(host)
    private_dir(lock_path().parent)
    lock = FileLock(str(lock_path()), mode=FILE_MODE, thread_local=False)
    try:
        lock.acquire(timeout=START_TIMEOUT + 30)
    except Timeout:
        raise ServerError(f"another command holds {lock_path()} (starting the local Prefect server)") from None
    try:
        server = running()
        if server is not None:
            wanted = f"http://{host}:{port}/api"
            if server.url != wanted:
                raise ServerError(f"the local Prefect server already runs at {server.ui}, not at {wanted.removesuffix('/api')}: "
                                  "use that address, or stop it first (archetype server stop)")
            return server
        if on_start is not None:
            on_start(f"http://{host}:{port}")
        return _start(host, port)
    finally:
        lock.release()


def stop(timeout: float = 20) -> LocalServer | None:
    """End the recorded server (SIGTERM to its process group, then SIGKILL); None if none ran."""
    try:
        record = json.loads(record_path().read_text())
        server = LocalServer(pid=int(record["pid"]), url=str(record["url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    record_path().unlink(missing_ok=True)
    if not alive(server.pid):
        return None
    terminate(server.pid, group=True, timeout=timeout, kill_after=10)  # its own session: uvicorn and its services
    return server


def _start(host: str, port: int) -> LocalServer:
    url = f"http://{host}:{port}/api"
    if _port_taken(host, port):
        raise ServerError(f"{host}:{port} is in use by another program: set ARCHETYPE_SERVER_PORT to a free port")
    home = private_dir(prefect_home())
    env = {
        **os.environ,
        **api_auth.server_env(),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_UI_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PREFECT_API_URL", None)
    prefect = str(Path(sys.executable).parent / "prefect")
    with open_private_log(log_path()) as log:
        process = subprocess.Popen(
            [prefect, "server", "start", "--host", host, "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the command; no terminal signal reaches it
            close_fds=True, cwd=str(home), umask=0o077,  # its database: flow parameters, root only
        )
    server = LocalServer(pid=process.pid, url=url)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _answers(url):
            # owner: who started it (ARCHETYPE_SERVER_OWNER, e.g. a test session that
            # stops only the server it started, never one a person or another session uses)
            owner = os.environ.get("ARCHETYPE_SERVER_OWNER", "")
            write_private(record_path(), json.dumps({"pid": process.pid, "url": url, "owner": owner}))
            _protect_database(home)
            return server
        time.sleep(0.3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    tail = log_path().read_text(errors="replace")[-1500:]
    raise ServerError(f"the local Prefect server on {host}:{port} did not start (log {log_path()}):\n{tail}")


def _protect_database(home: Path) -> None:
    """SQLite makes its files with the umask's mode: the database holds every flow parameter."""
    for path in home.glob("*.db*"):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)


def _answers(url: str) -> bool:
    """Healthy, and our credentials are accepted (a foreign server on the port is not ours)."""
    auth = api_auth.auth_string()
    headers = {"Authorization": "Basic " + _b64(auth)} if auth else {}
    try:
        return httpx.get(f"{url}/admin/version", headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def _port_taken(host: str, port: int) -> bool:
    try:
        httpx.get(f"http://{host}:{port}/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def client_env(server: LocalServer) -> dict[str, str]:
    """The environment a Prefect client needs to talk to ``server``."""
    return {"PREFECT_API_URL": server.url, **api_auth.client_env()}


def api_env(on_start: Callable[[str], None] | None = None) -> dict[str, str]:
    """Where a command's flows report: ``PREFECT_API_URL`` when set (with our credentials
    unless the caller gave its own), else the local server, started if none answers."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return {"PREFECT_API_URL": url, **api_auth.client_env()}
    return client_env(ensure(on_start=on_start))
