"""A lab's tests on a fleet: r1 on sim-1, r2 on sim-2 (a cross-host link), `archetype test` from
the coordinating machine runs each host's nodes' tests there (its test-slice run) and gives
one result table; a wrong expectation on the far node exits 1 naming it."""

from __future__ import annotations

import pytest
import yaml

from tests.multihost.conftest import HOSTS, Fleet, host_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]


def topology(lab_id: str, far_text: str) -> dict:
    config = "interface eth1\n ip address 10.1.12.{n}/24\n"
    return {
        "name": lab_id,
        "topology": {
            "nodes": {
                "r1": {"kind": "frr", "host": "sim-1", "startup-config": config.format(n=1)},
                "r2": {"kind": "frr", "host": "sim-2", "startup-config": config.format(n=2)},
            },
            "links": [{"endpoints": ["r1:eth1", "r2:eth1"]}],
        },
        "validate": {
            "address": {"show": "vtysh -c 'show interface eth1 json'",
                        "expect": [{"json": "eth1.ipAddresses.0.address", "regex": r"^10\.1\.12\.[12]/24$"}]},
            "reach": {"nodes": ["r1"], "wait": 30, "exec": "ping -c 1 -W 1 10.1.12.2",
                      "expect": [{"contains": "1 received"}]},
            "far": {"nodes": ["r2"], "exec": "vtysh -c 'show running-config'", "expect": [{"contains": far_text}]},
        },
    }


def test_tests_run_on_each_host_of_the_lab(fleet: Fleet, lab_id: str, tmp_path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump(topology(lab_id, "10.1.12.2/24"), sort_keys=False))
    code, deployed, err = fleet.cli_json("deploy", str(path))
    try:
        assert code == 0, err[-3000:]
        code, result, err = fleet.cli_json("test", lab_id)
        assert code == 0, (result, err[-3000:])
        rows = {(r["test"], r["node"]): r for r in result["results"]}
        assert {key: (r["result"], r["host"]) for key, r in rows.items()} == {
            ("address", "r1"): ("passed", "sim-1"), ("address", "r2"): ("passed", "sim-2"),
            ("reach", "r1"): ("passed", "sim-1"), ("far", "r2"): ("passed", "sim-2")}, rows

        path.write_text(yaml.safe_dump(topology(lab_id, "no such line"), sort_keys=False))
        code, _, err = fleet.cli_json("deploy", str(path))  # converges, records the changed tests
        assert code == 0, err[-3000:]
        code, result, err = fleet.cli_json("test", lab_id, "far")
        assert code == 1 and "test far failed on r2" in err, (result, err[-3000:])
    finally:
        destroyed = fleet.cli("destroy", lab_id)
        assert destroyed.returncode == 0, destroyed.stderr[-3000:]
        for host in HOSTS:
            assert not any(host_leftovers(fleet, host, lab_id).values()), host
