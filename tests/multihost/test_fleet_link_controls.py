"""A link across the simulated hosts keeps the controls a link on one host has (issue 26):
FRR r1 on sim-1, FRR r2 on sim-2, one link r1:eth1 -- r2:eth1 through a VXLAN tunnel.

- `node stop r2` takes r1's carrier (read in r1 on sim-1), `node start r2` gives it back;
- `link r1:eth1 --delay 50` makes the round trip ~100 ms (each direction delayed, by a relay
  on one side), `--clear` brings it back;
- a redeploy with r2 stopped starts it and gives r1 its carrier back.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.multihost.conftest import Fleet, deployed, two_routers_across_hosts

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

R1 = "hostname r1\ninterface eth1\n ip address 10.4.12.1/24\n"
R2 = "hostname r2\ninterface eth1\n ip address 10.4.12.2/24\n"


@pytest.fixture(scope="module")
def topology_file(tmp_path_factory) -> Path:
    lab_id = f"lc-{secrets.token_hex(3)}"
    path = tmp_path_factory.mktemp("lab") / f"{lab_id}.yml"
    path.write_text(yaml.safe_dump(two_routers_across_hosts(lab_id, R1, R2), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def lab(fleet: Fleet, topology_file: Path) -> Iterator[str]:
    with deployed(fleet, topology_file) as lab_id:
        yield lab_id


def carrier(fleet: Fleet, lab_id: str) -> str:
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "cat", "/sys/class/net/eth1/carrier")
    assert code == 0, out
    return out.strip()


def min_rtt(fleet: Fleet, lab_id: str) -> float | None:
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "ping", "-c", "4", "-i", "0.3", "-W", "3", "10.4.12.2")
    match = re.search(r"= ([\d.]+)/", out)
    return float(match.group(1)) if code == 0 and match else None


def wait_rtt(fleet: Fleet, lab_id: str, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while (rtt := min_rtt(fleet, lab_id)) is None and time.monotonic() < deadline:
        time.sleep(1)
    assert rtt is not None, "r1 does not reach r2"
    return rtt


def ok(fleet: Fleet, *args: str) -> dict:
    code, document, err = fleet.cli_json(*args)
    assert code == 0, err[-4000:]
    return document


def test_stopping_a_node_takes_its_peers_carrier_across_hosts(fleet: Fleet, lab: str) -> None:
    assert carrier(fleet, lab) == "1"
    stopped = ok(fleet, "node", "stop", lab, "r2")
    assert stopped["state"] == "stopped"
    assert carrier(fleet, lab) == "0"
    started = ok(fleet, "node", "start", lab, "r2")
    assert started["state"] == "ready"
    assert carrier(fleet, lab) == "1"
    wait_rtt(fleet, lab)


def test_delay_on_a_link_across_hosts_makes_rtt_and_clear_removes_it(fleet: Fleet, lab: str) -> None:
    before = wait_rtt(fleet, lab)
    shown = ok(fleet, "link", lab, "r1:eth1", "--delay", "50")
    assert shown["link"]["impairment"]["delay_ms"] == 50
    delayed = wait_rtt(fleet, lab)
    print(f"\n[figures] cross-host link RTT: {before} ms, with --delay 50: {delayed} ms")
    assert 100 <= delayed < 160
    listed = ok(fleet, "link", lab)
    assert listed["links"][0]["impairment"]["delay_ms"] == 50
    ok(fleet, "link", lab, "r2:eth1", "--clear")  # from the other end
    assert wait_rtt(fleet, lab) < 50


def test_a_redeploy_gives_a_stopped_nodes_peer_its_carrier_back(fleet: Fleet, lab: str, topology_file: Path) -> None:
    ok(fleet, "node", "stop", lab, "r2")
    assert carrier(fleet, lab) == "0"
    ok(fleet, "deploy", str(topology_file))  # starts r2 again, on its host
    assert carrier(fleet, lab) == "1"
    wait_rtt(fleet, lab)
