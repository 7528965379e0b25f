"""Single-host mode: ``archetype serve`` serves every flow as a deployment from this process."""

from __future__ import annotations

import os

from prefect import serve

CLEANUP_CRON = os.environ.get("ARCHETYPE_CLEANUP_CRON", "*/30 * * * *")


def deployments() -> list:
    from flows.cleanup_orphans import cleanup_orphans
    from flows.deploy_lab import deploy_lab
    from flows.destroy_lab import destroy_lab
    from flows.discover_labs import discover_labs
    from flows.extract_configs import extract_configs

    return [
        deploy_lab.to_deployment(name="deploy-lab", tags=["archetype"]),
        destroy_lab.to_deployment(name="destroy-lab", tags=["archetype"]),
        extract_configs.to_deployment(name="extract-configs", tags=["archetype"]),
        discover_labs.to_deployment(name="discover-labs", tags=["archetype"]),
        cleanup_orphans.to_deployment(
            name="cleanup-orphans", cron=CLEANUP_CRON, tags=["archetype"], concurrency_limit=1
        ),
    ]


def serve_all() -> None:
    serve(*deployments())
