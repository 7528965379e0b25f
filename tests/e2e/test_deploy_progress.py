"""Progress while deploying, as a person sees it: `archetype deploy` prints each node's
stage as it is reached (created, wired, ready, configured), nothing of it under --json;
the run in Prefect carries a progress artifact at 100 % and the lab's state table as it
filled (versions written while the nodes came up, before the final one)."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest

from lab import names
from tests.e2e.test_cli_contract import cli
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker]

STAGES = ("created", "wired", "ready", "configured")


def small_lab(tmp_path: Path, lab_id: str) -> Path:
    """Two FRR routers with startup configs and a linux host with an exec line (so that
    one node has a post-boot stage of its own), in a triangle."""
    path = tmp_path / f"{lab_id}.yml"
    path.write_text(f"""\
name: {lab_id}
topology:
  nodes:
    r1: {{kind: frr, startup-config: "hostname r1\\nrouter bgp 65001\\n neighbor eth1 interface remote-as external\\n"}}
    r2: {{kind: frr, startup-config: "hostname r2\\nrouter bgp 65002\\n neighbor eth1 interface remote-as external\\n"}}
    h1:
      kind: linux
      exec: ["ip addr add 10.9.0.1/24 dev eth1"]
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
    - endpoints: ["r1:eth2", "h1:eth1"]
    - endpoints: ["r2:eth2", "h1:eth2"]
""")
    return path


def stage_lines(text: str, lab_id: str) -> dict[str, list[tuple[str, float]]]:
    """node -> [(stage, seconds)] in the order the terminal showed them."""
    shown: dict[str, list[tuple[str, float]]] = {}
    for match in re.finditer(rf"^{lab_id} (\S+): (\w+) at ([\d.]+) s$", text, re.MULTILINE):
        shown.setdefault(match[1], []).append((match[2], float(match[3])))
    return shown


def test_deploy_shows_each_nodes_stages_and_the_run_shows_its_progress(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    lab_id = f"bench-prog-{secrets.token_hex(2)}"
    topology = small_lab(tmp_path, lab_id)
    try:
        deployed = cli(prefect_server, "deploy", str(topology))
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        shown = stage_lines(deployed.stdout, lab_id)
        # A node shown failed after it was configured: the done-callback read the task's
        # state from the API before its end was recorded (flows/deploy_lab.py, _show_failure).
        assert not re.search(rf"^{lab_id} \S+: failed", deployed.stdout, re.MULTILINE), deployed.stdout[-3000:]
        assert set(shown) == {"r1", "r2", "h1"}, deployed.stdout[-3000:]
        for node, lines in shown.items():
            assert [stage for stage, _ in lines] == list(STAGES), (node, lines)
            times = [seconds for _, seconds in lines]
            assert times == sorted(times), (node, lines)

        _assert_run_artifacts(prefect_server, lab_id)

        again = cli(prefect_server, "deploy", str(topology), "--json")  # converges; quiet but for the JSON
        assert again.returncode == 0, again.stderr[-3000:]
        result = json.loads(again.stdout)  # stdout is exactly one JSON document
        assert not stage_lines(again.stdout + again.stderr, lab_id)
        for node in result["nodes"]:
            stages = node["stages"]
            assert list(stages) == list(STAGES), node
            assert list(stages.values()) == sorted(stages.values()), node
        timings = result["timings"]
        assert timings["flow_started_at"] <= timings["bring_up_started_at"] <= timings["finished_at"]
    finally:
        destroyed = cli(prefect_server, "destroy", lab_id, "--json")
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert leftovers(lab_id) == {}


def _assert_run_artifacts(server: PrefectServer, lab_id: str) -> None:
    (run,) = server.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"any_": [f"deploy-lab/{lab_id}"]}}})
    progress = server.artifact(names.progress_artifact_key(lab_id))
    assert progress is not None and progress["type"] == "progress"
    assert progress["flow_run_id"] == run["id"]
    assert float(progress["data"]) == 100.0
    for stage in STAGES:
        assert f"{stage} 3/3" in progress["description"], progress["description"]
        assert f"| {stage} | 3/3 |" in progress["description"], progress["description"]  # the stages' table
    assert "Failed" not in progress["description"] and "Waiting longest" not in progress["description"]

    tables = server.api("POST", "/artifacts/filter", json={
        "artifacts": {"key": {"any_": [names.state_artifact_key(lab_id)]}, "flow_run_id": {"any_": [run["id"]]}},
    })
    tables.sort(key=lambda table: table["created"])
    statuses = [_lab_row(table)["state"] for table in tables]
    assert statuses[0] == "allocated" and statuses[-1] == "deployed", statuses
    assert "creating" in statuses, statuses  # written while the nodes came up
    final_nodes = {row["name"]: row["state"] for row in json.loads(tables[-1]["data"]) if row["item"] == "node"}
    assert final_nodes == {"r1": "ready", "r2": "ready", "h1": "ready"}


def _lab_row(artifact: dict) -> dict:
    rows = json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]
    return next(row for row in rows if row["item"] == "lab")
