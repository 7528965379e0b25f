"""The inventories with the real clients, as a user runs them: on a mixed lab (two FRR
containers, one mini-ios VM), `archetype inventory` written to a file, then Ansible (the
package from the index, its bundled collections) and Nornir with nornir-netmiko run
`show version` on the nodes through the connection each kind serves (for FRR: Ansible
through docker, Nornir over the image's SSH), with no login in the environment (our own
images' defaults). The README's examples are these files.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.settings import get_settings
from tests.e2e.test_cli_contract import cli
from tests.support.leftovers import leftovers
from tests.support.prefect_server import REPO, PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt]
BIN = Path(sys.executable).parent
PLAYBOOK = REPO / "examples" / "automation" / "show-version.yml"
NORNIR_SCRIPT = REPO / "examples" / "automation" / "nornir_show_version.py"


def topology(lab_id: str) -> str:
    return yaml.safe_dump({
        "name": lab_id,
        "topology": {
            "nodes": {
                "r1": {"kind": "frr", "startup-config": "interface eth1\n ip address 10.27.12.1/30\n"},
                "r2": {"kind": "frr", "startup-config": "interface eth1\n ip address 10.27.12.2/30\n"},
                "v1": {"kind": "mini-ios"},
            },
            "links": [
                {"endpoints": ["r1:eth1", "r2:eth1"]},
                {"endpoints": ["r2:eth2", "v1:GigabitEthernet0/1"]},
            ],
        },
    }, sort_keys=False)


@pytest.fixture(scope="module", autouse=True)
def mini_ios_with_ssh() -> None:
    """The image in use serves SSH (build.sh only compares its stamp when it is up to date)."""
    target = get_settings().image_dir / "mini-ios"
    result = subprocess.run(["bash", str(REPO / "images/mini-ios/build.sh"), str(target)],
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def client_env(**extra: str) -> dict[str, str]:
    """A user's shell: the venv's clients on PATH, no login variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHETYPE_USERNAME_", "ARCHETYPE_PASSWORD_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return {**env, **extra}


def ansible_results(run: subprocess.CompletedProcess) -> dict[str, dict[str, dict]]:
    """task name -> host -> result, from the ansible.posix.json callback's document."""
    document = json.loads(run.stdout)
    return {task["task"]["name"]: task["hosts"] for play in document["plays"] for task in play["tasks"]}


def test_ansible_and_nornir_reach_every_node(prefect_server: PrefectServer, tmp_path: Path) -> None:
    lab_id = f"inv27-{secrets.token_hex(3)}"
    path = tmp_path / f"{lab_id}.yml"
    path.write_text(topology(lab_id))
    try:
        deployed = cli(prefect_server, "deploy", str(path), "--json")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert {n["name"]: n["state"] for n in json.loads(deployed.stdout)["nodes"]} == dict.fromkeys(
            ("r1", "r2", "v1"), "ready")

        hosts = tmp_path / "hosts.yml"
        written = cli(None, "inventory", lab_id, "--out", str(hosts))
        assert written.returncode == 0, written.stderr
        playbook = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(hosts), str(PLAYBOOK)],
                                  env=client_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
                                  capture_output=True, text=True, timeout=300, check=False)
        assert playbook.returncode == 0, playbook.stdout[-4000:] + playbook.stderr[-2000:]
        results = ansible_results(playbook)
        frr = results["Show version through vtysh"]
        assert set(frr) == {"r1", "r2"}
        for name, result in frr.items():
            assert result["stdout"].startswith("FRRouting"), (name, result)
            assert f"({name})" in result["stdout"].splitlines()[0]  # each node's own vtysh
        ios = results["Show version over SSH"]
        assert set(ios) == {"v1"}
        assert "Cisco IOS Software" in ios["v1"]["stdout"][0] and "Router uptime is" in ios["v1"]["stdout"][0]

        # the issue's own ad-hoc command, as a user types it
        adhoc = subprocess.run([str(BIN / "ansible"), "v1", "-i", str(hosts), "-m", "cisco.ios.ios_command",
                                "-a", "commands='show version'"], env=client_env(),
                               capture_output=True, text=True, timeout=120, check=False)
        assert adhoc.returncode == 0 and "v1 | SUCCESS" in adhoc.stdout, adhoc.stdout[-3000:] + adhoc.stderr[-2000:]

        nornir_hosts = tmp_path / "nornir-hosts.yaml"
        written = cli(None, "inventory", lab_id, "--format", "nornir", "--out", str(nornir_hosts))
        assert written.returncode == 0, written.stderr
        nornir = subprocess.run([sys.executable, str(NORNIR_SCRIPT), str(nornir_hosts)], env=client_env(),
                                capture_output=True, text=True, timeout=180, check=False)
        assert nornir.returncode == 0, nornir.stdout + nornir.stderr[-3000:]
        lines = dict(line.split(" ", 1) for line in nornir.stdout.splitlines())
        assert lines["v1"].startswith("(cisco_ios, port 22): Cisco IOS Software"), nornir.stdout
        for name in ("r1", "r2"):  # SSH to the image's dropbear, then vtysh from its shell
            assert lines[name].startswith("(linux, port 22): FRRouting 10."), nornir.stdout
            assert f"({name})" in lines[name], nornir.stdout  # each node's own vtysh
        assert set(lines) == {"r1", "r2", "v1"}, nornir.stdout
    finally:
        cli(prefect_server, "destroy", lab_id)
    assert leftovers(lab_id) == {}
