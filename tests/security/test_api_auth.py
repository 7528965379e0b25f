"""The Prefect API is the trust boundary (flows run as root): without the auth string a
REST caller is refused and nothing is created."""

from __future__ import annotations

import pytest

from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.slow]


def _runs_named(server: PrefectServer, name: str) -> list[dict]:
    return server.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"any_": [name]}}})


def test_a_request_without_credentials_is_refused_and_creates_nothing(secured_host: PrefectServer, sec_lab_id: str) -> None:
    topology = f"name: {sec_lab_id}\ntopology:\n  nodes:\n    h1: {{kind: linux}}\n"
    deployment = secured_host.deployment_id("deploy-lab")
    path = f"/deployments/{deployment}/create_flow_run"
    body = {"json": {"parameters": {"topology": topology}, "name": f"deploy-lab/{sec_lab_id}"}}

    none = secured_host.request("POST", path, authenticated=False, **body)
    wrong = secured_host.request("POST", path, authenticated=False, headers={"Authorization": "Basic YXJjaGV0eXBlOnd4"}, **body)
    not_basic = secured_host.request("POST", path, authenticated=False,
                                     headers={"Authorization": f"Bearer {secured_host.auth}"}, **body)
    reads = secured_host.request("POST", "/flow_runs/filter", authenticated=False, json={})

    assert [r.status_code for r in (none, wrong, not_basic, reads)] == [401, 401, 401, 401]
    assert _runs_named(secured_host, f"deploy-lab/{sec_lab_id}") == []  # no run was made
    assert leftovers(sec_lab_id) == {}


def test_the_auth_string_as_http_basic_auth_is_let_in(secured_host: PrefectServer) -> None:
    """What the README's curl example sends (`curl -u "$(cat .../prefect-api-auth)"`)."""
    user, password = secured_host.auth.split(":", 1)
    import httpx

    response = httpx.post(f"{secured_host.url}/flow_runs/filter", json={"limit": 1}, auth=(user, password), timeout=30)
    assert response.status_code == 200
