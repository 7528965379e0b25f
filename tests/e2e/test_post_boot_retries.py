"""Post-boot retries by cause, through the deploy-lab flow: a command that fails is not run
again, nor is any command before it; a command that timed out is retried, and the retry
resumes at that command (the ones before it ran once).

Each command appends a line to /tmp/runs in its container: the file is the witness."""

from __future__ import annotations

import json
import secrets
import textwrap
from pathlib import Path

import docker
import pytest

from lab import names
from tests.e2e.test_cli_contract import cli
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.prefect, pytest.mark.docker]


def runs(lab: str, node: str) -> list[str]:
    client = docker.from_env(timeout=30)
    try:
        code, output = client.containers.get(names.container_name(lab, node)).exec_run(["cat", "/tmp/runs"])
    finally:
        client.close()
    assert code == 0, output
    return output.decode().split()


def test_a_failing_exec_line_is_not_run_twice_and_a_timed_out_one_resumes(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    lab = f"arch-pb-{secrets.token_hex(3)}"
    topology = tmp_path / f"{lab}.yml"
    topology.write_text(textwrap.dedent(f"""\
        name: {lab}
        topology:
          nodes:
            fails:
              kind: linux
              exec:
                - sh -c 'echo first >> /tmp/runs'
                - sh -c 'echo failing >> /tmp/runs; exit 3'
                - sh -c 'echo never >> /tmp/runs'
            slow:
              kind: linux
              exec:
                - sh -c 'echo first >> /tmp/runs'
                - sh -c 'if [ -e /tmp/hung ]; then echo second >> /tmp/runs; else touch /tmp/hung; sleep 60; fi'
                - sh -c 'echo third >> /tmp/runs'
        """))
    try:
        done = cli(prefect_server, "deploy", str(topology), "--json", env_extra={"ARCHETYPE_COMMAND_TIMEOUT": "4"})
        assert done.returncode == 1, done.stderr[-2000:]
        result = json.loads(done.stdout)
        states = {n["name"]: n["state"] for n in result["nodes"]}
        assert states == {"fails": "failed (post-boot)", "slow": "ready"}, result
        # The failed command ran once, the one before it once, the one after it never.
        assert runs(lab, "fails") == ["first", "failing"]
        # The hung command timed out, was retried from itself: the first ran once.
        assert runs(lab, "slow") == ["first", "second", "third"]
    finally:
        cli(prefect_server, "destroy", lab, "--json")
    assert leftovers(lab) == {}
