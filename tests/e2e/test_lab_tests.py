"""A lab's tests (its topology's `validate:`), run as a user runs them: a 3-router FRR lab in
OSPF with an adjacency, a prefix and an exec test. `deploy --test` and `archetype test` exit
0; the same lab with one expectation made wrong exits 1 naming the test and the node (and,
with stop_on_error, the test after it is not run); the
JUnit file reads back with the right counts; the results are the lab's `lab-<lab>-tests`
artifact; the test-lab deployment runs from the server (as the UI starts it)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]
ARCHETYPE = str(Path(sys.executable).parent / "archetype")


def router(n: int, links: dict[str, str]) -> str:
    """r<n>'s frr.conf: its loopback and its links in OSPF area 0, point-to-point, fast timers."""
    lines = ["frr defaults traditional", f"hostname r{n}", "interface lo", f" ip address 10.0.0.{n}/32",
             " ip ospf area 0"]
    for interface, address in links.items():
        lines += [f"interface {interface}", f" ip address {address}", " ip ospf area 0",
                  " ip ospf network point-to-point", " ip ospf hello-interval 1", " ip ospf dead-interval 4"]
    return "\n".join([*lines, "router ospf", f" ospf router-id 10.0.0.{n}", ""])


def topology(lab: str, prefix_protocol: str = "ospf") -> dict:
    return {
        "name": lab,
        "topology": {
            "nodes": {
                "r1": {"kind": "frr", "startup-config": router(1, {"eth1": "10.1.12.1/24"})},
                "r2": {"kind": "frr", "startup-config": router(2, {"eth1": "10.1.12.2/24", "eth2": "10.1.23.2/24"})},
                "r3": {"kind": "frr", "startup-config": router(3, {"eth1": "10.1.23.3/24"})},
            },
            "links": [{"endpoints": ["r1:eth1", "r2:eth1"]}, {"endpoints": ["r2:eth2", "r3:eth1"]}],
        },
        "validate": {
            "adjacency": {
                "description": "every router has a Full OSPF neighbour",
                "wait": 60,
                "show": {"frr": "vtysh -c 'show ip ospf neighbor json'"},
                "expect": [{"json": "neighbors", "at_least": 1},
                           {"json": "neighbors.*.0.converged", "equals": "Full"}],
            },
            "prefix": {
                "description": "r1 has r3's loopback from OSPF",
                "nodes": ["r1"],
                "wait": 60,
                "show": "vtysh -c 'show ip route 10.0.0.3/32 json'",
                "expect": [{"json": ["10.0.0.3/32", 0, "protocol"], "equals": prefix_protocol}],
            },
            "ping": {
                "description": "r1 reaches r3's loopback",
                "nodes": ["r1"],
                "wait": 30,
                "exec": "ping -c 1 -W 1 -I 10.0.0.1 10.0.0.3",
                "expect": [{"contains": "1 received"}],
            },
        },
    }


def cli(server: PrefectServer, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([ARCHETYPE, *args], env=server.env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def lab(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The lab deployed with `deploy --test`: its tests pass (exit 0) once OSPF is up."""
    lab_id = f"tst25-{secrets.token_hex(2)}"
    path = tmp_path_factory.mktemp("lab-tests") / "ospf3.yml"
    path.write_text(yaml.safe_dump(topology(lab_id), sort_keys=False))
    try:
        deployed = cli(prefect_server, "deploy", str(path), "--test", "--json")
        assert deployed.returncode == 0, (deployed.stdout[-3000:], deployed.stderr[-3000:])
        document = json.loads(deployed.stdout)
        assert document["tests"]["passed"] and document["tests"]["counts"]["passed"] == 5, document["tests"]
        yield lab_id, path
    finally:
        if leftovers(lab_id):
            cli(prefect_server, "destroy", lab_id)
        assert leftovers(lab_id) == {}


def test_three_tests_pass_with_exit_0_and_a_junit_file(prefect_server: PrefectServer, lab: tuple[str, Path],
                                                       tmp_path: Path) -> None:
    lab_id, _ = lab
    junit = tmp_path / "results.xml"
    ran = cli(prefect_server, "test", lab_id, "--junit", str(junit), "--json")
    assert ran.returncode == 0, (ran.stdout[-3000:], ran.stderr[-3000:])
    result = json.loads(ran.stdout)
    rows = {(r["test"], r["node"]): r for r in result["results"]}
    assert set(rows) == {("adjacency", "r1"), ("adjacency", "r2"), ("adjacency", "r3"), ("prefix", "r1"),
                         ("ping", "r1")}
    assert all(r["result"] == "passed" and r["tries"] >= 1 for r in rows.values()), rows
    assert "Full" in rows[("adjacency", "r2")]["detail"] and "1 received" in rows[("ping", "r1")]["detail"]

    suite = ET.parse(junit).getroot().find("testsuite")  # what a CI system reads
    assert suite is not None and suite.get("name") == lab_id
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("5", "0", "0", "0")
    assert len(suite.findall("testcase")) == 5

    artifact = prefect_server.artifact(f"lab-{lab_id}-tests")  # beside lab-<lab>-state, in the UI
    assert artifact is not None and artifact["type"] == "table"
    table = json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]
    assert {(r["test"], r["node"], r["result"]) for r in table} == {(t, n, "passed") for t, n in rows}

    only = cli(prefect_server, "test", lab_id, "adjacency", "--node", "r3", "--json")
    assert only.returncode == 0, only.stderr[-3000:]
    assert [(r["test"], r["node"]) for r in json.loads(only.stdout)["results"]] == [("adjacency", "r3")]


def test_unknown_test_or_node_is_invalid_input(prefect_server: PrefectServer, lab: tuple[str, Path]) -> None:
    lab_id, _ = lab
    unknown_test = cli(prefect_server, "test", lab_id, "nosuch")
    assert unknown_test.returncode == 2 and "no test 'nosuch'" in unknown_test.stderr, unknown_test.stderr[-2000:]
    unknown_node = cli(prefect_server, "test", lab_id, "--node", "r9")
    assert unknown_node.returncode == 2 and "no node 'r9'" in unknown_node.stderr, unknown_node.stderr[-2000:]
    no_lab = cli(prefect_server, "test", "tst25-nolab")
    assert no_lab.returncode == 2, no_lab.stderr[-2000:]


def test_a_wrong_expectation_exits_1_naming_test_and_node(prefect_server: PrefectServer, lab: tuple[str, Path],
                                                          tmp_path: Path) -> None:
    lab_id, path = lab
    wrong = yaml.safe_load(path.read_text())
    wrong["validate"]["prefix"]["expect"][0]["equals"] = "bgp"
    wrong["validate"]["prefix"]["wait"] = 3  # tried for 3 s, then failed
    wrong["validate"]["prefix"]["stop_on_error"] = True  # the ping test after it is not run
    wrong_path = tmp_path / "ospf3-wrong.yml"
    wrong_path.write_text(yaml.safe_dump(wrong, sort_keys=False))
    redeployed = cli(prefect_server, "deploy", str(wrong_path))  # converges (nothing changes) and records the tests
    assert redeployed.returncode == 0, redeployed.stderr[-3000:]
    try:
        junit = tmp_path / "results.xml"
        ran = cli(prefect_server, "test", lab_id, "--junit", str(junit))
        assert ran.returncode == 1, (ran.stdout[-3000:], ran.stderr[-3000:])
        assert "test prefix failed on r1" in ran.stderr and '"ospf", expected "bgp"' in ran.stderr, ran.stderr[-3000:]
        suite = ET.parse(junit).getroot().find("testsuite")
        assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "1", "1")
        skipped = [c for c in suite.findall("testcase") if c.find("skipped") is not None]
        assert [(c.get("classname"), c.get("name")) for c in skipped] == [(f"{lab_id}.ping", "r1")]
        failed = [c for c in suite.findall("testcase") if c.find("failure") is not None]
        assert [(c.get("classname"), c.get("name")) for c in failed] == [(f"{lab_id}.prefix", "r1")]
        tries = int(failed[0].find("failure").text.split("tries: ")[1].split(",")[0])
        assert tries >= 2, failed[0].find("failure").text  # retried while its wait lasted
    finally:
        restored = cli(prefect_server, "deploy", str(path))  # the right tests again, for the tests after this one
        assert restored.returncode == 0, restored.stderr[-3000:]


def test_the_test_lab_deployment_runs_from_the_server(lab_host: PrefectServer, lab: tuple[str, Path]) -> None:
    lab_id, _ = lab
    run_id = lab_host.run_deployment("test-lab", {"lab": lab_id, "tests": ["prefix"]})
    run = lab_host.wait_flow_run(run_id, 300)
    assert run["state_type"] == "COMPLETED", lab_host.flow_run_logs(run_id)[-4000:]


@pytest.mark.libvirt
def test_a_vm_is_tested_with_one_cli_line_over_its_console(prefect_server: PrefectServer, tmp_path: Path) -> None:
    lab_id = f"tst25v-{secrets.token_hex(2)}"
    path = tmp_path / "vm.yml"
    path.write_text(yaml.safe_dump({
        "name": lab_id,
        "topology": {"nodes": {"v1": {"kind": "mini-ios"}}},
        "validate": {
            "version": {"show": "show version", "expect": [{"regex": r"uptime is \d+"}]},
            "ports": {"show": {"mini-ios": "show ip interface brief"}, "expect": [{"contains": "GigabitEthernet0/1"}]},
        },
    }, sort_keys=False))
    try:
        deployed = cli(prefect_server, "deploy", str(path), "--test", "--json")
        assert deployed.returncode == 0, (deployed.stdout[-3000:], deployed.stderr[-3000:])
        tests = json.loads(deployed.stdout)["tests"]
        assert [(r["test"], r["node"], r["result"]) for r in tests["results"]] == [
            ("version", "v1", "passed"), ("ports", "v1", "passed")], tests
        assert "uptime is" in tests["results"][0]["detail"]
    finally:
        cli(prefect_server, "destroy", lab_id)
        assert leftovers(lab_id) == {}
