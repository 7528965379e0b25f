"""Fixtures for host-networking tests: real Open vSwitch, real network namespaces.

``ovs`` and ``unique_lab_id`` come from tests/conftest.py (skip on a developer's machine
when OVS does not answer, FAIL under CI=true). Every lab id a test takes from ``lab_ids``
is released at teardown (``release_lab``: only what carries that lab's markers); every
endpoint from ``endpoints`` is killed, which destroys its namespace and the veths in it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from providers import network
from tests.integration.network.helpers import Endpoint


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        message = "host-networking tests need root (network namespaces, veths)"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def lab_ids(ovs, root, unique_lab_id: str) -> Iterator[Callable[[], str]]:
    """Fresh lab ids (``t-`` + 6 hex); each one handed out is released at teardown."""
    made: list[str] = []

    def new() -> str:
        lab = unique_lab_id if not made else f"t-{secrets.token_hex(3)}"
        made.append(lab)
        return lab

    yield new
    errors = []
    for lab in made:
        report = network.release_lab(lab)
        errors += report.errors
    assert not errors, errors


@pytest.fixture
def endpoints(root) -> Iterator[Callable[[str], Endpoint]]:
    """Processes in fresh network namespaces; all killed at teardown."""
    started: list[Endpoint] = []

    def start(name: str) -> Endpoint:
        endpoint = Endpoint.start(name)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.stop()
