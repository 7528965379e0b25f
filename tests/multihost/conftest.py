"""The simulated fleet (scripts/sim-fleet.sh): two hosts sim-1 and sim-2 on this machine,
each with its own dockerd, libvirtd, OVS, workspace and worker, and a Postgres-backed
Prefect server with API auth. Started once per test session (idempotent: a fleet already
up is reused and left up); a fleet this session started is taken down at its end.

Tests talk to the fleet as a user does: the `archetype` CLI with the fleet's env, and look
at each host directly (nsenter into its namespaces; docker, virsh, ovs-vsctl, ip there).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.prefect_server import ARCHETYPE

REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "scripts" / "sim-fleet.sh"
RUN = Path("/run/archetype-sim")
HOSTS = ("sim-1", "sim-2")
# The coordinator's own Prefect folder (and so its own executor, with the fleet's PREFECT_
# variables): not the host's default one, whose executor serves the local server's commands.
COORDINATOR_HOME = RUN / "coordinator-prefect"
FRESH_FLEET_TEST = "test_fresh_fleet.py"


def _unavailable(what: str) -> None:
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(what, pytrace=False)
    pytest.skip(what)


@dataclass
class Fleet:
    env: dict[str, str]
    started_here: bool = False
    labs: list[str] = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 900, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`archetype ARGS` from this (coordinating) machine, pointed at the fleet: as a user
        runs it, through the executor of the coordinator's Prefect folder."""
        env = {**os.environ, **self.env, "PREFECT_HOME": str(COORDINATOR_HOME), "PYTHONPATH": str(REPO),
               **(extra_env or {})}
        return subprocess.run([ARCHETYPE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)

    def cli_json(self, *args: str, **kwargs) -> tuple[int, dict, str]:
        result = self.cli(*args, "--json", **kwargs)
        try:
            document = json.loads(result.stdout) if result.stdout.strip() else {}
        except json.JSONDecodeError:
            document = {}
        return result.returncode, document, result.stderr

    def on(self, host: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a command inside a simulated host (its network, mounts and docker socket)."""
        ns = RUN / host / "ns"
        prefix = ["nsenter", f"--net={ns}/net", f"--mount={ns}/mnt", f"--uts={ns}/uts", "--",
                  "env", "DOCKER_HOST=unix:///run/docker/docker.sock"]
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout, check=False)

    def docker_exec(self, host: str, lab: str, node: str, *argv: str, timeout: float = 60,
                    prefix: str = "archetype") -> tuple[int, str]:
        """``prefix``: the container's name's (containerlab's top-level ``prefix``: netlab says clab)."""
        result = self.on(host, "docker", "exec", f"{prefix}-{lab}-{node}", *argv, timeout=timeout)
        return result.returncode, result.stdout + result.stderr

    def serve_tcp(self, host: str, lab: str, node: str, port: int, script: str, timeout: float = 30) -> None:
        """Start a one-connection TCP server (a perl ``script`` listening on ``port``) in a
        container, and return once it listens: ``docker exec -d`` returns before it binds."""
        self.on(host, "docker", "exec", "-d", f"archetype-{lab}-{node}", "perl", "-e", script)
        deadline = time.monotonic() + timeout
        while not self._listening(host, lab, node, port):
            if time.monotonic() > deadline:
                raise AssertionError(f"{node} on {host}: nothing listens on TCP port {port} after {timeout:.0f} s")
            time.sleep(0.2)

    def _listening(self, host: str, lab: str, node: str, port: int) -> bool:
        _, out = self.docker_exec(host, lab, node, "cat", "/proc/net/tcp", "/proc/net/tcp6")
        rows = (line.split() for line in out.splitlines())
        return any(len(r) > 3 and r[1].endswith(f":{port:04X}") and r[3] == "0A" for r in rows)  # 0A: LISTEN

    def sim(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SIM), *args], capture_output=True, text=True, timeout=timeout, check=False)

    def run_deployment(self, name: str, parameters: dict, timeout: float = 600) -> str:
        """Run a deployment of the fleet's server (as a schedule or the UI would); its final state."""
        script = (
            "import json, sys\n"
            "from prefect.deployments import run_deployment\n"
            f"run = run_deployment({name!r}, parameters=json.loads(sys.argv[1]), timeout={timeout})\n"
            "print(run.state.type.value)\n"
        )
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        result = subprocess.run([sys.executable, "-c", script, json.dumps(parameters)], env=env, capture_output=True,
                                text=True, timeout=timeout + 60, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip().splitlines()[-1]

    def hosts(self) -> dict[str, dict]:
        code, document, err = self.cli_json("hosts")
        assert code == 0, err
        return {h["name"]: h for h in document["hosts"]}

    def wait_alive(self, host: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.hosts().get(host, {}).get("alive"):
                return
            time.sleep(3)
        raise AssertionError(f"{host} did not come back alive")


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
    return env


def _worker_alive(host: str) -> bool:
    """The host's worker runs (its pid file names a live process). A pid file alone proves
    nothing: processes die with a machine's session while /run stays, and a fleet taken for
    someone else's would never be taken down."""
    try:
        pid = int((RUN / host / "pids" / "worker").read_text().strip())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state not in ("Z", "X")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fresh-fleet test first among the fleet's tests: it takes down whatever fleet runs
    and removes its state, then brings up the one the later tests share."""
    fresh = [item for item in items if item.path.name == FRESH_FLEET_TEST]
    ours = [index for index, item in enumerate(items) if item.path.parent.name == "multihost"]
    if fresh and ours:
        for item in fresh:
            items.remove(item)
        items[min(ours):min(ours)] = fresh


@pytest.fixture(scope="session")
def fleet_owner() -> Iterator[dict[str, bool]]:
    """Whether this session started the fleet (then it takes it down at its end), whichever
    of its tests started it: the fleet fixture, or the fresh-fleet test."""
    owner = {"started": False}
    try:
        yield owner
    finally:
        from archetype.handoff import stop_executor

        stop_executor(COORDINATOR_HOME)
        if owner["started"]:
            subprocess.run(["bash", str(SIM), "down"], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="session")
def fleet(fleet_owner: dict[str, bool]) -> Iterator[Fleet]:
    if os.geteuid() != 0:
        _unavailable("the simulated fleet needs root")
    was_up = all(_worker_alive(h) for h in HOSTS)
    result = subprocess.run(["bash", str(SIM), "up", str(len(HOSTS))], capture_output=True, text=True, timeout=900,
                            check=False)
    if result.returncode != 0:
        _unavailable(f"the simulated fleet did not start: {result.stderr[-2000:]}")
    fleet_owner["started"] = fleet_owner["started"] or not was_up
    fleet = Fleet(env=_parse_env(result.stdout), started_here=fleet_owner["started"])
    for host in HOSTS:
        fleet.wait_alive(host)
    yield fleet


def start_fresh_fleet(fleet_owner: dict[str, bool]) -> tuple[dict[str, float], Fleet]:
    """A fleet from a fresh machine's state, as CI makes it: `scripts/fresh-host-state.sh`
    (ends a running fleet by its recorded pids, removes its state and run folders), then
    `make sim-up HOSTS=2`, then every host alive. The seconds of each step, and the fleet."""
    from archetype.handoff import stop_executor

    if os.geteuid() != 0:
        _unavailable("the simulated fleet needs root")
    stop_executor(COORDINATOR_HOME)  # its PREFECT_ variables name the old fleet's secret
    seconds: dict[str, float] = {}
    started = time.monotonic()
    removed = subprocess.run(["bash", str(REPO / "scripts" / "fresh-host-state.sh")], capture_output=True, text=True,
                             timeout=600, check=False)
    assert removed.returncode == 0, removed.stderr[-3000:]
    seconds["remove state"] = time.monotonic() - started
    fleet_owner["started"] = True
    started = time.monotonic()
    up = subprocess.run(["make", "-s", "-C", str(REPO), "sim-up", f"HOSTS={len(HOSTS)}"], capture_output=True,
                        text=True, timeout=1800, check=False)
    if up.returncode != 0:
        _unavailable(f"make sim-up did not bring the fleet up: {up.stdout[-1500:]}{up.stderr[-3000:]}")
    seconds["make sim-up"] = time.monotonic() - started
    fleet = Fleet(env=_parse_env(up.stdout), started_here=True)
    started = time.monotonic()
    for host in HOSTS:
        fleet.wait_alive(host)
    seconds["hosts alive"] = time.monotonic() - started
    return seconds, fleet


@pytest.fixture
def lab_id() -> str:
    return f"mh-{secrets.token_hex(3)}"


def two_routers_across_hosts(lab_id: str, r1_config: str, r2_config: str) -> dict:
    """A lab document: FRR r1 on sim-1 and r2 on sim-2, linked eth1 to eth1 across the hosts."""
    return {"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {"r1": {"kind": "frr", "host": "sim-1", "startup-config": r1_config},
                  "r2": {"kind": "frr", "host": "sim-2", "startup-config": r2_config}},
        "links": [{"endpoints": ["r1:eth1", "r2:eth1"]}]}}


@contextlib.contextmanager
def deployed(fleet: Fleet, topology_file: Path) -> Iterator[str]:
    """The lab of TOPOLOGY_FILE (named after its stem) deployed over the fleet; destroyed at
    the end, leaving nothing on any host."""
    lab_id = topology_file.stem
    code, _, err = fleet.cli_json("deploy", str(topology_file))
    try:
        assert code == 0, err[-4000:]
        yield lab_id
    finally:
        fleet.cli("destroy", lab_id)
        assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}


def host_leftovers(fleet: Fleet, host: str, lab: str) -> dict[str, list[str]]:
    """What the lab left on one host, read from each runtime there (not through our code)."""
    found: dict[str, list[str]] = {}
    containers = fleet.on(host, "docker", "ps", "-a", "--filter", f"label=archetype.lab_id={lab}", "--format", "{{.Names}}")
    found["containers"] = containers.stdout.split()
    domains = fleet.on(host, "virsh", "-c", "qemu:///system", "list", "--all", "--name")
    found["domains"] = [d for d in domains.stdout.split() if d.startswith(f"arch-{lab}-")]
    ports = fleet.on(host, "ovs-vsctl", "--format=json", "--columns=name,external_ids", "list", "Port")
    rows = json.loads(ports.stdout)["data"] if ports.stdout.strip() else []
    found["ovs-ports"] = [r[0] for r in rows if ["archetype-lab", lab] in r[1][1]]
    vxlans = fleet.on(host, "ip", "-d", "-o", "link", "show", "type", "vxlan")
    found["vxlan-devices"] = [line.split(":")[1].strip() for line in vxlans.stdout.splitlines() if f"lab={lab} " in line]
    files = fleet.on(host, "sh", "-c", f"ls -d /var/lib/archetype/*/{lab} /var/lib/archetype/vlans/{lab}.json 2>/dev/null")
    found["workspace"] = files.stdout.split()
    return {k: v for k, v in found.items() if v}
