"""Archetype as users run it, against the same lab done with the engines alone (``make bench``).

Lab: ``benchmarks/topologies.py``, an FRR ring with chords (N nodes, N + N/2 links) with a
BGP startup config per node; N = 10, 20, 40 (``--sizes``), each measurement ``--reps``
times (default 3), median reported with min-max, and the host's 1-minute load average
taken just before each one beside it (the machine may be shared: figures under load are
noisy, and the report says so).

Measured, every one as a process of its own, timed from its spawn to its exit:

- **baseline**: ``python benchmarks/baseline.py deploy FILE`` / ``destroy LAB`` (docker SDK,
  pyroute2, one ``ovs-vsctl`` transaction; no Archetype code);
- **archetype deploy FILE --json** / **archetype destroy LAB --json**, later calls (the
  local Prefect server already runs, as for every command after the first);
- **first call on a quiet host**: the local Prefect server stopped (``archetype server
  stop``) before an ``archetype deploy``; the deploy starts it;
- **REST**: a ``deploy-lab`` / ``destroy-lab`` run created by ``POST
  /deployments/{id}/create_flow_run`` (as the UI's Run button does) on a Prefect server with
  the project's deployments and a process worker, from the POST to the run seen Completed;
- ``archetype status --json`` (read-only: no Prefect).

Where the time goes: from the flows' own timings (in their JSON results: the flow's start,
the bring-up's start, each node's stages, the flow's end) against the process's spawn and
exit; for REST runs, from the run's start and end times on the server.

The CLI runs here with its own ``PREFECT_HOME`` and server port, so stopping "its" server
never touches anyone else's. Results: ``benchmarks/results/latest.json`` (every run) and
``latest.md`` (the tables), rewritten by each run. Every lab made here is removed at the end,
also after a failure or Ctrl-C.

Usage: .venv/bin/python benchmarks/run.py [--sizes 10,20,40] [--reps 3] [--skip-rest] [--skip-first]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.measure import host_facts  # noqa: E402
from benchmarks.topologies import frr_lab_yaml  # noqa: E402

PYTHON = sys.executable
ARCHETYPE = str(Path(sys.executable).parent / "archetype")
BASELINE = str(REPO / "benchmarks" / "baseline.py")
PREFIX = "bench"
TIMEOUT = 900
STAGES = ("created", "wired", "ready", "configured")


def say(text: str) -> None:
    print(text, flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def median_of(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


# ---------------------------------------------------------------- processes


class Processes:
    """The environment the commands run in, and every lab they made (removed at the end)."""

    def __init__(self, home: Path, api_url: str | None = None) -> None:
        self.home = home
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
        if api_url:  # a given server, as with PREFECT_API_URL set (no local server of its own)
            env["PREFECT_API_URL"] = api_url
        env.update(
            PYTHONPATH=str(REPO),
            PREFECT_HOME=str(home / "prefect"),  # the CLI's local server: this benchmark's own
            ARCHETYPE_SERVER_PORT=str(free_port()),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
        )
        self.env = env
        self.archetype_labs: set[str] = set()
        self.baseline_labs: set[str] = set()

    def run(self, argv: list[str], what: str) -> tuple[float, float, float, subprocess.CompletedProcess]:
        """(wall seconds, CPU seconds of the process and its children, spawn epoch, result)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        spawned, t0 = time.time(), time.monotonic()
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=TIMEOUT, cwd=self.home)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise RuntimeError(f"{what}: exit {done.returncode}: {done.stderr[-1500:]}")
        return wall, cpu, spawned, done

    def topology(self, lab: str, n: int) -> Path:
        path = self.home / f"{lab}.yml"
        path.write_text(frr_lab_yaml(lab, n))
        return path

    def stop_local_server(self) -> None:
        """No Prefect server for the CLI: the next command is a first call on a quiet host."""
        subprocess.run([ARCHETYPE, "server", "stop"], env=self.env, capture_output=True, timeout=120, check=False)

    def remove_labs(self) -> None:
        """Every lab still up (a failed run's): removed at once, so that its routers do not
        load the host under the next measurements."""
        from benchmarks import baseline

        for lab in sorted(self.archetype_labs):
            subprocess.run([ARCHETYPE, "destroy", lab, "--json"], env=self.env, capture_output=True, timeout=TIMEOUT,
                           check=False)
        self.archetype_labs.clear()
        for lab in sorted(self.baseline_labs):
            with contextlib.suppress(Exception):
                baseline.destroy(lab)
        self.baseline_labs.clear()

    def cleanup(self) -> None:
        self.remove_labs()
        self.stop_local_server()


def lab_id(tag: str) -> str:
    return f"{PREFIX}-{tag}-{secrets.token_hex(2)}"


def baseline_deploy(p: Processes, n: int) -> dict[str, Any]:
    lab = lab_id(f"b{n}")
    p.baseline_labs.add(lab)
    load_before = load()
    wall, cpu, spawned, done = p.run([PYTHON, BASELINE, "deploy", str(p.topology(lab, n))], f"baseline deploy {lab}")
    timing = json.loads(done.stdout)
    return {"lab": lab, "seconds": wall, "cpu": cpu, "load": load_before, "split": {
        "process start": timing["started_at"] - spawned,
        "all created": timing["created"], "ports on the bridge": timing["wired"], "all ready": timing["ready"],
    }}


def baseline_destroy(p: Processes, lab: str) -> dict[str, Any]:
    load_before = load()
    wall, cpu, spawned, done = p.run([PYTHON, BASELINE, "destroy", lab], f"baseline destroy {lab}")
    p.baseline_labs.discard(lab)
    timing = json.loads(done.stdout)
    return {"lab": lab, "seconds": wall, "cpu": cpu, "load": load_before,
            "split": {"process start": timing["started_at"] - spawned, "removal": timing["total"]}}


def archetype_deploy(p: Processes, n: int) -> dict[str, Any]:
    lab = lab_id(f"a{n}")
    p.archetype_labs.add(lab)
    load_before = load()
    wall, cpu, spawned, done = p.run([ARCHETYPE, "deploy", str(p.topology(lab, n)), "--json"], f"archetype deploy {lab}")
    result = json.loads(done.stdout)
    if result["errors"]:
        raise RuntimeError(f"archetype deploy {lab}: {result['errors']}")
    return {"lab": lab, "seconds": wall, "cpu": cpu, "load": load_before, "split": deploy_split(result, spawned, wall)}


def deploy_split(result: dict[str, Any], spawned: float, wall: float) -> dict[str, float]:
    """Seconds from the process's spawn: the flow's start (process start, imports, Prefect's
    client, server and flow run), the bring-up's start (validation, lock, VLANs, state),
    the last node at each stage, the flow's end, the process's exit."""
    timings = result.get("timings") or {}
    if not timings:
        return {}
    bring_up = timings["bring_up_started_at"] - spawned
    split = {"flow started": timings["flow_started_at"] - spawned, "bring-up started": bring_up}
    for stage in STAGES:
        reached = [node["stages"][stage] for node in result["nodes"] if stage in node.get("stages", {})]
        if reached:
            split[f"all {stage}"] = bring_up + max(reached)
    split["flow ended"] = timings["finished_at"] - spawned
    split["process exited"] = wall
    return split


def archetype_destroy(p: Processes, lab: str) -> dict[str, Any]:
    load_before = load()
    wall, cpu, spawned, done = p.run([ARCHETYPE, "destroy", lab, "--json"], f"archetype destroy {lab}")
    p.archetype_labs.discard(lab)
    timings = json.loads(done.stdout).get("timings") or {}
    split = {}
    if timings:
        split = {"flow started": timings["flow_started_at"] - spawned, "flow ended": timings["finished_at"] - spawned,
                 "process exited": wall}
    return {"lab": lab, "seconds": wall, "cpu": cpu, "load": load_before, "split": split}


def status_call(p: Processes) -> dict[str, Any]:
    load_before = load()
    wall, cpu, _spawned, _done = p.run([ARCHETYPE, "status", "--json"], "archetype status")
    return {"seconds": wall, "cpu": cpu, "load": load_before}


# ---------------------------------------------------------------- REST runs on a worker


class RestHost:
    """A Prefect server with the project's deployments (prefect.yaml) and a process worker."""

    def __init__(self, home: Path, query_seconds: float | None = None) -> None:
        from tests.support.prefect_server import PrefectServer, deploy_from_prefect_yaml, start_worker

        if query_seconds is not None:  # how often the worker asks for runs (Prefect's default: 10 s)
            os.environ["PREFECT_WORKER_QUERY_SECONDS"] = str(query_seconds)
        self.query_seconds = query_seconds
        (home / "rest").mkdir()
        self.server = PrefectServer.start(home / "rest")
        pool = f"bench-{secrets.token_hex(3)}"
        deploy_from_prefect_yaml(self.server, pool)
        self.worker = start_worker(self.server, pool)
        self.labs: set[str] = set()

    def run(self, flow: str, parameters: dict[str, Any], what: str) -> dict[str, Any]:
        load_before = load()
        posted, t0 = time.time(), time.monotonic()
        run_id = self.server.run_deployment(flow, parameters)
        while True:
            run = self.server.api("GET", f"/flow_runs/{run_id}")
            if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            if time.monotonic() - t0 > TIMEOUT:
                raise TimeoutError(f"{what}: run {run_id} not finished after {TIMEOUT} s")
            time.sleep(0.1)
        wall = time.monotonic() - t0
        if run["state_type"] != "COMPLETED":
            raise RuntimeError(f"{what}: run {run_id} ended {run['state_type']}: {run['state'].get('message')}")
        start, end = (datetime.fromisoformat(run[k]).timestamp() for k in ("start_time", "end_time"))
        return {"seconds": wall, "load": load_before, "split": {
            "flow started (worker poll, process start)": start - posted, "flow ended": end - posted,
            "seen Completed": wall}}

    def deploy(self, n: int) -> dict[str, Any]:
        lab = lab_id(f"r{n}")
        self.labs.add(lab)
        try:
            return {"lab": lab, **self.run("deploy-lab", {"topology": frr_lab_yaml(lab, n)}, f"REST deploy {lab}")}
        except Exception:
            with contextlib.suppress(Exception):
                self.destroy(lab)  # its routers must not load the next measurements
            raise

    def destroy(self, lab: str) -> dict[str, Any]:
        measured = self.run("destroy-lab", {"lab": lab}, f"REST destroy {lab}")
        self.labs.discard(lab)
        return {"lab": lab, **measured}

    def close(self) -> None:
        from tests.support.prefect_server import stop_process

        for lab in sorted(self.labs):
            with contextlib.suppress(Exception):
                self.destroy(lab)
        stop_process(self.worker)
        self.server.stop()


# ---------------------------------------------------------------- the matrix


_saved: list[Callable[[], None]] = []  # writes the results so far (a run stopped halfway keeps them)
_after_failure: list[Callable[[], None]] = []  # removes what a failed run left up


def measure(runs: list[dict[str, Any]], kind: str, n: int | None, rep: int, call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        row = call()
    except Exception as err:  # noqa: BLE001 - noted in the results; the rest goes on
        say(f"  {kind} N={n} rep {rep}: FAILED: {str(err)[:300]}")
        runs.append({"kind": kind, "n": n, "rep": rep, "error": str(err)[:2000], "load": load()})
        for step in (*_after_failure, *_saved):
            step()
        return None
    row = {"kind": kind, "n": n, "rep": rep, **row}
    runs.append(row)
    split = ", ".join(f"{k} {v:.2f}" for k, v in row.get("split", {}).items())
    say(f"  {kind:<22} N={n!s:<3} {row['seconds']:6.2f} s  load {row['load']:5.2f}  [{split}]")
    for save in _saved:
        save()
    return row


def bench(sizes: list[int], reps: int, rest: bool, first: bool, p: Processes, runs: list[dict[str, Any]],
          *, cli: bool = True, worker_query_seconds: float | None = None) -> None:
    """Size by size (the first size's figures are complete before the next size starts):
    baseline and command line alternating, the first calls, then the REST runs."""
    host = None
    try:
        if cli:
            warm_up_cli(p, runs, reps)
        if rest:
            say("REST: a Prefect server with the deployments of prefect.yaml and a process worker"
                + (f" asking for runs every {worker_query_seconds} s" if worker_query_seconds is not None else ""))
            host = RestHost(p.home, worker_query_seconds)
            warm = host.deploy(2)
            host.destroy(warm["lab"])
        for n in sizes:
            if cli:
                bench_cli(n, reps, p, runs)
                if first and n == (20 if 20 in sizes else sizes[0]):
                    bench_first_call(n, reps, p, runs)
            if host is not None:
                bench_rest(n, reps, host, runs)
    finally:
        if host is not None:
            host.close()


def warm_up_cli(p: Processes, runs: list[dict[str, Any]], reps: int) -> None:
    say("warm-up (not counted): starts the CLI's local Prefect server, fills the page cache")
    warm = archetype_deploy(p, 2)
    archetype_destroy(p, warm["lab"])
    base = baseline_deploy(p, 2)
    baseline_destroy(p, base["lab"])
    for rep in range(1, reps + 1):
        measure(runs, "status", None, rep, lambda: status_call(p))


def bench_cli(n: int, reps: int, p: Processes, runs: list[dict[str, Any]]) -> None:
    for rep in range(1, reps + 1):
        say(f"N={n}, rep {rep}/{reps}")
        order = ("baseline", "archetype") if rep % 2 else ("archetype", "baseline")
        for side in order:
            if side == "baseline":
                made = measure(runs, "baseline deploy", n, rep, lambda: baseline_deploy(p, n))
                if made:
                    measure(runs, "baseline destroy", n, rep, lambda made=made: baseline_destroy(p, made["lab"]))
            else:
                made = measure(runs, "archetype deploy", n, rep, lambda: archetype_deploy(p, n))
                if made:
                    measure(runs, "archetype destroy", n, rep, lambda made=made: archetype_destroy(p, made["lab"]))


def bench_first_call(n: int, reps: int, p: Processes, runs: list[dict[str, Any]]) -> None:
    for rep in range(1, reps + 1):
        say(f"first call on a quiet host (local Prefect server stopped), N={n}, rep {rep}/{reps}")
        p.stop_local_server()
        time.sleep(2)  # the server's processes gone
        made = measure(runs, "archetype deploy, first", n, rep, lambda: archetype_deploy(p, n))
        if made:  # the destroy after it is a later call, counted with the others
            measure(runs, "archetype destroy", n, rep + reps, lambda made=made: archetype_destroy(p, made["lab"]))


def bench_rest(n: int, reps: int, host: RestHost, runs: list[dict[str, Any]]) -> None:
    for rep in range(1, reps + 1):
        say(f"REST N={n}, rep {rep}/{reps}")
        made = measure(runs, "REST deploy", n, rep, lambda: host.deploy(n))
        if made:
            measure(runs, "REST destroy", n, rep, lambda made=made: host.destroy(made["lab"]))


def summarize(runs: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """kind -> N -> {seconds: median/min/max, load: [..], split: medians}."""
    summary: dict[str, Any] = {}
    for row in runs:
        if "error" in row:
            continue
        kind = summary.setdefault(row["kind"], {})
        entry = kind.setdefault(str(row["n"]), {"seconds": [], "load": [], "cpu": [], "split": {}})
        entry["seconds"].append(row["seconds"])
        entry["load"].append(row["load"])
        if "cpu" in row:
            entry["cpu"].append(row["cpu"])
        for key, value in row.get("split", {}).items():
            entry["split"].setdefault(key, []).append(value)
    for kind in summary.values():
        for entry in kind.values():
            entry["seconds"] = median_of(entry["seconds"])
            entry["cpu"] = median_of(entry["cpu"])
            entry["split"] = {k: round(statistics.median(v), 2) for k, v in entry["split"].items()}
    ratios: dict[str, Any] = {}
    for n in map(str, sizes):
        row = {}
        for what in ("deploy", "destroy"):
            ours, theirs = summary.get(f"archetype {what}", {}).get(n), summary.get(f"baseline {what}", {}).get(n)
            if ours and theirs:
                row[what] = round(ours["seconds"]["median"] / theirs["seconds"]["median"], 2)
            rest = summary.get(f"REST {what}", {}).get(n)
            if rest and theirs:
                row[f"REST {what} - baseline"] = round(rest["seconds"]["median"] - theirs["seconds"]["median"], 2)
        ratios[n] = row
    return {"by_kind": summary, "ratios": ratios}


def render(results: dict[str, Any]) -> str:
    from benchmarks.report import render_markdown

    return render_markdown(results)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,20,40", help="lab sizes (nodes), comma-separated")
    parser.add_argument("--reps", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--skip-rest", action="store_true", help="no REST-created runs on a worker")
    parser.add_argument("--skip-first", action="store_true", help="no first call on a quiet host")
    parser.add_argument("--skip-cli", action="store_true", help="no command-line runs (REST only)")
    parser.add_argument("--worker-query-seconds", type=float, default=None,
                        help="PREFECT_WORKER_QUERY_SECONDS of the REST worker (default: Prefect's, 10 s)")
    parser.add_argument("--api-url", help="run the CLI against this Prefect API (PREFECT_API_URL) instead of "
                        "its own local server; implies --skip-first")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    started = time.monotonic()
    results: dict[str, Any] = {"host": host_facts(), "reps": args.reps, "sizes": sizes, "runs": [],
                               "worker_query_seconds": args.worker_query_seconds}
    home = Path(tempfile.mkdtemp(prefix="archetype-bench-"))
    processes = Processes(home, args.api_url)
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        results["host"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        results["seconds"] = round(time.monotonic() - started, 1)
        results.update(summarize(results["runs"], sizes))
        (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "latest.md").write_text(render(results))

    _saved.append(save)
    _after_failure.append(processes.remove_labs)
    try:
        with interruptible():
            bench(sizes, args.reps, not args.skip_rest, not (args.skip_first or args.api_url), processes, results["runs"],
                  cli=not args.skip_cli, worker_query_seconds=args.worker_query_seconds)
    finally:
        processes.cleanup()
    save()
    say("")
    say(render(results))
    say(f"written {args.out / 'latest.json'} and {args.out / 'latest.md'} ({results['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
