"""The baseline: the benchmark lab brought up and removed with the engines alone.

Nothing here imports Archetype (no ``lab``, ``topology``, ``providers``, ``tasks`` or
``flows``): only the docker SDK, pyroute2 and ``ovs-vsctl``, as a person scripting the
same lab by hand, with everything parallel that can be:

Deploy
  1. the lab's management network (a docker bridge network, as each Archetype lab has);
  2. per node, all nodes at once, one thread each: create the container (the FRR kind's
     image, capabilities, sysctls, environment, memory and CPU limit), copy its startup
     config in (``put_archive``), start it, read its PID, then make its veth pairs with
     one pyroute2 request each (the peer created directly in the container's namespace
     under its ``ethN`` name), TX checksum offload off on both ends (one ioctl each: the
     OVS userspace datapath needs it for TCP), both ends up;
  3. ONE ``ovs-vsctl`` transaction adds every port of the lab to the bridge with its VLAN
     tag (the bridge is made in it if missing);
  4. readiness, polled in parallel from the moment each container runs: the frr kind's
     probe (the image's verdict: the running config holds what frr.conf holds) until it answers,
     every 0.2 s (the catalog's interval for frr); while the image's starting marker is in the
     container (a stat through ``/proc/PID/root``), no probe is run, as the catalog says.
  Done when every node answers and the transaction is applied.

Destroy
  every container removed (forced) in its own thread and, at the same time, the lab's
  OVS ports in one ``ovs-vsctl`` transaction (found by their external_ids in one read);
  then the management network. The kernel removes the veth pairs with the namespaces.

The lab's resources carry the label / external_id ``bench.raw-lab`` and names starting
``bench-raw-``, and the ports live on their own bridge (``bench-raw``): nothing here is
Archetype's, and Archetype's discovery and orphan cleanup never see it.

``python benchmarks/baseline.py N`` deploys an N-node lab of ``benchmarks/topologies.py``
and destroys it, and prints both times.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import io
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import yaml
from pyroute2 import IPRoute

if __package__ in (None, ""):  # run as a script: the repo root on the path (for benchmarks.*)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BRIDGE = "bench-raw"
LABEL = "bench.raw-lab"
OVS_KEY = "bench-raw-lab"  # the external_id of the lab's OVS ports
MTU = 1500
# The frr kind's probe, copied (not imported) from vendors/kinds/frr.yml so that both sides
# wait for the same thing: archetype/frr removes the marker only once the running config holds
# what frr.conf holds (frr-reload.py --test, run by the image, which retries the application).
READY_COMMAND = ["sh", "-c", (
    'test ! -e /run/archetype-frr-starting && test ! -e /run/archetype-frr-failed && '
    '{ test -e /run/archetype-frr-config-errors || '
    '/usr/lib/frr/frr-reload.py --test --stdout /etc/frr/frr.conf 2>/dev/null | '
    "awk '/^Lines To Add$/ {a = 1; next} a && /^=+$/ {next} a && NF && !/^hostname /"
    ' { if ($0 == "exit") {h = 0; next} if (h || $0 ~ /^ /) m = 1; h = $0 !~ /^ /} END {exit m || h || !a}\'; }'
)]
READY_INTERVAL = 0.2
# The frr kind's starting marker, copied too: while it is in the container, no probe is run
# (looked up from the host through /proc/PID/root, as the provider does: a probe is an exec,
# ~0.1 CPU-second, and 20 nodes probing every 0.2 s starve the routers they wait for).
STARTING_MARKER = "/run/archetype-frr-starting"
READY_TIMEOUT = 300.0
FRR_CONF = "/etc/frr/frr.conf"
# The frr kind of the catalog (vendors/kinds/frr.yml), written out: no catalog import.
FRR_ENV = {"FRR_DAEMONS": "zebra staticd bgpd ospfd ospf6d isisd"}
FRR_CAPS = ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]
FRR_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.all.disable_ipv6": "0",
}

CLONE_NEWNET = 0x40000000
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Node:
    name: str
    config: str
    ports: list[tuple[str, str, int]] = field(default_factory=list)  # (inside name, host name, vlan)


@dataclass
class Plan:
    lab_id: str
    image: str
    nodes: dict[str, Node]

    @property
    def mgmt(self) -> str:
        return f"bench-raw-{self.lab_id}-mgmt"

    def container(self, node: str) -> str:
        return f"bench-raw-{self.lab_id}-{node}"


@dataclass
class DeployTiming:
    total: float  # start -> every node ready and every port on the bridge
    setup: float  # the management network
    created: float  # start -> the last container running
    wired: float  # start -> the last port on the bridge (the one transaction applied)
    ready: float  # start -> the last node answering
    per_node: dict[str, dict[str, float]] = field(default_factory=dict)


def plan(topology_text: str) -> Plan:
    """Nodes, startup configs, and per link end a host port name and a VLAN (1, 2, ...:
    the baseline has its own bridge, so it needs no allocation against other labs)."""
    doc = yaml.safe_load(topology_text)
    lab_id, topo = doc["name"], doc["topology"]
    image = topo["kinds"]["frr"]["image"]
    nodes = {name: Node(name, spec.get("startup-config", "")) for name, spec in topo["nodes"].items()}
    tag = secrets.token_hex(2)
    for vlan, link in enumerate(topo["links"], start=1):
        for end in link["endpoints"]:
            node, inside = end.split(":")
            host = f"br{tag}{len([p for n in nodes.values() for p in n.ports]):04d}"  # <= 15 chars
            nodes[node].ports.append((inside, host, vlan))
    return Plan(lab_id, image, nodes)


def client() -> docker.APIClient:
    return docker.APIClient(base_url="unix:///var/run/docker.sock", max_pool_size=128, timeout=120)


# Namespaces and interfaces ------------------------------------------------------------


@contextlib.contextmanager
def _in_netns(pid: int) -> Iterator[None]:
    """The calling thread inside the network namespace of ``pid`` for the body."""
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                os.abort()
    finally:
        os.close(target)
        os.close(home)


def _tx_off(sock: socket.socket, ifname: str) -> None:
    """``ethtool -K IFNAME tx off`` as one ioctl."""
    value = array.array("I", [ETHTOOL_STXCSUM, 0])
    ifreq = struct.pack("16sP", ifname.encode(), value.buffer_info()[0]).ljust(40, b"\0")
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


def wire(pid: int, ports: list[tuple[str, str, int]]) -> None:
    """The node's veth pairs: peer made in the container's namespace, offload off, up."""
    if not ports:
        return
    with _in_netns(pid):
        inside_nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
        inside_inet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host_inet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with IPRoute() as host, IPRoute(fileno=inside_nl.detach()) as inside:
            for inner, outer, _vlan in ports:
                host.link("add", ifname=outer, kind="veth", mtu=MTU, peer={"ifname": inner, "net_ns_pid": pid, "mtu": MTU})
                _tx_off(host_inet, outer)
                _tx_off(inside_inet, inner)
                host.link("set", ifname=outer, state="up")
                inside.link("set", ifname=inner, state="up")
    finally:
        inside_inet.close()
        host_inet.close()


def ovs_vsctl(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", "--timeout=30", *args], capture_output=True, text=True, check=True).stdout


def add_ports(lab_id: str, nodes: list[Node]) -> None:
    """Every port of the lab in ONE transaction (the bridge too, if missing)."""
    args = ["--", "--may-exist", "add-br", BRIDGE, "--", "set", "Bridge", BRIDGE, "datapath_type=netdev"]
    for node in nodes:
        for _inner, outer, vlan in node.ports:
            args += ["--", "add-port", BRIDGE, outer, "--", "set", "Port", outer, f"tag={vlan}",
                     f"external_ids:{OVS_KEY}={lab_id}"]
    ovs_vsctl(*args)


def remove_ports(lab_id: str) -> None:
    """The lab's ports: one read, one transaction."""
    table = json.loads(ovs_vsctl("--format=json", "--columns=name", "find", "Port",
                                 f"external_ids:{OVS_KEY}={lab_id}"))
    names = [row[0] for row in table["data"]]
    if names:
        ovs_vsctl(*[arg for name in names for arg in ("--", "--if-exists", "del-port", name)])


# Containers ----------------------------------------------------------------------------


def _tar(path: str, text: str) -> bytes:
    data, buffer = text.encode(), io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(Path(path).name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def start_container(api: docker.APIClient, lab: Plan, node: Node) -> int:
    """Create, copy the startup config in, start; returns the PID."""
    host_config = api.create_host_config(
        cap_add=FRR_CAPS, sysctls=FRR_SYSCTLS, mem_limit="512m", nano_cpus=1_000_000_000,
        restart_policy={"Name": "no"}, network_mode=lab.mgmt,
    )
    container = api.create_container(
        lab.image, name=lab.container(node.name), hostname=node.name, detach=True, stop_timeout=2,
        labels={LABEL: lab.lab_id}, environment={**FRR_ENV, "CLAB_INTFS": str(len(node.ports))},
        host_config=host_config,
    )["Id"]
    if node.config:
        api.put_archive(container, str(Path(FRR_CONF).parent), _tar(FRR_CONF, node.config))
    api.start(container)
    return api.inspect_container(container)["State"]["Pid"]


def _starting(proc: int) -> bool:
    """The starting marker still in the container whose ``/proc/PID`` descriptor is ``proc``
    (a container gone: not starting, the probe tells)."""
    try:
        os.stat(f"root{STARTING_MARKER}", dir_fd=proc, follow_symlinks=False)
    except OSError:
        return False
    return True


def wait_ready(api: docker.APIClient, container: str, pid: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY)
    try:
        while _starting(proc) and time.monotonic() < deadline:
            time.sleep(READY_INTERVAL)
    finally:
        os.close(proc)
    while True:
        exec_id = api.exec_create(container, READY_COMMAND)["Id"]
        api.exec_start(exec_id)
        if api.exec_inspect(exec_id)["ExitCode"] == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{container} not ready after {READY_TIMEOUT} s")
        time.sleep(READY_INTERVAL)


# Deploy and destroy --------------------------------------------------------------------


def deploy(topology_text: str, api: docker.APIClient | None = None) -> DeployTiming:
    """Bring the lab up; returns the timings (seconds from the start)."""
    own = api is None
    api = api or client()
    t0 = time.monotonic()
    try:
        lab = plan(topology_text)
        api.create_network(lab.mgmt, driver="bridge", labels={LABEL: lab.lab_id})
        setup = time.monotonic() - t0
        per_node: dict[str, dict[str, float]] = {name: {} for name in lab.nodes}
        wired_all = threading.Barrier(len(lab.nodes) + 1)

        def node_up(node: Node) -> None:
            times = per_node[node.name]
            try:
                pid = start_container(api, lab, node)
                times["created"] = time.monotonic() - t0
                wire(pid, node.ports)
                times["veths"] = time.monotonic() - t0
            finally:
                wired_all.wait()  # the lab's one OVS transaction waits for every node's veths
            wait_ready(api, lab.container(node.name), pid)
            times["ready"] = time.monotonic() - t0

        with ThreadPoolExecutor(max_workers=len(lab.nodes) + 1, thread_name_prefix="baseline") as pool:
            futures = [pool.submit(node_up, node) for node in lab.nodes.values()]
            wired_all.wait()
            add_ports(lab.lab_id, list(lab.nodes.values()))
            wired = time.monotonic() - t0
            for future in futures:
                future.result()
        total = time.monotonic() - t0
        return DeployTiming(
            total=total,
            setup=setup,
            created=max(t["created"] for t in per_node.values()),
            wired=wired,
            ready=max(t["ready"] for t in per_node.values()),
            per_node=per_node,
        )
    finally:
        if own:
            api.close()


def destroy(lab_id: str, api: docker.APIClient | None = None) -> float:
    """Remove the lab; returns the seconds it took."""
    own = api is None
    api = api or client()
    t0 = time.monotonic()
    try:
        rows = api.containers(all=True, filters={"label": f"{LABEL}={lab_id}"})

        def remove(container_id: str) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container_id, force=True, v=True)

        with ThreadPoolExecutor(max_workers=len(rows) + 1, thread_name_prefix="baseline-rm") as pool:
            ports = pool.submit(remove_ports, lab_id)
            list(pool.map(remove, [row["Id"] for row in rows]))
            ports.result()
        for net in api.networks(filters={"label": f"{LABEL}={lab_id}"}):
            api.remove_network(net["Id"])
        return time.monotonic() - t0
    finally:
        if own:
            api.close()


def leftovers(lab_id: str) -> list[str]:
    """What of the lab is still on the host (empty after a destroy)."""
    api = client()
    try:
        found = [c["Names"][0] for c in api.containers(all=True, filters={"label": f"{LABEL}={lab_id}"})]
        found += [n["Name"] for n in api.networks(filters={"label": f"{LABEL}={lab_id}"})]
    finally:
        api.close()
    with contextlib.suppress(subprocess.CalledProcessError):
        table = json.loads(ovs_vsctl("--format=json", "--columns=name", "find", "Port",
                                     f"external_ids:{OVS_KEY}={lab_id}"))
        found += [row[0] for row in table["data"]]
    return found


def main(argv: list[str]) -> int:
    """``baseline.py N``: deploy and destroy an N-node lab, print both times.
    ``baseline.py deploy FILE`` / ``baseline.py destroy LAB``: one of them, as a process of
    its own (as ``benchmarks/run.py`` runs it, beside ``archetype deploy`` / ``destroy``),
    printing one JSON document with the times (and, for deploy, epoch seconds of its
    start, to split the process's own start from the work)."""
    if len(argv) > 2 and argv[1] == "deploy":
        started_at = time.time()
        timing = deploy(Path(argv[2]).read_text())
        print(json.dumps({"started_at": started_at, "total": timing.total, "setup": timing.setup,
                          "created": timing.created, "wired": timing.wired, "ready": timing.ready}))
        return 0
    if len(argv) > 2 and argv[1] == "destroy":
        started_at = time.time()
        print(json.dumps({"started_at": started_at, "total": destroy(argv[2])}))
        return 0
    from benchmarks.topologies import frr_lab_yaml

    n = int(argv[1]) if len(argv) > 1 else 20
    lab_id = f"bench-raw{secrets.token_hex(2)}"
    api = client()
    try:
        timing = deploy(frr_lab_yaml(lab_id, n), api)
        print(f"deploy {n} nodes: {timing.total:.2f} s (mgmt network {timing.setup:.2f}, all created "
              f"{timing.created:.2f}, ports on the bridge {timing.wired:.2f}, all ready {timing.ready:.2f})")
    finally:
        print(f"destroy: {destroy(lab_id, api):.2f} s")
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
