"""A kind's broad capabilities (cEOS: every capability, no seccomp) go only to the kind's
catalog images: a topology naming another image gets the default set."""

from __future__ import annotations

import time

import docker
import pytest

from lab import names
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs, pytest.mark.slow]


def _container_of(client: docker.DockerClient, name: str, run: str, server: PrefectServer, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.api.inspect_container(name)
        except docker.errors.NotFound:
            state = server.api("GET", f"/flow_runs/{run}")["state_type"]
            assert state not in {"FAILED", "CRASHED", "COMPLETED"}, server.flow_run_logs(run)
            time.sleep(0.5)
    raise TimeoutError(f"{name} was not created in {timeout} s")


def _logged(server: PrefectServer, run: str, text: str, timeout: float = 60) -> bool:
    """Run logs reach the server in batches: ask again for a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.flow_run_logs(run):
            return True
        time.sleep(1)
    return False


def test_an_image_override_of_ceos_does_not_get_its_broad_capabilities(secured_host: PrefectServer, sec_lab_id: str) -> None:
    topology = f"name: {sec_lab_id}\ntopology:\n  nodes:\n    c1: {{kind: ceos, image: 'archetype/frr:latest'}}\n"
    client = docker.from_env()
    run = secured_host.run_deployment("deploy-lab", {"topology": topology})
    try:
        host_config = _container_of(client, names.container_name(sec_lab_id, "c1"), run, secured_host)["HostConfig"]
        assert host_config["CapAdd"] == ["NET_ADMIN"] or host_config["CapAdd"] == ["CAP_NET_ADMIN"]
        assert not host_config.get("SecurityOpt")  # docker's default seccomp profile stays on
        assert host_config["Privileged"] is False
        assert _logged(secured_host, run, "is not one of kind ceos's catalog images")  # validation's warning
    finally:
        secured_host.api("POST", f"/flow_runs/{run}/set_state", json={"state": {"type": "CANCELLING"}, "force": True})
        secured_host.wait_flow_run(run, timeout=120)
        destroyed = secured_host.wait_flow_run(secured_host.run_deployment("destroy-lab", {"lab": sec_lab_id}), 300)
        client.close()
    assert destroyed["state_type"] == "COMPLETED"
    assert leftovers(sec_lab_id) == {}
