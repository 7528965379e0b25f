"""Single-host mode: ``archetype serve`` serves every flow as a deployment from this process.

With no ``PREFECT_API_URL``, it first starts a Prefect server bound to loopback (the flows
run as root: the API must not be reachable from the network unless you say so).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

CLEANUP_CRON = os.environ.get("ARCHETYPE_CLEANUP_CRON", "*/30 * * * *")


def deployments() -> list:
    from flows.capture_link import capture_link
    from flows.cleanup_orphans import cleanup_orphans
    from flows.control_node import control_node
    from flows.deploy_lab import deploy_lab
    from flows.destroy_lab import destroy_lab
    from flows.discover_labs import discover_labs
    from flows.exec_node import exec_node
    from flows.extract_configs import extract_configs
    from flows.set_link import set_link
    from lab.settings import get_settings

    # Named after the host, as prefect.yaml's are after the host's pool: `deploy-lab/HOST`.
    # One name for every host would make each host's deployments replace the others'.
    host = get_settings().host_name
    return [
        deploy_lab.to_deployment(name=host, tags=["archetype"]),
        destroy_lab.to_deployment(name=host, tags=["archetype"]),
        extract_configs.to_deployment(name=host, tags=["archetype"]),
        discover_labs.to_deployment(name=host, tags=["archetype"]),
        cleanup_orphans.to_deployment(name=host, cron=CLEANUP_CRON, tags=["archetype"], concurrency_limit=1),
        *(f.to_deployment(name=host, tags=["archetype"]) for f in (control_node, set_link, exec_node, capture_link)),
    ]


def start_local_server(host: str, port: int, timeout: float = 90) -> subprocess.Popen:
    """A Prefect server for this host; its UI is at http://HOST:PORT."""
    url = f"http://{host}:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_UI_API_URL": url}
    prefect = str(Path(sys.executable).parent / "prefect")
    server = subprocess.Popen([prefect, "server", "start", "--host", host, "--port", str(port)], env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                os.environ["PREFECT_API_URL"] = url
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
        if server.poll() is not None:
            break
    server.terminate()
    raise RuntimeError(f"the Prefect server on {host}:{port} did not start")


def serve_all(host: str = "127.0.0.1", port: int = 4200) -> None:
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        server = start_local_server(host, port)
    try:
        from prefect import serve
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
            serve(*deployments())
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
