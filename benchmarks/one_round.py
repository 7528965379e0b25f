"""One round of Archetype alone at N (no baseline): ``archetype deploy``/``destroy --json``
of the bench lab (benchmarks/topologies.py) as processes, timed, with the load before each;
the devices read back after the deploy (benchmarks/scale.py's check); what is left on the
host after the destroy (tests/support/leftovers.py: containers, docker networks, OVS ports,
veths and bridges by marker, management iptables rules, files).

Usage: flock /tmp/bench.lock .venv/bin/python benchmarks/one_round.py N LAB
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.scale import configured_on_devices, memory_per_node_mib  # noqa: E402
from benchmarks.topologies import frr_lab_yaml  # noqa: E402
from providers.network import mgmt  # noqa: E402
from tests.support.leftovers import leftovers  # noqa: E402

ARCHETYPE = str(REPO / ".venv" / "bin" / "archetype")


def timed(*argv: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    load = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run([ARCHETYPE, *argv, "--json"], capture_output=True, text=True, check=False)
    return time.monotonic() - started, load, done


def main(argv: list[str]) -> int:
    n, lab = int(argv[1]), argv[2]
    path = Path(tempfile.mkdtemp(prefix="archetype-one-round-")) / f"{lab}.yml"
    path.write_text(frr_lab_yaml(lab, n))
    seconds, load, done = timed("deploy", str(path))
    result = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    states = Counter(node.get("state") for node in result.get("nodes", []))
    print(f"deploy N={n}: {seconds:.1f} s [load {load:.0f}] exit {done.returncode} states {dict(states)} "
          f"errors {str(result.get('errors'))[:300]}", flush=True)
    print("read back:", configured_on_devices("archetype", lab, n), "MiB/node",
          memory_per_node_mib("archetype", lab), flush=True)
    seconds, load, done = timed("destroy", lab)
    print(f"destroy N={n}: {seconds:.1f} s [load {load:.0f}] exit {done.returncode} "
          f"{done.stderr[-300:] if done.returncode else ''}", flush=True)
    print("left on the host:", leftovers(lab) or "nothing", "| management bridge or rules:",
          lab in mgmt.bridge_labs(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
