"""The baseline: the same lab work as deploy-lab / destroy-lab, done directly, with full
parallelism and NO Prefect (nothing here imports it, directly or through ``tasks``/``flows``).

Deploy = the lab's management network, VLAN allocation (``providers.network``), then per
node, all nodes at once in a thread pool: ``containers.run`` (same image, capabilities,
sysctls, labels, env, limits and management network as ``DockerProvider`` gives, derived
from the same vendor entry) -> wiring (``attach_container_ends``: the node's veths and ONE
ovs-vsctl transaction, as the provider does) -> readiness (the vendor's CLI probe,
``vtysh -c 'show bgp summary'``, polled at the vendor's interval until it answers).

Destroy = every container of the lab removed in parallel and, at the same time, the lab's
network released (OVS ports, veths, VLAN record); then its management network removed.

This is the reference for "how fast could it be": ``python benchmarks/baseline.py N``
deploys an N-node ring-with-chords FRR lab, then destroys it, and prints the times.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker
import docker.errors

from lab import names
from lab.settings import get_settings
from providers import network
from providers.base import LinkEnd
from providers.docker.spec import INTERFACE_COUNT_ENV, cpu_limit
from topology import Lab, Node, load_topology

POOL_SIZE = 64


@dataclass
class DeployTiming:
    total: float  # start -> every node ready
    setup: float  # mgmt network + bridge + VLAN allocation
    created: float  # start -> the last container running
    wired: float  # start -> the last node wired
    ready: float  # start -> the last node ready (== total)
    per_node: dict[str, dict[str, float]] = field(default_factory=dict)


def client() -> docker.DockerClient:
    return docker.DockerClient(base_url=get_settings().docker_url, max_pool_size=POOL_SIZE, timeout=120)


def link_ends(lab: Lab, vlans: dict[str, int]) -> dict[str, list[LinkEnd]]:
    """Each node's link ends in port order (what ``tasks.network.plan_link_ends`` computes)."""
    return {
        name: [
            LinkEnd(link.id, end.interface, end.port, vlans[link.id], names.host_port_name(lab.id, name, end.interface))
            for link, end in lab.links_of(name)
        ]
        for name in lab.nodes
    }


def run_kwargs(lab_id: str, node: Node, interface_count: int, mgmt: str) -> dict:
    """``containers.run`` arguments from the vendor entry, as ``providers.docker.spec`` builds them."""
    vendor = node.vendor
    options = vendor.container
    assert options is not None, f"{node.kind} is not a container kind"
    return {
        "image": node.image,
        "name": names.container_name(lab_id, node.name),
        "hostname": node.name,
        "labels": {**node.labels, **names.container_labels(lab_id, node.name, vendor.kind)},
        "environment": {**options.env, **node.env, INTERFACE_COUNT_ENV: str(interface_count)},
        "detach": True,
        "cap_add": list(options.cap_add) or None,
        "cap_drop": list(options.cap_drop) or None,
        "security_opt": list(options.security_opt) or None,
        "sysctls": dict(options.sysctls) or None,
        "mem_limit": f"{node.memory_mb or vendor.memory_mb}m",
        "nano_cpus": cpu_limit(node.cpus or vendor.cpus),
        "restart_policy": {"Name": "no"},
        "network": mgmt,
        "privileged": False,
    }


def _node_up(
    dc: docker.DockerClient, lab: Lab, node: Node, ends: list[LinkEnd], mgmt: str, t0: float, interval: float | None
) -> dict[str, float]:
    kwargs = {k: v for k, v in run_kwargs(lab.id, node, len(ends), mgmt).items() if v is not None}
    container = dc.containers.run(**kwargs)
    container.reload()  # the PID of the running container (as the provider's wire_node inspects)
    created = time.monotonic() - t0
    runtime_names = [node.vendor.interfaces.runtime_name(end.port) for end in ends]
    network.attach_container_ends(lab.id, node.name, container.attrs["State"]["Pid"], ends, runtime_names)
    wired = time.monotonic() - t0
    readiness = node.vendor.readiness
    deadline = time.monotonic() + readiness.timeout
    while True:
        result = container.exec_run(readiness.command or ["true"])
        if result.exit_code == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{node.name} not ready after {readiness.timeout} s: {result.output[-300:]!r}")
        time.sleep(readiness.interval if interval is None else interval)
    return {"created": created, "wired": wired, "ready": time.monotonic() - t0}


def deploy(topology: str, dc: docker.DockerClient | None = None, *, ready_interval: float | None = None) -> DeployTiming:
    """Deploy a container lab from topology YAML text; returns the timings.
    ``ready_interval`` replaces the vendor's readiness poll interval (experiments)."""
    own = dc is None
    dc = dc or client()
    t0 = time.monotonic()
    try:
        lab = load_topology(topology)
        mgmt = names.mgmt_network_name(lab.id)
        dc.networks.create(mgmt, driver="bridge", check_duplicate=True,
                           labels={names.LABEL_LAB: lab.id, names.LABEL_PROVIDER: "docker"})
        network.ensure_bridge()
        vlans = network.allocate_vlans(lab.id, [link.id for link in lab.links])
        ends = link_ends(lab, vlans)
        setup = time.monotonic() - t0
        with ThreadPoolExecutor(max_workers=max(1, len(lab.nodes)), thread_name_prefix="baseline") as pool:
            futures = {name: pool.submit(_node_up, dc, lab, node, ends[name], mgmt, t0, ready_interval) for name, node in lab.nodes.items()}
            per_node = {name: future.result() for name, future in futures.items()}
        total = time.monotonic() - t0
        return DeployTiming(
            total=total,
            setup=setup,
            created=max(t["created"] for t in per_node.values()),
            wired=max(t["wired"] for t in per_node.values()),
            ready=max(t["ready"] for t in per_node.values()),
            per_node=per_node,
        )
    finally:
        if own:
            dc.close()


def destroy(
    lab_id: str, dc: docker.DockerClient | None = None, *, tolerate_stale_network: bool = False
) -> tuple[float, str]:
    """Remove the lab's containers (in parallel), network and management network.
    Returns (seconds, problem): ``problem`` is dockerd refusing to remove the management
    network because of a stale endpoint count (moby#42119), tolerated when asked."""
    own = dc is None
    dc = dc or client()
    t0 = time.monotonic()
    problem = ""
    try:
        rows = dc.api.containers(all=True, filters={"label": f"{names.LABEL_LAB}={lab_id}"})

        def remove(container_id: str) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                dc.api.remove_container(container_id, force=True, v=True)

        # Everything at once: each container in its own thread, the network side in another.
        with ThreadPoolExecutor(max_workers=len(rows) + 1, thread_name_prefix="baseline-rm") as pool:
            released = pool.submit(network.release_lab, lab_id)
            list(pool.map(remove, [row["Id"] for row in rows]))
            report = released.result()
        if report.errors:
            raise RuntimeError(f"lab {lab_id}: network release: {report.errors}")
        for net in dc.api.networks(filters={"label": f"{names.LABEL_LAB}={lab_id}"}):
            try:
                dc.api.remove_network(net["Id"])
            except docker.errors.APIError as err:
                if not (tolerate_stale_network and "active endpoints" in str(err)):
                    raise
                problem = str(err)
        return time.monotonic() - t0, problem
    finally:
        if own:
            dc.close()


def main(argv: list[str]) -> int:
    from benchmarks.topologies import frr_lab_yaml

    n = int(argv[1]) if len(argv) > 1 else 20
    lab_id = f"bench-base-{secrets.token_hex(2)}"
    dc = client()
    try:
        timing = deploy(frr_lab_yaml(lab_id, n), dc)
        print(f"deploy {n} nodes: {timing.total:.2f} s (setup {timing.setup:.2f}, all created {timing.created:.2f}, "
              f"all wired {timing.wired:.2f}, all ready {timing.ready:.2f})")
    finally:
        print("destroy: {:.2f} s {}".format(*destroy(lab_id, dc)))
        dc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
