"""The engines-only baseline for large labs (``make bench-scale``), with nothing of ours in
the nodes either.

``benchmarks/baseline.py`` runs the image's own entrypoint and waits for its starting
marker, as the frr kind does: at 200 nodes that compares Archetype with a copy of itself.
Here the containers run FRR as a person scripting the lab by hand would: the image's
entrypoint is replaced by Debian's own start (the frr kind's daemons enabled in
/etc/frr/daemons, then ``frrinit.sh start``), and a node counts as ready only when its running config holds its
frr.conf's BGP lines (``router bgp``, each ``neighbor``, ``redistribute``), asked with
``vtysh -c 'show running-config'``. A node whose config is still missing 30 s after its
first check gets a person's retry, again every 30 s: ``frrinit.sh restart`` when a daemon is
down or the file applied again did not help, else ``vtysh -f /etc/frr/frr.conf``.

Bounded like a careful script: ``--workers`` threads create and start the containers (8 by
default: the engines' best measured on this 2-core host), the same number poll readiness.
The lab shape, the wiring (pyroute2, one ``ovs-vsctl`` transaction) and the destroy are
``benchmarks/baseline.py``'s.

``python benchmarks/baseline_scale.py deploy FILE [--workers N]`` / ``destroy LAB``: one
JSON document with the times (seconds from the start; ``started_at`` in epoch seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

if __package__ in (None, ""):  # run as a script: the repo root on the path (for benchmarks.*)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import baseline  # noqa: E402
from benchmarks.baseline import FRR_CAPS, FRR_CONF, FRR_SYSCTLS, LABEL, Node, Plan  # noqa: E402

WORKERS = 8
READY_TIMEOUT = 300.0
POLL_SECONDS = 1.0
REAPPLY_SECONDS = 30.0
EXEC_SECONDS = 60  # a vtysh command
RESTART_SECONDS = 240  # frrinit.sh restart: ~10 s on a quiet host, minutes at load 200 (never cut halfway)
# Debian's FRR started by hand: the routing daemons the frr kind starts on (so that both
# sides run the same daemons), the integrated config, frrinit.sh, then stay up.
RAW_START = (
    "sed -i -E 's/^(bgpd|ospfd|ospf6d|isisd)=no/\\1=yes/' /etc/frr/daemons"
    " && echo 'service integrated-vtysh-config' > /etc/frr/vtysh.conf"
    " && /usr/lib/frr/frrinit.sh start; exec sleep infinity"
)
WANTED = ("router bgp ", "neighbor ", "redistribute ")


def wanted_lines(config: str) -> set[str]:
    return {line.strip() for line in config.splitlines() if line.strip().startswith(WANTED)}


def create(api: docker.APIClient, lab: Plan, node: Node) -> int:
    """Create with Debian's FRR start instead of the image's entrypoint, copy frr.conf in,
    start; the PID."""
    host_config = api.create_host_config(
        cap_add=FRR_CAPS, sysctls=FRR_SYSCTLS, mem_limit="512m", nano_cpus=1_000_000_000,
        restart_policy={"Name": "no"}, network_mode=lab.mgmt,
    )
    container = api.create_container(
        lab.image, name=lab.container(node.name), hostname=node.name, detach=True, stop_timeout=2,
        labels={LABEL: lab.lab_id}, entrypoint=["/bin/bash", "-c", RAW_START], host_config=host_config,
    )["Id"]
    api.put_archive(container, str(Path(FRR_CONF).parent), baseline._tar(FRR_CONF, node.config))
    api.start(container)
    return api.inspect_container(container)["State"]["Pid"]


def _exec(api: docker.APIClient, container: str, argv: list[str], seconds: int = EXEC_SECONDS) -> tuple[int, str]:
    """``argv`` in the container, ended after ``seconds`` as a person ends a command that
    hangs: a ``vtysh -f`` stuck on FRR 10's mgmtd never returned (N=100, 9 minutes)."""
    argv = ["timeout", "-k", "5", str(seconds), *argv]
    exec_id = api.exec_create(container, argv)["Id"]
    output = api.exec_start(exec_id).decode(errors="replace")
    return api.exec_inspect(exec_id)["ExitCode"], output


def _retry(api: docker.APIClient, container: str, attempt: int) -> None:
    """A person's retry: FRR restarted when a daemon is down (watchfrr's own restart backs off
    for minutes: seen at N=50, bgpd dead after a double start) or when applying the file
    again did not help the last time (FRR 10's mgmtd can keep a configuration transaction
    locked, "running datastore locked by another session", seen at N=100; the N=50, 100 and
    200 rounds each lost one node whose BGP lines never went in within 300 s of vtysh -f
    every 30 s), else the file applied again."""
    _code, status = _exec(api, container, ["vtysh", "-c", "show watchfrr"])
    daemons = [line.split() for line in status.splitlines() if line.startswith("  ") and len(line.split()) == 2]
    if attempt > 1 or any(state != "Up" for _name, state in daemons):
        _exec(api, container, ["/usr/lib/frr/frrinit.sh", "restart"], RESTART_SECONDS)
    else:
        _exec(api, container, ["vtysh", "-f", FRR_CONF])


def wait_configured(api: docker.APIClient, container: str, config: str) -> None:
    wanted = wanted_lines(config)
    started = time.monotonic()
    next_apply = started + REAPPLY_SECONDS
    attempts = 0
    while True:
        code, running = _exec(api, container, ["vtysh", "-c", "show running-config"])
        if code == 0 and wanted <= {line.strip() for line in running.splitlines()}:
            return
        now = time.monotonic()
        if now - started > READY_TIMEOUT:
            raise TimeoutError(f"{container}: its BGP config not in the running config after {READY_TIMEOUT:.0f} s")
        if now >= next_apply:
            attempts += 1
            _retry(api, container, attempts)
            next_apply = now + REAPPLY_SECONDS
        time.sleep(POLL_SECONDS)


def deploy(topology_text: str, workers: int = WORKERS) -> dict[str, float]:
    api = baseline.client()
    t0 = time.monotonic()
    try:
        lab = baseline.plan(topology_text)
        api.create_network(lab.mgmt, driver="bridge", labels={LABEL: lab.lab_id})
        nodes = list(lab.nodes.values())

        def create_and_wire(node: Node) -> None:
            baseline.wire(create(api, lab, node), node.ports)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scale") as pool:
            list(pool.map(create_and_wire, nodes))
            created = time.monotonic() - t0
            baseline.add_ports(lab.lab_id, nodes)
            wired = time.monotonic() - t0
            list(pool.map(lambda n: wait_configured(api, lab.container(n.name), n.config), nodes))
        return {"total": time.monotonic() - t0, "created": created, "wired": wired, "ready": time.monotonic() - t0}
    finally:
        api.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["deploy", "destroy"])
    parser.add_argument("target", help="topology file (deploy) or lab id (destroy)")
    parser.add_argument("--workers", type=int, default=WORKERS)
    args = parser.parse_args(argv[1:])
    started_at = time.time()
    if args.action == "deploy":
        timing = deploy(Path(args.target).read_text(), args.workers)
    else:
        timing = {"total": baseline.destroy(args.target)}
    print(json.dumps({"started_at": started_at, **timing}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
