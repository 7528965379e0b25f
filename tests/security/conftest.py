"""The API path as an attacker meets it: an authenticated Prefect server, our deployments
from prefect.yaml on a process work pool, and one worker, as on a lab host."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.prefect_server import PrefectServer, deploy_from_prefect_yaml, start_worker, stop_process


@pytest.fixture(scope="session")
def secured_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    server = PrefectServer.start(tmp_path_factory.mktemp("prefect-home-sec"))
    worker = None
    try:
        pool = f"sec-{secrets.token_hex(3)}"
        deploy_from_prefect_yaml(server, pool)
        worker = start_worker(server, pool)
        yield server
    finally:
        if worker is not None:
            stop_process(worker)
        server.stop()


@pytest.fixture
def sec_lab_id() -> str:
    return f"sec-{secrets.token_hex(3)}"
