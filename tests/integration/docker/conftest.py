"""Fixtures for the docker provider's integration tests: a real dockerd, our images.

``docker_client``, ``ovs`` and ``unique_lab_id`` come from tests/conftest.py (skip on a
developer's machine when a daemon does not answer, FAIL under CI=true). Every lab a test
makes comes from ``lab_factory`` and is destroyed at teardown; nothing of another lab is
ever removed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import docker
import pytest

from providers import labs
from providers.docker import DockerProvider

FRR_IMAGE = "archetype/frr:latest"
LINUX_IMAGE = "archetype/linux:latest"


def _image(client: docker.DockerClient, name: str) -> str:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        message = f"image {name} is missing: build it with scripts/setup-host.sh"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return name


@pytest.fixture
def frr_image(docker_client: docker.DockerClient) -> str:
    return _image(docker_client, os.environ.get("ARCHETYPE_TEST_FRR_IMAGE", FRR_IMAGE))


@pytest.fixture
def linux_image(docker_client: docker.DockerClient) -> str:
    return _image(docker_client, os.environ.get("ARCHETYPE_TEST_LINUX_IMAGE", LINUX_IMAGE))


@pytest.fixture
def provider(docker_client: docker.DockerClient) -> Iterator[DockerProvider]:
    prov = DockerProvider()
    try:
        yield prov
    finally:
        prov.close()


@pytest.fixture
def lab_factory(provider: DockerProvider, unique_lab_id: str) -> Iterator[Callable[[], str]]:
    """Fresh lab ids (the first is ``unique_lab_id``); each one handed out is destroyed at
    teardown, and only those."""
    made: list[str] = []

    def new_lab() -> str:
        lab_id = unique_lab_id if not made else f"{unique_lab_id}-{secrets.token_hex(2)}"
        made.append(lab_id)
        return lab_id

    try:
        yield new_lab
    finally:
        for lab_id in made:
            labs.destroy_lab(lab_id)
