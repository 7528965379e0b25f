"""The floors under the speed targets: what Prefect costs on this host before any lab work,
measured with a flow that does nothing (``make bench-floor``).

- **server start**: ``prefect server start`` to its first answer, on an existing database
  (what the first flow-backed command on a quiet host waits for);
- **command floor**: a process that imports Prefect, runs one no-op flow (heartbeat off, as
  the CLI runs its flows) and exits: the least any flow-backed command can take;
- **flow-run child**: a new Python importing Prefect's engine and the deploy flow's modules
  (what a served runner's child pays per run before the flow starts);
- **served run**: ``POST create_flow_run`` to Completed for the no-op flow on a ``serve()``
  runner asking every ``--poll`` seconds, two ways: *spawn* (Prefect's default: a new Python
  per run, as ``archetype serve`` and the fleet workers run today) and *forkserver*
  (children forked from a process that imported Prefect and the flow beforehand: the lever
  of a warm runner, measured here only, not in the product);
- **heartbeat**: the no-op flow in-process with Prefect's flow-run heartbeat on (worker
  runs) and off (CLI runs).

It runs its own Prefect server on a free loopback port with its own ``PREFECT_HOME``; it
touches no docker, libvirt or OVS. Results: ``benchmarks/results/floor.{md,json}``.

Usage: .venv/bin/python benchmarks/floor.py [--reps 5] [--poll 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from prefect import flow  # noqa: E402

from benchmarks.measure import host_facts  # noqa: E402
from benchmarks.run import free_port, median_of  # noqa: E402

PYTHON = sys.executable
PREFECT = str(Path(sys.executable).parent / "prefect")
FLOW_NAME = "floor-noop"


@flow(name=FLOW_NAME, persist_result=False)
def noop() -> None:
    return None


# ------------------------------------------------------------- child processes


def serve_noop(mode: str, poll: float) -> None:
    """A ``serve()`` runner for the no-op flow, deployment named after ``mode``."""
    if mode == "forkserver":
        _fork_flow_runs_from_a_warm_process()
    from prefect import serve

    from benchmarks import floor  # the flow by module reference, importable in children

    serve(floor.noop.to_deployment(name=mode), query_seconds=poll)


class _ForkserverMultiprocessing:
    """Stands in for ``multiprocessing`` inside ``prefect.flow_engine``: the flow-run
    children come from a forkserver that imported Prefect and the flow once."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self._context = context

    def get_context(self, method: str | None = None) -> multiprocessing.context.BaseContext:
        return self._context

    def __getattr__(self, name: str):  # noqa: ANN204 - everything else is the real module
        return getattr(multiprocessing, name)


def _fork_flow_runs_from_a_warm_process() -> None:
    import prefect.flow_engine

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["prefect.flow_engine", "benchmarks.floor"])
    prefect.flow_engine.multiprocessing = _ForkserverMultiprocessing(context)


def command_floor(spawned: float) -> None:
    """One no-op flow as a command runs it; prints when the flow began (seconds after the
    parent spawned this process: start and imports) and how long the flow run took."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    begin = time.time()
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        noop()
    print(json.dumps({"import": begin - spawned, "flow": time.time() - begin}))


# ------------------------------------------------------------- measurements


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def wait_until_answers(url: str, timeout: float = 120) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return time.monotonic() - t0
        time.sleep(0.05)
    raise RuntimeError(f"no Prefect server answered at {url} within {timeout} s")


def timed_process(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=REPO, check=True)
    return time.monotonic() - t0, done.stdout


def served_round_trip(api: str, deployment: str, reps: int) -> list[float]:
    """POST create_flow_run to Completed, polled every 0.05 s, ``reps`` times."""
    import httpx

    client = httpx.Client(base_url=api, timeout=30)
    deadline = time.monotonic() + 60
    while True:  # the runner registers its deployment once it has started
        answer = client.get(f"/deployments/name/{FLOW_NAME}/{deployment}")
        if answer.status_code == 200:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"deployment {FLOW_NAME}/{deployment} never appeared")
        time.sleep(0.2)
    deployment_id = answer.json()["id"]
    times = []
    for _ in range(reps):
        time.sleep(0.5)
        t0 = time.monotonic()
        run = client.post(f"/deployments/{deployment_id}/create_flow_run", json={}).json()
        while (state := client.get(f"/flow_runs/{run['id']}").json()["state_type"]) not in ("COMPLETED", "FAILED", "CRASHED"):
            time.sleep(0.05)
        if state != "COMPLETED":
            raise RuntimeError(f"the no-op run ended {state}")
        times.append(time.monotonic() - t0)
    return times


def heartbeat_cost(api: str, reps: int) -> dict[str, list[float]]:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_LOGGING_TO_API_ENABLED,
        temporary_settings,
    )

    result: dict[str, list[float]] = {"on": [], "off": []}
    # this server, never a temporary one; no logs left to send to it once it has stopped
    with temporary_settings({PREFECT_API_URL: api, PREFECT_LOGGING_TO_API_ENABLED: False}):
        noop()  # warm: client, flow registration
        for _ in range(reps):
            for name, updates in (("on", {}), ("off", {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})):
                with temporary_settings(updates):
                    t0 = time.monotonic()
                    noop()
                    result[name].append(time.monotonic() - t0)
    return result


def measure(reps: int, poll: float, work: Path) -> dict:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(work / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PYTHONPATH=str(REPO))
    server_argv = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    figures: dict = {"reps": reps, "poll_seconds": poll}
    with started(server_argv, env, work / "server.log"):  # makes the database
        wait_until_answers(api)
    starts = []
    for _ in range(reps):
        with started(server_argv, env, work / "server.log"):
            starts.append(wait_until_answers(api))
    figures["server_start"] = median_of(starts)

    client_env = {**env, "PREFECT_API_URL": api}
    with started(server_argv, env, work / "server.log"):
        wait_until_answers(api)
        inside = []
        walls = []
        for _ in range(reps):
            wall, out = timed_process([PYTHON, __file__, "command-floor", "--spawned", repr(time.time())], client_env)
            walls.append(wall)
            inside.append(json.loads(out.strip().splitlines()[-1]))
        figures["command_floor"] = {
            "process": median_of(walls),
            "import": median_of([i["import"] for i in inside]),
            "flow": median_of([i["flow"] for i in inside]),
        }
        child = [timed_process([PYTHON, "-c", "import prefect.flow_engine, flows.deploy_lab"], client_env)[0]
                 for _ in range(reps)]
        figures["flow_run_child_import"] = median_of(child)
        for mode in ("spawn", "forkserver"):
            with started([PYTHON, __file__, "serve", mode, "--poll", str(poll)], client_env, work / f"runner-{mode}.log"):
                figures[f"served_{mode}"] = median_of(served_round_trip(api, mode, reps))
        figures["heartbeat"] = {name: median_of(values) for name, values in heartbeat_cost(api, reps).items()}
    return figures


def report(figures: dict, host: dict) -> str:
    def fmt(s: dict) -> str:
        return f"{s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f})"

    floor = figures["command_floor"]
    return "\n".join([
        "# The floors under the speed targets (`benchmarks/floor.py`)",
        "",
        f"{host['when']} on {host['machine']}; load (1 min) {host['load_before']} before, "
        f"{host['load_after']} after. {figures['reps']} runs each, median (min-max). A no-op flow throughout.",
        "",
        "| what | time |",
        "|---|---|",
        f"| `prefect server start` to its first answer (existing database) | {fmt(figures['server_start'])} |",
        f"| a command running one no-op flow, spawn to exit | {fmt(floor['process'])} |",
        f"| ... of which starting and importing Prefect | {fmt(floor['import'])} |",
        f"| ... of which the flow run (create, states, end; heartbeat off) | {fmt(floor['flow'])} |",
        f"| a flow-run child importing Prefect's engine and the deploy flow | {fmt(figures['flow_run_child_import'])} |",
        f"| served run, POST to Completed, spawn children, poll {figures['poll_seconds']} s | {fmt(figures['served_spawn'])} |",
        f"| served run, POST to Completed, forkserver children, poll {figures['poll_seconds']} s | {fmt(figures['served_forkserver'])} |",
        f"| no-op flow in-process, heartbeat on (worker runs) | {fmt(figures['heartbeat']['on'])} |",
        f"| no-op flow in-process, heartbeat off (CLI runs) | {fmt(figures['heartbeat']['off'])} |",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "serve", "command-floor"])
    parser.add_argument("runner", nargs="?", choices=["spawn", "forkserver"], help="serve mode: how runs start")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--poll", type=float, default=2.0, help="the served runner's query interval (s)")
    parser.add_argument("--spawned", type=float, help="command-floor mode: the parent's spawn time (epoch)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if args.mode == "serve":
        serve_noop(args.runner, args.poll)
        return
    if args.mode == "command-floor":
        command_floor(args.spawned)
        return
    facts = host_facts()
    host = {"when": facts["when"], "machine": f"{facts['host']}: {facts['cpus']} CPUs",
            "load_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="archetype-floor-") as work:
        figures = measure(args.reps, args.poll, Path(work))
    host["load_after"] = round(os.getloadavg()[0], 2)
    text = report(figures, host)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "floor.json").write_text(json.dumps({"host": host, **figures}, indent=2) + "\n")
    (args.out / "floor.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
