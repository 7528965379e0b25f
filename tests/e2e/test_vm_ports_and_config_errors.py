"""Issue 23, items 3 and 4, from fresh shells on real libvirt VMs (mini-ios):

- a VM has its vendor's ports: a node with no links configures GigabitEthernet0/1 and 0/3
  in its startup-config, and on the console afterwards; its running config has both;
- a startup-config line the device refuses is reported, not fatal: the node is ready with
  the rest applied, and ``config_errors`` names the line and the device's message in
  ``deploy --json`` and ``status --json``; with ``--strict`` the deploy exits 1 naming it.

The two deploys run at once (each boots its VMs under TCG)."""

from __future__ import annotations

import json
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import names
from tests.e2e.test_cli_contract import cli
from tests.support.leftovers import leftovers
from tests.support.prefect_server import ARCHETYPE, PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.libvirt]

PORTS_CONFIG = """\
hostname ports-k1
interface GigabitEthernet0/1
 ip address 10.81.0.1 255.255.255.0
interface GigabitEthernet0/3
 ip address 10.81.3.1 255.255.255.0
"""
BAD_LINE = "interface Nonexistent9/9"
ERRORS_CONFIG = f"""\
hostname errs-k2
interface GigabitEthernet0/2
 ip address 10.82.0.1 255.255.255.0
{BAD_LINE}
ip domain name after.the-error
"""


def topology(tmp_path: Path, lab: str, nodes: dict[str, str]) -> Path:
    lines = [f"name: {lab}", "topology:", "  nodes:"]
    for name, config in nodes.items():
        lines += [f"    {name}:", "      kind: mini-ios", "      startup-config: |",
                  textwrap.indent(config, " " * 8).rstrip("\n")]
    path = tmp_path / f"{lab}.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two labs deployed at once: `lab` (k1: ports, k2: a refused line) and `strict` (the
    refused line under --strict)."""
    tmp = tmp_path_factory.mktemp("vm-ports")
    lab, strict = f"i23-{secrets.token_hex(3)}", f"i23s-{secrets.token_hex(3)}"
    runs = {
        "lab": [ARCHETYPE, "deploy", str(topology(tmp, lab, {"k1": PORTS_CONFIG, "k2": ERRORS_CONFIG})), "--json"],
        "strict": [ARCHETYPE, "deploy", str(topology(tmp, strict, {"s1": ERRORS_CONFIG})), "--json", "--strict"],
    }
    started = {key: subprocess.Popen(argv, env=prefect_server.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True) for key, argv in runs.items()}
    try:
        done = {key: process.communicate(timeout=900) for key, process in started.items()}
        yield {"lab_id": lab, "strict_id": strict, **{key: (started[key].returncode, *done[key]) for key in runs}}
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
        for lab_id in (lab, strict):
            cli(prefect_server, "destroy", lab_id, "--json")
        for lab_id in (lab, strict):
            assert leftovers(lab_id) == {}


def nodes_of(document: dict) -> dict[str, dict]:
    return {n["name"]: n for n in document["nodes"]}


def running_config(lab: str, node: str) -> str:
    shown = cli(None, "exec", lab, node, "--", "show running-config")
    assert shown.returncode == 0, shown.stderr[-2000:]
    return shown.stdout


def test_an_unlinked_vm_configures_its_ports(deployed: dict) -> None:
    code, out, err = deployed["lab"]
    assert code == 0, err[-3000:]
    k1 = nodes_of(json.loads(out))["k1"]
    assert k1["state"] == "ready" and k1["config_errors"] == []
    config = running_config(deployed["lab_id"], "k1")
    assert "ip address 10.81.0.1 255.255.255.0" in config and "ip address 10.81.3.1 255.255.255.0" in config
    # the vendor's four data ports exist, unlinked: Gi0/0 (management) to Gi0/4
    assert all(f"interface GigabitEthernet0/{n}\n" in config for n in range(5)), config
    assert "interface GigabitEthernet0/5\n" not in config
    # a console command naming an unlinked port works as well
    typed = cli(None, "exec", deployed["lab_id"], "k1", "--", "configure terminal", "interface GigabitEthernet0/4",
                "description typed-later", "end")
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert "description typed-later" in running_config(deployed["lab_id"], "k1")


def test_a_refused_line_is_reported_and_the_rest_applied(deployed: dict, prefect_server: PrefectServer) -> None:
    code, out, err = deployed["lab"]
    assert code == 0, err[-3000:]
    k2 = nodes_of(json.loads(out))["k2"]
    assert k2["state"] == "ready"
    (error,) = k2["config_errors"]
    assert error["line"] == BAD_LINE and "% Invalid input" in error["message"], error
    config = running_config(deployed["lab_id"], "k2")
    assert "hostname errs-k2" in config and "ip address 10.82.0.1 255.255.255.0" in config
    assert "ip domain name after.the-error" in config  # the line after the refused one

    status = cli(None, "status", deployed["lab_id"], "--json")
    assert status.returncode == 0, status.stderr
    (lab,) = json.loads(status.stdout)["labs"]
    shown = nodes_of(lab)
    assert shown["k2"]["config_errors"] == [error] and shown["k1"]["config_errors"] == []

    artifact = prefect_server.artifact(names.state_artifact_key(deployed["lab_id"]))  # the state table
    rows = json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]
    assert json.loads(next(r for r in rows if r["name"] == "k2")["config_errors"]) == [error]

    table = cli(None, "status", deployed["lab_id"])  # the terminal: a warning naming the line
    assert table.returncode == 0 and "warning:" in table.stdout and BAD_LINE in table.stdout, table.stdout


def test_strict_fails_the_node_and_names_the_line(deployed: dict) -> None:
    code, out, err = deployed["strict"]
    assert code == 1, out[-2000:] + err[-2000:]
    s1 = nodes_of(json.loads(out))["s1"]
    assert s1["state"] == "failed (post-boot)"
    assert BAD_LINE in err and "strict" in err, err[-2000:]
