"""Placement over the fleet, and a host that does not take its step."""

from __future__ import annotations

import pytest
import yaml

from tests.multihost.conftest import HOSTS, Fleet, host_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]


def linux_chain(lab_id: str, tmp_path, count: int, hosts: dict[str, str] | None = None, memory: int | None = None) -> str:
    """h1 - h2 - ... - hN, 10.9.<i>.0/24 on link i, addresses set by post-boot commands."""
    nodes = {}
    for i in range(1, count + 1):
        commands = []
        if i > 1:
            commands.append(f"ip addr add 10.9.{i - 1}.2/24 dev eth1")
        if i < count:
            commands.append(f"ip addr add 10.9.{i}.1/24 dev eth{2 if i > 1 else 1}")
        nodes[f"h{i}"] = {"kind": "linux", "exec": commands, **({"host": hosts[f"h{i}"]} if hosts and f"h{i}" in hosts else {}),
                          **({"memory": memory} if memory else {})}
    links = [{"endpoints": [f"h{i}:eth{2 if i > 1 else 1}", f"h{i + 1}:eth1"]} for i in range(1, count)]
    path = tmp_path / f"{lab_id}.yml"
    path.write_text(yaml.safe_dump({"name": lab_id, "topology": {"nodes": nodes, "links": links}}, sort_keys=False))
    return str(path)


def test_a_lab_without_hosts_is_placed_across_both(fleet: Fleet, lab_id: str, tmp_path) -> None:
    try:
        # Each node counts 1900 MiB against the 8192 a simulated host offers: whatever else
        # runs on the fleet, the first node goes to the freer host, the next to the other one.
        code, deployed, err = fleet.cli_json("deploy", linux_chain(lab_id, tmp_path, 4, memory=1900))
        assert code == 0, err[-3000:]
        where = {n["name"]: n["host"] for n in deployed["nodes"]}
        assert set(where.values()) == set(HOSTS), where
        crossing = [link for link in deployed["links"] if link["vni"] is not None]
        assert crossing
        for link in crossing:  # every cross-host link carries traffic
            a = link["endpoints"][0].split(":")[0]
            i = int(a[1:])
            code, out = fleet.docker_exec(where[a], lab_id, a, "ping", "-c", "2", "-W", "3", f"10.9.{i}.2")
            assert code == 0, (link, out)
    finally:
        fleet.cli("destroy", lab_id)
    assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}


def test_a_lab_that_cannot_be_placed_is_invalid_and_creates_nothing(fleet: Fleet, lab_id: str, tmp_path) -> None:
    code, _, err = fleet.cli_json("deploy", linux_chain(lab_id, tmp_path, 2, {"h2": "sim-9"}))
    assert code == 2, err
    assert "h2" in err and "sim-9" in err
    assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}


def test_a_host_whose_worker_died_fails_the_deploy_by_name_then_it_converges(fleet: Fleet, lab_id: str, tmp_path) -> None:
    path = linux_chain(lab_id, tmp_path, 2, {"h1": "sim-1", "h2": "sim-2"})
    try:
        assert fleet.sim("worker-stop", "sim-2").returncode == 0  # killed (SIGKILL, its whole process group)
        result = fleet.cli("deploy", path, extra_env={"ARCHETYPE_HOST_PICKUP_TIMEOUT": "20"})
        assert result.returncode == 1, result.stderr[-3000:]
        assert "host sim-2 did not take its step" in result.stderr, result.stderr[-3000:]
    finally:
        assert fleet.sim("worker-start", "sim-2").returncode == 0
        fleet.wait_alive("sim-2")
    try:
        code, deployed, err = fleet.cli_json("deploy", path)
        assert code == 0, err[-3000:]
        assert {n["name"]: n["state"] for n in deployed["nodes"]} == {"h1": "ready", "h2": "ready"}
        code, out = fleet.docker_exec("sim-1", lab_id, "h1", "ping", "-c", "2", "-W", "3", "10.9.1.2")
        assert code == 0, out
        assert _cancelled_children(fleet, lab_id) >= 1  # the run of the dead worker never ran later
    finally:
        fleet.cli("destroy", lab_id)
    assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}


def _cancelled_children(fleet: Fleet, lab_id: str) -> int:
    import json
    import os
    import subprocess
    import sys

    from tests.multihost.conftest import REPO

    script = (
        "import sys\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId\n"
        "with get_client(sync_client=True) as c:\n"
        "    deployment = c.read_deployment_by_name('deploy-slice/sim-2')\n"
        "    runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])))\n"
        "    print(sum(1 for r in runs if r.parameters.get('lab_id') == sys.argv[1] and r.state\n"
        "              and r.state.type.value == 'CANCELLED'))\n"
    )
    env = {**os.environ, **fleet.env, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script, lab_id], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
