"""Single-host mode: ``archetype serve`` serves every flow as a deployment from this process.

With no ``PREFECT_API_URL``, it uses the local Prefect server (deployments/local_server.py),
bound to loopback unless ``--host`` says otherwise, always with API auth (the flows run as
root: a server reachable from the network without auth is refused).
"""

from __future__ import annotations

import os
import sys

CLEANUP_CRON = os.environ.get("ARCHETYPE_CLEANUP_CRON", "*/30 * * * *")


def deployments() -> list:
    from flows.capture_link import capture_link
    from flows.cleanup_orphans import cleanup_orphans
    from flows.control_node import control_node
    from flows.deploy_lab import deploy_lab
    from flows.destroy_lab import destroy_lab
    from flows.discover_labs import discover_labs
    from flows.drain_host import drain_host
    from flows.evacuate_host import evacuate_host
    from flows.exec_node import exec_node
    from flows.extract_configs import extract_configs
    from flows.migrate_node import migrate_node
    from flows.restore_lab import restore_lab
    from flows.save_configs import save_configs
    from flows.set_link import set_link
    from flows.snapshot_lab import snapshot_lab
    from flows.test_lab import test_lab
    from lab.settings import get_settings

    # Named after the host, as prefect.yaml's are after the host's pool: `deploy-lab/HOST`.
    # One name for every host would make each host's deployments replace the others'.
    host = get_settings().host_name
    return [
        deploy_lab.to_deployment(name=host, tags=["archetype"]),
        destroy_lab.to_deployment(name=host, tags=["archetype"]),
        extract_configs.to_deployment(name=host, tags=["archetype"]),
        save_configs.to_deployment(name=host, tags=["archetype"]),
        discover_labs.to_deployment(name=host, tags=["archetype"]),
        migrate_node.to_deployment(name=host, tags=["archetype"]),
        drain_host.to_deployment(name=host, tags=["archetype"]),
        evacuate_host.to_deployment(name=host, tags=["archetype"]),
        cleanup_orphans.to_deployment(name=host, cron=CLEANUP_CRON, tags=["archetype"], concurrency_limit=1),
        *(f.to_deployment(name=host, tags=["archetype"]) for f in (control_node, set_link, exec_node, capture_link)),
        *(f.to_deployment(name=host, tags=["archetype"]) for f in (snapshot_lab, restore_lab)),
        test_lab.to_deployment(name=host, tags=["archetype"]),
    ]


def serve_all(host: str = "127.0.0.1", port: int | None = None) -> None:
    """Serve the flows until interrupted. Without PREFECT_API_URL they go to the local
    server the CLI shares (started if none answers, API auth on); it outlives ``serve``:
    ``archetype server stop`` ends it."""
    from deployments import local_server
    from lab.settings import get_settings

    if os.environ.get("PREFECT_API_URL"):
        api = local_server.api_env()
    else:
        server = local_server.ensure(host, port)
        print(f"Prefect UI and API: {server.ui} (log in with the string in {local_server.api_auth.auth_path()})",
              file=sys.stderr)
        api = local_server.client_env(server)
    os.environ.update(api)  # the flow runs serve starts are child processes
    from prefect import serve
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    settings = {PREFECT_API_URL: api["PREFECT_API_URL"]}
    if api.get("PREFECT_API_AUTH_STRING"):
        settings[PREFECT_API_AUTH_STRING] = api["PREFECT_API_AUTH_STRING"]
    with temporary_settings(updates=settings):
        serve(*deployments(), query_seconds=get_settings().runner_poll_seconds)
