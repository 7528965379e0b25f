"""Restore from a snapshot against a fresh deploy of the same lab, through the CLI as a user
runs it (the local server and executor on this host).

    python benchmarks/snapshot.py [--reps 3] [--vms 1] [--json FILE]

The lab: r1 -- r2 (FRR, eBGP) -- v1..vN (mini-ios VMs, each linked to r2). Per rep:
deploy (fresh) -> the first VM's first CLI answer -> snapshot -> destroy -> restore -> the
first VM's first CLI answer -> destroy. Prints a markdown table of the medians.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ARCHETYPE = str(Path(sys.executable).parent / "archetype")

R1 = "interface eth1\n ip address 10.1.12.1/30\nrouter bgp 65001\n no bgp ebgp-requires-policy\n neighbor 10.1.12.2 remote-as 65002\n"
R2 = "interface eth1\n ip address 10.1.12.2/30\nrouter bgp 65002\n no bgp ebgp-requires-policy\n neighbor 10.1.12.1 remote-as 65001\n"


def topology(lab_id: str, vms: int) -> str:
    nodes = {"r1": {"kind": "frr", "startup-config": R1}, "r2": {"kind": "frr", "startup-config": R2}}
    links = [{"endpoints": ["r1:eth1", "r2:eth1"]}]
    for i in range(1, vms + 1):
        nodes[f"v{i}"] = {"kind": "mini-ios"}
        links.append({"endpoints": [f"r2:eth{i + 1}", f"v{i}:GigabitEthernet0/1"]})
    return yaml.safe_dump({"name": lab_id, "topology": {"nodes": nodes, "links": links}}, sort_keys=False)


def run(*args: str) -> float:
    started = time.monotonic()
    result = subprocess.run([ARCHETYPE, *args], capture_output=True, text=True, timeout=1200, check=False)
    if result.returncode != 0:
        raise SystemExit(f"archetype {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return time.monotonic() - started


def one_rep(lab_id: str, file: Path) -> dict[str, float]:
    figures = {"deploy_s": run("deploy", str(file))}
    figures["deploy_first_answer_s"] = run("exec", lab_id, "v1", "--", "show version")
    figures["snapshot_s"] = run("snapshot", lab_id, "--name", "bench")
    figures["destroy_s"] = run("destroy", lab_id)
    figures["restore_s"] = run("restore", lab_id, "bench")
    figures["restore_first_answer_s"] = run("exec", lab_id, "v1", "--", "show version")
    size = json.loads(subprocess.run([ARCHETYPE, "snapshots", lab_id, "--json"], capture_output=True, text=True,
                                     check=True).stdout)["snapshots"][0]["size_bytes"]
    figures["snapshot_mib"] = size / 2**20
    run("destroy", lab_id)
    run("snapshot", lab_id, "--delete", "bench")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--vms", type=int, default=1)
    parser.add_argument("--json", type=Path, help="Also write the figures here")
    args = parser.parse_args()
    lab_id = f"bsnap-{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "lab.yml"
        file.write_text(topology(lab_id, args.vms))
        reps = []
        try:
            for rep in range(args.reps):
                reps.append(one_rep(lab_id, file))
                print(f"rep {rep + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in reps[-1].items()), file=sys.stderr)
        finally:
            subprocess.run([ARCHETYPE, "destroy", lab_id], capture_output=True, check=False)
            subprocess.run([ARCHETYPE, "snapshot", lab_id, "--delete", "bench"], capture_output=True, check=False)
    medians = {key: statistics.median(r[key] for r in reps) for key in reps[0]}
    print(f"Snapshot restore vs fresh deploy: 2 FRR + {args.vms} mini-ios VM(s), {args.reps} reps, medians (s)\n")
    print("| deploy | VM answers after deploy | snapshot | restore | VM answers after restore | snapshot size |")
    print("|---|---|---|---|---|---|")
    print(f"| {medians['deploy_s']:.1f} | {medians['deploy_first_answer_s']:.1f} | {medians['snapshot_s']:.1f} | "
          f"{medians['restore_s']:.1f} | {medians['restore_first_answer_s']:.1f} | {medians['snapshot_mib']:.0f} MiB |")
    print(f"\nrestore / deploy = {medians['restore_s'] / medians['deploy_s']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"vms": args.vms, "reps": reps, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
