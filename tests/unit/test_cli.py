"""The command-line contract for the commands that need no daemon: exit codes, error lines, JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.prefect_server import ARCHETYPE

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ARCHETYPE, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*.yml")), ids=lambda p: p.name)
def test_validate_accepts_the_examples(example: Path) -> None:
    result = run("validate", str(example), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["nodes"]


def test_validate_refuses_with_exit_2_and_one_error_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: Bad\ntopology:\n  nodes: {r1: {kind: nope}}\n  links: [{endpoints: ['r1:eth1', 'r2:eth1']}]\n")
    result = run("validate", str(bad))
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert errors == [
        "error: name: invalid lab id 'Bad': lowercase letters, digits and dashes, starting with a letter, at most 20 characters",
        errors[1],
        "error: links[0].endpoints[1]: link to unknown node 'r2'",
    ]
    assert errors[1].startswith("error: topology.nodes.r1.kind: unknown kind 'nope'")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_yaml_error_gives_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\ntopology:\n  nodes: [\n")
    result = run("validate", str(bad))
    assert result.returncode == 2 and result.stderr.startswith("error: line 4")


def test_a_bad_lab_id_on_the_command_line_is_invalid_input() -> None:
    result = run("destroy", "Not_A_Lab", "--json")
    assert result.returncode == 2 and "error: invalid lab id 'Not_A_Lab'" in result.stderr


def test_vendors_json_lists_every_kind_with_provider_and_capabilities() -> None:
    result = run("vendors", "--json")
    assert result.returncode == 0
    kinds = {k["kind"]: k for k in json.loads(result.stdout)["kinds"]}
    assert kinds["frr"]["provider"] == "docker" and "config-extraction" in kinds["frr"]["capabilities"]
    assert kinds["mini-ios"]["provider"] == "libvirt" and "console" in kinds["mini-ios"]["capabilities"]
    assert len(kinds) >= 12
    assert all(k["provider"] in ("docker", "libvirt") and k["capabilities"] for k in kinds.values())


def test_graph_of_a_file_is_svg_and_bad_sources_exit_2(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    out = tmp_path / "demo.svg"
    drawn = run("graph", str(REPO / "examples" / "demo.yml"), "--out", str(out), "--json")
    assert drawn.returncode == 0, drawn.stderr
    summary = json.loads(drawn.stdout)
    assert {n["name"] for n in summary["nodes"]} == {"r1", "r2", "v1"}
    assert ET.parse(out).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    for bad in (["graph", "Not A Lab!"], ["inventory", "Bad_Lab"], ["save", "Bad_Lab"]):
        result = run(*bad)
        assert result.returncode == 2 and result.stderr.startswith("error: "), (bad, result.stderr)
    wrong_format = run("inventory", "somelab", "--format", "chef")
    assert wrong_format.returncode == 2


def test_invalid_settings_are_invalid_input_not_a_traceback() -> None:
    import os

    env = {**os.environ, "ARCHETYPE_VLAN_MIN": "3000", "ARCHETYPE_VLAN_MAX": "200"}
    result = subprocess.run([ARCHETYPE, "vendors"], capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: invalid settings: Value error, vlan_min (3000) is above vlan_max (200)"


def test_serve_that_cannot_start_its_server_exits_1_with_a_message(tmp_path: Path) -> None:
    """The port of the local Prefect server is taken: a message, exit 1, no traceback."""
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        result = subprocess.run([ARCHETYPE, "serve", "--port", str(port)], capture_output=True, text=True,
                                timeout=240, cwd=REPO, env=env)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and f"{port}" in result.stderr
    assert "Traceback" not in result.stderr
