"""A node stopped outside any flow takes its peers' carrier and gives it back when it starts
(issue 26), on one host: the host's carrier watcher (flows/carrier_watch.py, started by
`scripts/start-daemons.sh watch`, as `make setup` does) follows docker's own events.

Lab: FRR r1 -- r2 -- r3 -- v1 (a mini-ios VM). `docker kill` r2, as a crash would: r1's and
r3's ends lose carrier, read from the peers themselves (``/sys/class/net/ethN/carrier``).
`docker start` r2: it is wired again (its links came back with its new network namespace)
and its peers get carrier back; r1 pings r2 over their link. v1's QEMU killed (SIGKILL):
r3's end loses carrier; the domain started again (libvirt), r3's end gets it back.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from lab import names
from tests.e2e.test_mixed_lab import exec_in, wait_until
from tests.support.prefect_server import ARCHETYPE

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.ovs, pytest.mark.libvirt]

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "r1": "hostname r1\ninterface eth1\n ip address 10.7.12.1/24\n",
    "r2": "hostname r2\ninterface eth1\n ip address 10.7.12.2/24\ninterface eth2\n ip address 10.7.23.2/24\n",
    "r3": "hostname r3\ninterface eth1\n ip address 10.7.23.3/24\n",
}
WAIT = 30.0


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`archetype ARGS` as a user runs it on this host (its local server and executor)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return subprocess.run([ARCHETYPE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    started = subprocess.run(["bash", str(REPO / "scripts" / "start-daemons.sh"), "watch"], capture_output=True,
                             text=True, timeout=60, check=False)
    assert started.returncode == 0, started.stderr
    lab_id = f"fleetplan-crash-{os.getpid() % 10000}"
    document = {"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {**{name: {"kind": "frr", "startup-config": config} for name, config in CONFIGS.items()},
                  "v1": {"kind": "mini-ios"}},
        "links": [{"endpoints": ["r1:eth1", "r2:eth1"]}, {"endpoints": ["r2:eth2", "r3:eth1"]},
                  {"endpoints": ["r3:eth2", "v1:GigabitEthernet0/1"]}]}}
    path = tmp_path_factory.mktemp("crash") / f"{lab_id}.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    deployed = cli("deploy", str(path))
    try:
        assert deployed.returncode == 0, deployed.stderr[-4000:]
        yield lab_id
    finally:
        cli("destroy", lab_id)


def carrier(lab_id: str, node: str, interface: str) -> str:
    code, out = exec_in(lab_id, node, "cat", f"/sys/class/net/{interface}/carrier")
    return out.strip() if code == 0 else f"error: {out.strip()}"


def container(lab_id: str, node: str):  # noqa: ANN201 - a docker container
    return docker.from_env().containers.get(names.container_name(lab_id, node))


def test_a_killed_container_takes_its_peers_carrier_and_gives_it_back_when_started(lab: str) -> None:
    assert carrier(lab, "r1", "eth1") == "1" and carrier(lab, "r3", "eth1") == "1"
    container(lab, "r2").kill()  # SIGKILL, no flow: as a crash
    assert wait_until(lambda: carrier(lab, "r1", "eth1") == "0", WAIT, 0.3), carrier(lab, "r1", "eth1")
    assert wait_until(lambda: carrier(lab, "r3", "eth1") == "0", WAIT, 0.3), carrier(lab, "r3", "eth1")
    container(lab, "r2").start()  # by hand, no flow either
    assert wait_until(lambda: carrier(lab, "r2", "eth1") == "1", WAIT, 0.3), carrier(lab, "r2", "eth1")
    assert wait_until(lambda: carrier(lab, "r1", "eth1") == "1", WAIT, 0.3), carrier(lab, "r1", "eth1")
    assert carrier(lab, "r3", "eth1") == "1" and carrier(lab, "r2", "eth2") == "1"
    assert wait_until(lambda: exec_in(lab, "r1", "ping", "-c", "1", "-W", "2", "10.7.12.2")[0] == 0, WAIT), \
        "r1 does not reach r2 over their link after r2 was started again"


def test_a_node_stop_through_the_flow_is_left_to_the_flow(lab: str) -> None:
    """`node stop` then `node start`: the watcher sees the same docker events, waits for the
    flow's lock and finds nothing to change: the peers end with carrier, as the flow left them."""
    assert cli("node", "stop", lab, "r2").returncode == 0
    assert carrier(lab, "r1", "eth1") == "0"
    assert cli("node", "start", lab, "r2").returncode == 0
    assert carrier(lab, "r1", "eth1") == "1"
    assert not wait_until(lambda: carrier(lab, "r1", "eth1") != "1", 3, 0.3)


def test_a_killed_vm_takes_its_peers_carrier_and_gives_it_back_when_started(lab: str) -> None:
    import libvirt

    domain = names.domain_name(lab, "v1")
    assert wait_until(lambda: carrier(lab, "r3", "eth2") == "1", WAIT, 0.3), carrier(lab, "r3", "eth2")
    pid = int(Path(f"/run/libvirt/qemu/{domain}.pid").read_text())
    os.kill(pid, 9)  # QEMU killed: no flow, no libvirt call
    assert wait_until(lambda: carrier(lab, "r3", "eth2") == "0", WAIT, 0.3), carrier(lab, "r3", "eth2")
    assert carrier(lab, "r2", "eth2") == "1"  # not a peer of v1
    conn = libvirt.open("qemu:///system")
    try:
        conn.lookupByName(domain).create()  # started again by hand
    finally:
        conn.close()
    assert wait_until(lambda: carrier(lab, "r3", "eth2") == "1", WAIT, 0.3), carrier(lab, "r3", "eth2")
