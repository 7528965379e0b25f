"""``make bench-scale``: how the cost grows with the lab, N = 50, 100, 200 (``--sizes``).

The same lab and the same measurements as ``make bench`` (``benchmarks/run.py``: every
command a process, timed from its spawn to its exit), one round per N, against the baseline
of ``benchmarks/baseline_scale.py``: the engines alone with nothing of ours in the nodes
either (Debian's FRR start, readiness = the running config holds the node's BGP lines).
Besides the times: the cost per node (seconds / N) and the memory per node (the lab's
containers' cgroup memory, read right after the deploy, / N).

Results: ``benchmarks/results/scale.json`` and ``scale.md`` (the "cost growth" table).
N=200 saturates a 2-core host for several minutes: run it on a host nobody else uses.

Usage: .venv/bin/python benchmarks/scale.py [--sizes 50,100,200] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import run  # noqa: E402
from benchmarks.measure import host_facts  # noqa: E402

run.BASELINE = str(REPO / "benchmarks" / "baseline_scale.py")  # the baseline with nothing of ours


CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")  # cgroup v1, cgroupfs driver (HOST-FACTS)
LAB_LABELS = {"baseline": "bench.raw-lab", "archetype": "archetype.lab_id"}


def memory_per_node_mib(side: str, lab: str) -> float | None:
    """The lab's containers' memory (their cgroups' usage, page cache included), per node:
    the host's free memory moves with everything else a shared host runs."""
    import docker

    client = docker.APIClient(timeout=60)
    try:
        ids = [c["Id"] for c in client.containers(filters={"label": f"{LAB_LABELS[side]}={lab}"})]
    finally:
        client.close()
    usages = []
    for container_id in ids:
        try:
            usages.append(int((CGROUP_MEMORY / container_id / "memory.usage_in_bytes").read_text()))
        except OSError:
            continue
    return round(sum(usages) / len(usages) / 2**20, 1) if usages else None


def configured_on_devices(side: str, lab: str, n: int) -> dict[str, Any]:
    """Read back from every node, once its deploy has returned: its running config
    (``vtysh -c 'show running-config'``) holds its frr.conf's BGP lines (``router bgp``, each
    ``neighbor``, ``redistribute``: ``baseline_scale.wanted_lines``). Neither side's own word
    for it: the devices' answer, 4 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import docker

    from benchmarks.baseline_scale import wanted_lines
    from benchmarks.topologies import frr_lab

    configs = {name: spec["startup-config"] for name, spec in frr_lab(lab, n)["topology"]["nodes"].items()}
    api = docker.APIClient(timeout=120)
    rows = api.containers(filters={"label": f"{LAB_LABELS[side]}={lab}"})
    by_node = {row["Names"][0].lstrip("/").rsplit("-", 1)[-1]: row["Id"] for row in rows}

    def configured(node: str) -> bool:
        if node not in by_node:
            return False
        exec_id = api.exec_create(by_node[node], ["vtysh", "-c", "show running-config"])["Id"]
        running = {line.strip() for line in api.exec_start(exec_id).decode(errors="replace").splitlines()}
        return api.exec_inspect(exec_id)["ExitCode"] == 0 and wanted_lines(configs[node]) <= running

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = dict(zip(configs, pool.map(configured, configs), strict=True))
    finally:
        api.close()
    missing = sorted(node for node, ok in found.items() if not ok)
    return {"configured": len(found) - len(missing), "nodes": len(found), "missing": missing[:20]}


def one_size(n: int, p: run.Processes, runs: list[dict[str, Any]]) -> None:
    """Baseline then Archetype, each deployed, its memory read and every node's config
    read back from the device, then destroyed."""
    run.say(f"N={n}")
    for side, deploy, destroy in (("baseline", run.baseline_deploy, run.baseline_destroy),
                                  ("archetype", run.archetype_deploy, run.archetype_destroy)):
        made = run.measure(runs, f"{side} deploy", n, 1, lambda deploy=deploy: deploy(p, n))
        if made:
            made["memory_per_node_mib"] = memory_per_node_mib(side, made["lab"])
            made["devices"] = configured_on_devices(side, made["lab"], n)
            run.say(f"{side} N={n}: {made['devices']['configured']}/{n} configured, read back from the devices")
            run.measure(runs, f"{side} destroy", n, 1, lambda destroy=destroy, made=made: destroy(p, made["lab"]))
        time.sleep(10)  # the host settles (removed containers' memory, dockerd's cleanup)


def render(results: dict[str, Any]) -> str:
    rows = {(r["kind"], r["n"]): r for r in results["runs"] if "error" not in r}
    lines = [
        "# Cost growth (`make bench-scale`, benchmarks/scale.py)", "",
        f"{results['started']} on {results['host']['host']} ({results['host']['cpus']} CPUs, "
        f"{results['host']['memory_gib']} GiB, docker {results['host']['docker']}); one round per N, every command "
        "a process; baseline: benchmarks/baseline_scale.py (engines only, Debian's FRR start, "
        "8 workers). Load (1 min) before each deploy in brackets. configured: nodes whose running config holds "
        "their BGP lines, read back from every device after the deploy returned.", "",
        "| N | baseline deploy | s/node | MiB/node | configured | `archetype deploy` | s/node | MiB/node | configured "
        "| ratio | baseline destroy | `archetype destroy` | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in results["sizes"]:
        bd, ad = rows.get(("baseline deploy", n)), rows.get(("archetype deploy", n))
        bx, ax = rows.get(("baseline destroy", n)), rows.get(("archetype destroy", n))

        def cell(row: dict[str, Any] | None, n: int = n) -> list[str]:
            if not row:
                return ["failed", "-", "-", "-"]
            devices = row.get("devices") or {}
            return [f"{row['seconds']:.1f} s [{row['load']:.0f}]", f"{row['seconds'] / n:.3f}",
                    f"{row.get('memory_per_node_mib', '-')}", f"{devices.get('configured', '-')}/{n}"]

        ratio = f"{ad['seconds'] / bd['seconds']:.2f}x" if ad and bd else "-"
        destroy_ratio = f"{ax['seconds'] / bx['seconds']:.2f}x" if ax and bx else "-"
        lines.append("| " + " | ".join([str(n), *cell(bd), *cell(ad), ratio,
                                        f"{bx['seconds']:.1f} s" if bx else "failed",
                                        f"{ax['seconds']:.1f} s" if ax else "failed", destroy_ratio]) + " |")
    failed = [r for r in results["runs"] if "error" in r]
    if failed:
        lines += ["", "Failed:", *(f"- {r['kind']} N={r['n']}: {r['error'][-400:]}" for r in failed)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,100,200")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results: dict[str, Any] = {"host": host_facts(), "sizes": sizes, "runs": [],
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    home = Path(tempfile.mkdtemp(prefix="archetype-scale-"))
    processes = run.Processes(home)
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        (args.out / "scale.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "scale.md").write_text(render(results))

    run._saved.append(save)
    run._after_failure.append(processes.remove_labs)
    try:
        with run.interruptible():
            run.warm_up_cli(processes, results["runs"], 1)
            for n in sizes:
                one_size(n, processes, results["runs"])
    finally:
        processes.cleanup()
        save()
        shutil.rmtree(home, ignore_errors=True)
    run.say(f"written {args.out / 'scale.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
