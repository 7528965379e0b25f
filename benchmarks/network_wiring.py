"""Benchmark host networking: time and processes spawned to wire and remove N links.

Topology: a ring of N nodes (N links; every node has two ends, like a container with
eth1/eth2). Each node is a process sleeping in its own network namespace (``unshare
--net``), standing in for a container's PID. Counted processes: every ``subprocess``
child (``Popen``) and every ``fork`` made by this process while the step runs.

    sudo .venv/bin/python benchmarks/network_wiring.py [--links 10 50] [--workers 1] [--json]

Needs root and a running Open vSwitch. Uses its own lab ids (``bn-`` + hex) and removes
everything it made, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import names  # noqa: E402
from providers import network  # noqa: E402
from providers.base import LinkEnd  # noqa: E402
from providers.network.netlink import socket_in_netns, tx_checksum_off  # noqa: E402


class Spawns:
    """Counts subprocess children and forks of this process."""

    def __init__(self) -> None:
        self.count = 0
        original = subprocess.Popen.__init__

        def counting_init(popen_self, *args, **kwargs):
            self.count += 1
            return original(popen_self, *args, **kwargs)

        subprocess.Popen.__init__ = counting_init
        os.register_at_fork(before=self._forked)

    def _forked(self) -> None:
        self.count += 1


def start_nodes(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"]) for _ in range(n)]
    me = os.stat("/proc/self/ns/net").st_ino
    for proc in procs:
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == me:
            if time.monotonic() > deadline:
                raise RuntimeError("unshare did not make a namespace")
            time.sleep(0.002)
    return procs


def measure(spawns: Spawns, fn):
    before, start = spawns.count, time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start, spawns.count - before


def run(n: int, workers: int, spawns: Spawns) -> dict:
    lab = f"bn-{secrets.token_hex(3)}"
    nodes = [f"n{i}" for i in range(n)]
    links = [names.link_id(f"{nodes[i]}:eth1", f"{nodes[(i + 1) % n]}:eth2") for i in range(n)]
    procs = start_nodes(n)
    row: dict = {"links": n, "nodes": n, "ends": 2 * n, "workers": workers}
    try:
        vlans, row["allocate_s"], row["allocate_procs"] = measure(spawns, lambda: network.allocate_vlans(lab, links))

        def ends_of(i: int) -> list[LinkEnd]:
            out = links[i], links[(i - 1) % n]
            return [
                LinkEnd(out[0], "eth1", 1, vlans[out[0]], names.host_port_name(lab, nodes[i], "eth1")),
                LinkEnd(out[1], "eth2", 2, vlans[out[1]], names.host_port_name(lab, nodes[i], "eth2")),
            ]

        def wire_all():
            def one(i: int) -> None:
                network.attach_container_ends(lab, nodes[i], procs[i].pid, ends_of(i), ["eth1", "eth2"])

            if workers <= 1:
                for i in range(n):
                    one(i)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(one, range(n)))

        _, row["wire_s"], row["wire_procs"] = measure(spawns, wire_all)
        _, row["rewire_s"], row["rewire_procs"] = measure(spawns, wire_all)
        ports = network.bridge_ports()
        wired = [e.port_name for i in range(n) for e in ends_of(i)]
        row["ports_on_bridge"] = sum(1 for p in wired if p in ports and ports[p].tag is not None)
        report, row["release_s"], row["release_procs"] = measure(spawns, lambda: network.release_lab(lab))
        row["removed"] = {k: len(v) for k, v in report.removed.items()}
        row["release_errors"] = report.errors
    finally:
        network.release_lab(lab)
        for proc in procs:
            proc.kill()
            proc.wait()
    return row


def ethtool_cost(samples: int = 20) -> dict:
    """TX offload off inside a namespace: in-process ioctl vs ``nsenter ... ethtool -K``."""
    (proc,) = start_nodes(1)
    try:
        subprocess.run(["nsenter", "-t", str(proc.pid), "-n", "ip", "link", "add", "x0", "type", "veth",
                        "peer", "name", "x1"], check=True)
        start = time.perf_counter()
        for _ in range(samples):
            with socket_in_netns(proc.pid, socket.AF_INET, socket.SOCK_DGRAM) as sock:
                tx_checksum_off("x0", sock)
        ioctl = (time.perf_counter() - start) / samples
        start = time.perf_counter()
        for _ in range(samples):
            subprocess.run(["nsenter", "-t", str(proc.pid), "-n", "ethtool", "-K", "x0", "tx", "off"],
                           check=True, capture_output=True)
        nsenter = (time.perf_counter() - start) / samples
    finally:
        proc.kill()
        proc.wait()
    return {"ioctl_ms": round(ioctl * 1000, 3), "nsenter_ethtool_ms": round(nsenter * 1000, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--links", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--workers", type=int, default=1, help="threads wiring nodes in parallel")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: needs root", file=sys.stderr)
        return 2
    network.ensure_bridge()
    spawns = Spawns()
    rows = [run(n, args.workers, spawns) for n in args.links]
    tx = ethtool_cost()
    if args.json:
        print(json.dumps({"runs": rows, "tx_offload": tx}, indent=1))
        return 0
    print(f"{'links':>5} {'ends':>4} {'wk':>2} | {'alloc s':>7} {'p':>2} | {'wire s':>6} {'procs':>5} | "
          f"{'rewire s':>8} {'p':>3} | {'remove s':>8} {'p':>2} | removed")
    for r in rows:
        print(f"{r['links']:>5} {r['ends']:>4} {r['workers']:>2} | {r['allocate_s']:7.3f} {r['allocate_procs']:>2} | "
              f"{r['wire_s']:6.3f} {r['wire_procs']:>5} | {r['rewire_s']:8.3f} {r['rewire_procs']:>3} | "
              f"{r['release_s']:8.3f} {r['release_procs']:>2} | {r['removed']} {r['release_errors'] or ''}")
    print(f"TX offload off inside a netns: ioctl {tx['ioctl_ms']} ms, nsenter+ethtool {tx['nsenter_ethtool_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
