"""A real Prefect server, deployments from prefect.yaml, and a process worker: as in production."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.prefect_server import PrefectServer, deploy_from_prefect_yaml, start_worker, stop_process


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    server = PrefectServer.start(tmp_path_factory.mktemp("prefect-home"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_host(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """The server with our deployments on a process work pool and one worker serving it."""
    pool = f"e2e-{secrets.token_hex(3)}"
    deploy_from_prefect_yaml(prefect_server, pool)
    worker = start_worker(prefect_server, pool)
    try:
        yield prefect_server
    finally:
        stop_process(worker)
