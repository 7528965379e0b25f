"""Ready means configured, through `archetype deploy` as a user runs it: an FRR node whose
config application is broken on purpose (its bgpd cannot start, so its `router bgp` can never
be applied) fails with that cause and is never reported ready; its neighbour, whose frr.conf
has a line FRR refuses, is ready with the rest applied and lists the line in config_errors."""

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

GOOD = """\
ip prefix-list APPLIED seq 5 permit 10.1.0.0/16
this line is refused
router bgp 65001
 neighbor 10.0.0.2 remote-as 65002
exit
"""


def running_config(lab: str, node: str) -> str:
    client = docker.from_env(timeout=30)
    try:
        code, output = client.containers.get(names.container_name(lab, node)).exec_run(
            ["vtysh", "-c", "show running-config"])
    finally:
        client.close()
    assert code == 0, output
    return output.decode()


def test_a_node_whose_config_cannot_be_applied_fails_with_the_cause_and_is_never_ready(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    lab = f"arch-cfg-{secrets.token_hex(3)}"
    (tmp_path / "good.conf").write_text(GOOD)
    (tmp_path / "broken.conf").write_text(GOOD.replace("65001", "65003"))
    broken_bgpd = tmp_path / "bgpd"
    broken_bgpd.write_text("#!/bin/sh\necho 'bgpd: broken on purpose by the test' >&2\nexit 1\n")
    broken_bgpd.chmod(0o755)
    topology = tmp_path / f"{lab}.yml"
    topology.write_text(textwrap.dedent(f"""\
        name: {lab}
        topology:
          nodes:
            good:
              kind: frr
              startup-config: good.conf
              exec: ["vtysh -c 'show version'"]
            broken:
              kind: frr
              startup-config: broken.conf
              binds: ["bgpd:/usr/lib/frr/bgpd:ro"]
              env: {{ARCHETYPE_FRR_APPLY_SECONDS: "20"}}
        """))
    try:
        done = cli(prefect_server, "deploy", str(topology), "--json")
        assert done.returncode == 1, done.stderr[-3000:]
        result = json.loads(done.stdout)
        nodes = {n["name"]: n for n in result["nodes"]}
        assert nodes["good"]["state"] == "ready", result
        assert nodes["broken"]["state"] != "ready" and nodes["broken"]["ready_seconds"] is None, result
        errors = " ".join(result["errors"])
        assert "broken" in errors and "never ready" in errors and "bgpd" in errors, result["errors"]
        # the refused line is the good node's config_errors; the rest is on the device
        assert [e["line"] for e in nodes["good"]["config_errors"]] == ["this line is refused"], nodes["good"]
        config = running_config(lab, "good")
        assert "ip prefix-list APPLIED seq 5" in config and "neighbor 10.0.0.2 remote-as 65002" in config
        # asked again later, the broken node is still not ready
        status = json.loads(cli(prefect_server, "status", lab, "--json").stdout)
        shown = {n["name"]: n for lab_doc in status["labs"] for n in lab_doc["nodes"]}
        assert shown["broken"]["state"] != "ready", shown
    finally:
        cli(prefect_server, "destroy", lab, "--json")
    assert leftovers(lab) == {}
