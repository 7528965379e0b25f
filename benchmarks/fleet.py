"""Multi-host benchmarks on the simulated fleet (`make sim-up HOSTS=2` first).

    python benchmarks/fleet.py [--nodes 20] [--tunnels 1 20] [--reps 3]

1. Cross-host link set-up: the VXLAN devices of N links on one host (kernel device, ifalias,
   TX offload off, one OVS transaction), measured inside sim-1 with the providers' own call.
2. An FRR ring of N nodes deployed and destroyed through the CLI: all on sim-1, then split
   half and half over sim-1 and sim-2 (two links cross).
Prints a markdown table (docs/performance.md, "Multi-host").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SIM = REPO / "scripts" / "sim-fleet.sh"
NS = Path("/run/archetype-sim")

TUNNELS_IN_HOST = """
import json, sys, time
from lab.settings import get_settings
from providers import network
from providers.network.vxlan import Tunnel, ensure_tunnels
count = int(sys.argv[1])
tunnels = [Tunnel(link_id=f"b{i}:eth1--c{i}:eth1", node=f"b{i}", vni=900000 + i, remote="10.213.0.2", vlan=3000 + i)
           for i in range(count)]
network.ensure_bridge()
start = time.perf_counter()
ensure_tunnels("mh-bench", tunnels, local=get_settings().data_address)
made = time.perf_counter() - start
start = time.perf_counter()
ensure_tunnels("mh-bench", tunnels, local=get_settings().data_address)
again = time.perf_counter() - start
network.release_lab("mh-bench")
print(json.dumps({"made": made, "again": again}))
"""


def fleet_env() -> dict[str, str]:
    out = subprocess.run(["bash", str(SIM), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    return {**os.environ, **env, "PYTHONPATH": str(REPO)}


def in_host(host: str, *argv: str) -> str:
    ns = NS / host / "ns"
    prefix = ["nsenter", f"--net={ns}/net", f"--mount={ns}/mnt", f"--uts={ns}/uts", "--",
              "env", f"PYTHONPATH={REPO}", f"ARCHETYPE_DATA_ADDRESS=10.213.0.{host[-1]}"]
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, check=True).stdout


def tunnel_setup(counts: list[int]) -> list[list[str]]:
    rows = []
    for count in counts:
        figures = json.loads(in_host("sim-1", sys.executable, "-c", TUNNELS_IN_HOST, str(count)).strip().splitlines()[-1])
        rows.append([f"{count} cross-host link(s), one end", f"{figures['made']:.3f} s", f"{figures['again']:.3f} s (nothing to do)"])
    return rows


def ring(lab_id: str, count: int, split: bool) -> str:
    nodes = {}
    for i in range(1, count + 1):
        host = "sim-2" if split and i > count // 2 else "sim-1"
        nodes[f"r{i}"] = {"kind": "frr", "host": host}
    links = [{"endpoints": [f"r{i}:eth1", f"r{i % count + 1}:eth2"]} for i in range(1, count + 1)]
    return yaml.safe_dump({"name": lab_id, "topology": {"nodes": nodes, "links": links}})


def cli(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", "from archetype.cli import main; main()", *args, "--json"],
                            env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, result.returncode, result.stderr[-500:]


def lab_runs(count: int, reps: int) -> list[list[str]]:
    """Each layout deployed and destroyed ``reps`` times, alternating: median (min-max)."""
    env = fleet_env()
    times: dict[bool, dict[str, list[float]]] = {split: {"deploy": [], "destroy": [], "load": []} for split in (False, True)}
    for _ in range(reps):
        for split in (False, True):
            lab_id = f"mh-bench-{'split' if split else 'one'}"
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "ring.yml"
                path.write_text(ring(lab_id, count, split))
                times[split]["load"].append(os.getloadavg()[0])
                deployed, code, err = cli(env, "deploy", str(path))
                if code != 0:
                    cli(env, "destroy", lab_id)
                    raise SystemExit(f"deploy failed: {err}")
                destroyed, code, err = cli(env, "destroy", lab_id)
                if code != 0:
                    raise SystemExit(f"destroy failed: {err}")
            times[split]["deploy"].append(deployed)
            times[split]["destroy"].append(destroyed)
    rows = []
    for split, measured in times.items():
        where = "sim-1 and sim-2 (2 links cross)" if split else "sim-1 only"
        rows.append([f"{count}-node FRR ring on {where}", spread(measured["deploy"]), spread(measured["destroy"]),
                     f"{min(measured['load']):.1f}-{max(measured['load']):.1f}"])
    return rows


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--tunnels", type=int, nargs="*", default=[1, 20])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print("| cross-host link set-up | made | again |\n|---|---|---|")
    for row in tunnel_setup(args.tunnels):
        print("| " + " | ".join(row) + " |")
    print(f"\n| lab (CLI process, wall clock, median of {args.reps}) | deploy | destroy | load before |\n|---|---|---|---|")
    for row in lab_runs(args.nodes, args.reps):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
