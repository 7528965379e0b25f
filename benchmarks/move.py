"""Moving nodes between the simulated hosts, timed as a user sees it (`make sim-up HOSTS=2` first).

    flock /tmp/bench.lock python benchmarks/move.py [--reps 3] [--lab mvb-x]

The lab of tests/multihost/test_migrate.py (FRR r1 and mini-ios v1 on sim-1, FRR r2 on
sim-2; r1 - v1 - r2). Then, ``--reps`` times each way: `archetype migrate LAB v1 --to
sim-2` and back, a live move; `archetype migrate LAB r1 ...`, a cold one. Each figure: the
command's wall time as a process (from start to exit), the flow's own figures (migration,
downtime and its source, the steps' times), the load average before it. Prints one JSON
line per move and a markdown table; the lab is destroyed at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.fleet import fleet_env  # noqa: E402

ARCHETYPE = str(REPO / ".venv" / "bin" / "archetype")
COORDINATOR_HOME = Path("/run/archetype-sim/coordinator-prefect")  # as tests/multihost: its own executor

R1 = "hostname r1\ninterface eth1\n ip address 10.2.1.1/24\nip route 10.2.2.0/24 10.2.1.3\n"
R2 = "hostname r2\ninterface eth1\n ip address 10.2.2.2/24\nip route 10.2.1.0/24 10.2.2.3\n"


def topology(lab_id: str) -> dict:
    return {"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {"r1": {"kind": "frr", "host": "sim-1", "startup-config": R1},
                  "v1": {"kind": "mini-ios", "host": "sim-1"},
                  "r2": {"kind": "frr", "host": "sim-2", "startup-config": R2}},
        "links": [{"endpoints": ["r1:eth1", "v1:GigabitEthernet0/1"]},
                  {"endpoints": ["r2:eth1", "v1:GigabitEthernet0/2"]}]}}


def cli(env: dict[str, str], *args: str) -> tuple[float, dict]:
    started = time.monotonic()
    result = subprocess.run([ARCHETYPE, *args, "--json"], env=env, capture_output=True, text=True, timeout=900,
                            check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"archetype {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
    return seconds, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--lab", default=f"mvb-{secrets.token_hex(2)}")
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    env = {**fleet_env(), "PREFECT_HOME": str(COORDINATOR_HOME)}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lab.yml"
        path.write_text(yaml.safe_dump(topology(args.lab), sort_keys=False))
        try:
            seconds, _ = cli(env, "deploy", str(path))
            print(f"deploy: {seconds:.1f} s", file=sys.stderr)
            moves = [("v1", "sim-2"), ("v1", "sim-1")] + ([] if args.skip_cold else [("r1", "sim-2"), ("r1", "sim-1")])
            for _ in range(args.reps):
                for node, host in moves:
                    load = os.getloadavg()[0]
                    wall, moved = cli(env, "migrate", args.lab, node, "--to", host)
                    row = {"node": node, "to": host, "mode": moved["mode"], "wall": round(wall, 2),
                           "flow": moved["seconds"], "migration": moved.get("migration_seconds"),
                           "downtime": moved.get("downtime_seconds"), "downtime_source": moved.get("downtime_source"),
                           "timings": moved.get("timings"), "load": round(load, 1)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            subprocess.run([ARCHETYPE, "destroy", args.lab], env=env, capture_output=True, text=True, timeout=600,
                           check=False)
    print("\n| move | command (wall) | flow | migration | down | load |\n|---|---|---|---|---|---|")
    for row in rows:
        down = "" if row["downtime"] is None else f"{row['downtime']:.2f} s ({row['downtime_source'] or 'flow'})"
        migration = "" if row["migration"] is None else f"{row['migration']:.1f} s"
        print(f"| {row['node']} -> {row['to']} ({row['mode']}) | {row['wall']:.1f} s | {row['flow']:.1f} s | "
              f"{migration} | {down} | {row['load']} |")


if __name__ == "__main__":
    main()
