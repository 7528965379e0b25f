"""A node killed outside any flow takes its peer's carrier across hosts, and gives it back
when it is started by hand (issue 26): FRR r1 on sim-1, FRR r2 on sim-2, r1:eth1 -- r2:eth1
through a VXLAN tunnel. No `archetype` command between the kill and the start: sim-2's
carrier watcher (started by sim-fleet.sh beside its worker) sees docker's events, records r2
failed in the lab's state and has sim-1 follow (its control-node part).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.multihost.conftest import REPO, Fleet, deployed, two_routers_across_hosts

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

R1 = "hostname r1\ninterface eth1\n ip address 10.4.31.1/24\n"
R2 = "hostname r2\ninterface eth1\n ip address 10.4.31.2/24\n"
WAIT = 90.0  # the watcher, a flow run on the other host (picked up by its worker), the veth


@pytest.fixture(scope="module")
def lab(fleet: Fleet, tmp_path_factory) -> Iterator[str]:
    lab_id = f"fleetplan-cc-{secrets.token_hex(2)}"
    path: Path = tmp_path_factory.mktemp("cc") / f"{lab_id}.yml"
    path.write_text(yaml.safe_dump(two_routers_across_hosts(lab_id, R1, R2), sort_keys=False))
    with deployed(fleet, path) as lab_name:
        yield lab_name


def carrier(fleet: Fleet, lab_id: str, host: str, node: str) -> str:
    code, out = fleet.docker_exec(host, lab_id, node, "cat", "/sys/class/net/eth1/carrier")
    return out.strip() if code == 0 else f"error: {out.strip()[-200:]}"


def wait_for(check, timeout: float = WAIT) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def r2_state(fleet: Fleet, lab_id: str) -> str:
    """r2's state in the lab's record on the server (as the watcher left it)."""
    script = ("import sys\nfrom tasks.state import load_lab_state\n"
              "state = load_lab_state(sys.argv[1])\n"
              "print(next(n.shown_state + ' ' + (n.error or '') for n in state.nodes if n.name == 'r2'))\n")
    env = {**os.environ, **fleet.env, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script, lab_id], env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    return result.stdout.strip() or result.stderr[-500:]


def test_a_killed_node_takes_its_peers_carrier_across_hosts_and_gives_it_back(fleet: Fleet, lab: str) -> None:
    assert carrier(fleet, lab, "sim-1", "r1") == "1"
    killed = fleet.on("sim-2", "docker", "kill", f"archetype-{lab}-r2")
    assert killed.returncode == 0, killed.stderr
    started = time.monotonic()
    assert wait_for(lambda: carrier(fleet, lab, "sim-1", "r1") == "0"), carrier(fleet, lab, "sim-1", "r1")
    lost_after = time.monotonic() - started
    assert r2_state(fleet, lab) == "failed stopped outside any flow"
    assert fleet.on("sim-2", "docker", "start", f"archetype-{lab}-r2").returncode == 0
    started = time.monotonic()
    assert wait_for(lambda: carrier(fleet, lab, "sim-1", "r1") == "1"), carrier(fleet, lab, "sim-1", "r1")
    back_after = time.monotonic() - started
    assert carrier(fleet, lab, "sim-2", "r2") == "1"  # wired again on its host
    assert wait_for(lambda: fleet.docker_exec("sim-1", lab, "r1", "ping", "-c", "1", "-W", "2", "10.4.31.2")[0] == 0, 60)
    assert wait_for(lambda: r2_state(fleet, lab) == "ready", 10), r2_state(fleet, lab)
    print(f"carrier lost {lost_after:.1f} s after the kill, back {back_after:.1f} s after the start")
