"""The Ansible inventory of a lab spread over the fleet, used from the coordinator: each FRR
container is reached through the dockerd of the host it runs on (the URL that host
publishes in its facts: here its socket, in a real fleet ssh://root@<host>), with the real
Ansible package's community.docker.docker connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.multihost.conftest import HOSTS, RUN, Fleet, host_leftovers
from tests.support.prefect_server import REPO

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]
BIN = Path(sys.executable).parent
PLAYBOOK = REPO / "examples" / "automation" / "show-version.yml"


def frr_pair(lab_id: str, tmp_path: Path) -> str:
    nodes = {
        "r1": {"kind": "frr", "host": "sim-1", "startup-config": "interface eth1\n ip address 10.27.1.1/30\n"},
        "r2": {"kind": "frr", "host": "sim-2", "startup-config": "interface eth1\n ip address 10.27.1.2/30\n"},
    }
    path = tmp_path / f"{lab_id}.yml"
    path.write_text(yaml.safe_dump({"name": lab_id, "topology": {
        "nodes": nodes, "links": [{"endpoints": ["r1:eth1", "r2:eth1"]}]}}, sort_keys=False))
    return str(path)


def test_ansible_reaches_each_hosts_containers_from_the_coordinator(fleet: Fleet, lab_id: str, tmp_path: Path) -> None:
    try:
        code, deployed, err = fleet.cli_json("deploy", frr_pair(lab_id, tmp_path))
        assert code == 0, err[-3000:]
        assert {n["name"]: n["host"] for n in deployed["nodes"]} == {"r1": "sim-1", "r2": "sim-2"}

        hosts = tmp_path / "hosts.yml"
        written = fleet.cli("inventory", lab_id, "--out", str(hosts))
        assert written.returncode == 0, written.stderr[-3000:]
        frr = yaml.safe_load(hosts.read_text())["all"]["children"]["frr"]["hosts"]
        for node, host in (("r1", "sim-1"), ("r2", "sim-2")):
            assert frr[node]["ansible_docker_extra_args"] == f"-H unix://{RUN / host / 'docker' / 'docker.sock'}"

        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
        playbook = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(hosts), str(PLAYBOOK)], env=env,
                                  capture_output=True, text=True, timeout=300, check=False)
        assert playbook.returncode == 0, playbook.stdout[-4000:] + playbook.stderr[-2000:]
        tasks = {t["task"]["name"]: t["hosts"] for play in json.loads(playbook.stdout)["plays"] for t in play["tasks"]}
        answered = tasks["Show version through vtysh"]
        assert set(answered) == {"r1", "r2"}
        for name, result in answered.items():
            assert result["stdout"].startswith("FRRouting") and f"({name})" in result["stdout"], (name, result)
    finally:
        fleet.cli("destroy", lab_id)
    assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}
