"""Archetype benchmarks (``make bench``): figures side by side with a no-Prefect baseline.

Measured in one run, on this host, with a real Prefect server started for the purpose:

1. deploy of an N-node FRR ring-with-chords lab (N = 10, 20, 40), start -> every node ready:
   the ``deploy-lab`` flow called in-process (``PREFECT_API_URL`` -> the server) against
   ``benchmarks/baseline.py`` (docker SDK + ``providers.network``, full parallelism, no Prefect);
2. destroy of the same labs (``destroy-lab`` flow against the baseline's destroy);
3. discovery with 200 nodes present (180 archetype/linux containers, a third running, and
   20 defined-but-stopped libvirt domains carrying our metadata): ``discover_all()``
   in-process, and ``archetype status --json`` as a process;
4. VM readiness delay: a mini-ios VM booted by ``LibvirtProvider``; the delay between
   "Press RETURN to get started" appearing in its serial log (watched by a 1 ms poll loop
   in a thread) and ``wait_ready`` returning;
5. Prefect's overhead per node: (flow time - baseline time) / N, and where it sits (before
   the first node is created, between a node's stages, after the last one), from the
   provider calls' own timestamps.

Every measurement is repeated (``--reps``, default 3; archetype and baseline alternate
their order) and the median reported, with min-max: other labs on the host add noise, so
each run also records how busy the host was just before it, and the CPU used by this
process, the Prefect server and the whole host. Results: ``benchmarks/results/latest.json``
and ``latest.md`` (analysis: docs/performance.md). Every lab made here is removed at the
end, also after a failure, Ctrl-C or SIGTERM; a run broken by a daemon restart (fault tests
share the host) is noted and made again.

Usage: .venv/bin/python benchmarks/run.py [--sizes 10,20,40] [--reps 3] [--skip-discovery]
       [--skip-vm] [--skip-deploy] [--heartbeat] [--nice-server N] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from benchmarks import baseline  # noqa: E402
from benchmarks.measure import (  # noqa: E402
    CPU,
    RETRIES,
    Probe,
    count_api_retries,
    host_busy_now,
    host_facts,
    summary,
)
from benchmarks.report import (  # noqa: E402
    TARGET_DISCOVERY_S,
    TARGET_RATIO_N20,
    TARGET_VM_DELAY_S,
    VM_READY_LINE,
    deploys_of,
    render_markdown,
    render_table,
)
from benchmarks.topologies import frr_lab_yaml  # noqa: E402

PREFIX = "bench"  # lab ids: bench-{a|b|d|v}{n}-{hex}: ours alone (random suffix)


# ---------------------------------------------------------------- bookkeeping


def say(text: str) -> None:
    print(text, flush=True)


def lab_id(tag: str) -> str:
    return f"{PREFIX}-{tag}-{secrets.token_hex(2)}"


class Labs:
    """Every lab this run made, removed in ``cleanup`` whatever happened."""

    def __init__(self) -> None:
        self.container_labs: set[str] = set()
        self.vm_labs: set[str] = set()

    def cleanup(self) -> list[str]:
        errors: list[str] = []
        if not (self.container_labs or self.vm_labs):
            return errors
        from providers import labs, network

        for lab in sorted(self.container_labs | self.vm_labs):
            errors += labs.destroy_lab(lab).errors
        for lab in sorted(self.container_labs | self.vm_labs):
            with contextlib.suppress(Exception):
                errors += network.release_lab(lab).errors
        return errors


# ---------------------------------------------------------------- the Prefect side


@contextlib.contextmanager
def prefect_server(keep_logs: Path | None, nice: int = 0) -> Iterator[str]:
    from tests.support.prefect_server import PrefectServer

    home = Path(tempfile.mkdtemp(prefix="archetype-bench-prefect-"))
    server = PrefectServer.start(home)
    CPU.server_pid = server.process.pid
    if nice:
        for pid in CPU.server_pids():
            for thread in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, int(thread), nice)
    try:
        yield server.url
    finally:
        drain_prefect_workers()  # logs and events still queued go now, not to a dead server at exit
        CPU.server_pid = None
        server.stop()
        if keep_logs is not None:
            with contextlib.suppress(OSError):
                shutil.copy(home / "server.log", keep_logs)
        shutil.rmtree(home, ignore_errors=True)


def drain_prefect_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=15)


def quiet_prefect_console() -> None:
    """Prefect prints every task's log line (and 3.9's per-task "timeout in a worker
    thread" warning) on the console: keep the console to errors. Logs still go to the
    API at their normal level, so the flows do the same work as for a user."""
    import prefect.logging.configuration  # noqa: F401 - makes sure Prefect's logging is set up

    for name in ("", "prefect", "uvicorn", "fastapi"):
        for handler in logging.getLogger(name).handlers:
            if handler.__class__.__name__ == "PrefectConsoleHandler":
                handler.setLevel(logging.ERROR)


# ---------------------------------------------------------------- measurements


@dataclass
class DeployRun:
    deploy: float
    destroy: float
    detail: dict[str, float] = field(default_factory=dict)


STALE_ENDPOINTS = "active endpoints"  # dockerd's stale endpoint count (moby#42119): see docs


def run_archetype(n: int, labs: Labs, probe: Probe, notes: list[str]) -> DeployRun:
    from flows.deploy_lab import deploy_lab
    from flows.destroy_lab import destroy_lab

    quiet_prefect_console()  # (again: Prefect may have set its logging up anew)
    lab = lab_id(f"a{n}")
    labs.container_labs.add(lab)
    text = frr_lab_yaml(lab, n)
    retries = RETRIES.count
    cpu = CPU.sample()
    t0 = time.monotonic()
    result = deploy_lab(text)
    t_deploy = time.monotonic()
    detail = CPU.since(cpu)
    detail["api_retries"] = RETRIES.count - retries
    not_ready = [node["name"] for node in result["nodes"] if node["state"] != "ready"]
    if not_ready or result.get("errors"):
        raise RuntimeError(f"archetype deploy of {lab}: not ready: {not_ready}, errors {result.get('errors')}")
    detail.update(probe.breakdown(lab, t0, t_deploy))
    t1 = time.monotonic()
    removed = destroy_lab(lab, return_state=True).result(raise_on_failure=False)  # failed: its report
    if isinstance(removed, BaseException):
        raise removed
    t_destroy = time.monotonic() - t1
    errors = removed.get("errors") or []
    if any(STALE_ENDPOINTS not in e for e in errors):
        raise RuntimeError(f"archetype destroy of {lab}: {errors}")
    if errors:
        notes.append(f"archetype destroy of {lab}: {errors[0][:200]}")
    else:
        labs.container_labs.discard(lab)
    return DeployRun(t_deploy - t0, t_destroy, detail)


@contextlib.contextmanager
def held(lab_ids: list[str]) -> Iterator[None]:
    """Hold the labs' locks (outside any timing): orphan cleanup, which other people's
    tests run on this host, leaves a lab whose lock is held alone."""
    from lab.locks import lab_lock

    with contextlib.ExitStack() as stack:
        for lab in lab_ids:
            stack.enter_context(lab_lock(lab, timeout=10))
        yield


def run_baseline(n: int, labs: Labs, dc: Any, notes: list[str]) -> DeployRun:
    lab = lab_id(f"b{n}")
    labs.container_labs.add(lab)
    with held([lab]):
        cpu = CPU.sample()
        timing = baseline.deploy(frr_lab_yaml(lab, n), dc)
        detail = CPU.since(cpu)
        detail.update(setup=timing.setup, all_created=timing.created, all_wired=timing.wired, all_ready=timing.ready)
        t_destroy, leftover = baseline.destroy(lab, dc, tolerate_stale_network=True)
    if leftover:
        notes.append(f"baseline destroy of {lab}: {leftover[:200]}")
    else:
        labs.container_labs.discard(lab)
    return DeployRun(timing.total, t_destroy, detail)


def bench_deploys(sizes: list[int], reps: int, labs: Labs) -> dict[str, Any]:
    probe = Probe()
    probe.install()
    dc = baseline.client()
    results: dict[str, Any] = {}
    failures: list[str] = []
    results["failures"] = failures
    try:
        say("warm-up (not counted): a 2-node lab through each path")
        count_api_retries()
        attempt("warm-up baseline", labs, failures, lambda: run_baseline(2, labs, dc, failures))
        attempt("warm-up archetype", labs, failures, lambda: run_archetype(2, labs, probe, failures))
        for n in sizes:
            runs: dict[str, list[DeployRun]] = {"archetype": [], "baseline": []}
            loads = []
            for rep in range(reps):
                order = ("baseline", "archetype") if rep % 2 == 0 else ("archetype", "baseline")
                for which in order:
                    loads.append(host_busy_now())
                    run = attempt(
                        f"N={n} {which}", labs, failures,
                        lambda w=which, n=n: run_baseline(n, labs, dc, failures) if w == "baseline"
                        else run_archetype(n, labs, probe, failures),
                    )
                    runs[which].append(run)
                    cpu = run.detail
                    say(f"  N={n:<3d} rep {rep + 1}/{reps} {which:9s} deploy {run.deploy:6.2f} s   "
                        f"destroy {run.destroy:5.2f} s   cpu client {cpu['cpu_client']:4.1f} server "
                        f"{cpu['cpu_server']:4.1f} host {cpu['cpu_host']:5.1f} s   (host busy before: {loads[-1]:.0%})"
                        + (f"  [{cpu['api_retries']} API retries]" if cpu.get("api_retries") else ""))
                probe.calls.clear()
            results[str(n)] = _size_result(n, runs, loads)
    finally:
        dc.close()
        probe.uninstall()
    return results


def wait_for_daemons(timeout: float = 180) -> None:
    """dockerd and libvirtd answering again (other people's fault tests restart them)."""
    import docker
    import libvirt

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = docker.from_env(timeout=5)
            client.ping()
            client.close()
            libvirt.open(os.environ.get("ARCHETYPE_LIBVIRT_URI", "qemu:///system")).close()
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1)
        else:
            return
    raise RuntimeError(f"dockerd or libvirtd did not answer for {timeout:.0f} s")


def attempt(what: str, labs: Labs, failures: list[str], run: Callable[[], DeployRun], tries: int = 3) -> DeployRun:
    """One measurement; a failure (other people's tests restart dockerd on this host) is
    noted, its lab removed, and the measurement made again."""
    for number in range(1, tries + 1):
        try:
            return run()
        except Exception as err:  # noqa: BLE001 - noted, retried
            failures.append(f"{what} (try {number}): {err.__class__.__name__}: {str(err)[:300]}")
            say(f"  {what}: failed ({err.__class__.__name__}: {str(err)[:200]}); cleaning up and retrying")
            wait_for_daemons()
            time.sleep(2)
            errors = labs.cleanup()
            if errors:
                failures.append(f"{what}: cleanup: {errors}")
            if number == tries:
                raise
    raise AssertionError("unreachable")


def _size_result(n: int, runs: dict[str, list[DeployRun]], loads: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": n, "host_busy_before": summary(loads)}
    for which, items in runs.items():
        details: dict[str, list[float]] = {}
        for run in items:
            for key, value in run.detail.items():
                details.setdefault(key, []).append(value)
        out[which] = {
            "deploy": summary([r.deploy for r in items]),
            "destroy": summary([r.destroy for r in items]),
            "detail_median": {k: round(statistics.median(v), 3) for k, v in details.items()},
        }
    a, b = out["archetype"], out["baseline"]
    out["deploy_ratio"] = round(a["deploy"]["median"] / b["deploy"]["median"], 3)
    out["destroy_ratio"] = round(a["destroy"]["median"] / b["destroy"]["median"], 3)
    out["prefect_overhead_per_node_s"] = round((a["deploy"]["median"] - b["deploy"]["median"]) / n, 4)
    # The same, pairing each rep's two runs (made back to back, so under similar load).
    paired = [(x.deploy - y.deploy) / n for x, y in zip(runs["archetype"], runs["baseline"], strict=True)]
    out["prefect_overhead_per_node_paired_s"] = summary(paired)
    # CPU that Prefect adds (flow process + server, beyond what the baseline's process used).
    ad, bd = a["detail_median"], b["detail_median"]
    extra_cpu = ad["cpu_client"] + ad["cpu_server"] - bd["cpu_client"] - bd["cpu_server"]
    out["prefect_cpu_per_node_s"] = round(extra_cpu / n, 4)
    return out


# ---------------------------------------------------------------- discovery


def bench_discovery(labs: Labs, reps: int, containers: int = 180, domains: int = 20) -> dict[str, Any]:
    import docker
    import libvirt

    from lab import names
    from providers import all_providers, get_provider
    from providers import labs as lab_ops
    from providers.libvirt import LibvirtProvider
    from providers.libvirt.domain_xml import domain_xml
    from topology import Node

    per_lab = 20
    container_labs = [lab_id(f"d{i}") for i in range((containers + per_lab - 1) // per_lab)]
    vm_lab = lab_id("dv")
    labs.container_labs.update(container_labs)
    labs.vm_labs.add(vm_lab)
    api = docker.APIClient(base_url="unix:///var/run/docker.sock", timeout=120)
    libvirt_provider = LibvirtProvider()
    locks = held([*container_labs, vm_lab])
    locks.__enter__()
    try:
        say(f"discovery: creating {containers} archetype/linux containers (a third running) "
            f"and defining {domains} stopped domains")
        t0 = time.monotonic()

        def make(i: int) -> None:
            lab, node = container_labs[i // per_lab], f"n{i % per_lab}"
            cid = api.create_container(
                "archetype/linux:latest", name=names.container_name(lab, node), hostname=node,
                labels=names.container_labels(lab, node, "linux"),
                host_config=api.create_host_config(network_mode="none"),
            )["Id"]
            if i % 3 == 0:
                api.start(cid)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(make, range(containers)))
        conn = libvirt.open(libvirt_provider.uri)  # this thread's own connection, for the defines
        try:
            for i in range(domains):
                node = Node.of(name=f"v{i}", kind="mini-ios", image="")
                conn.defineXML(domain_xml(libvirt_provider.plan(vm_lab, node, [])))
        finally:
            conn.close()
        say(f"  made in {time.monotonic() - t0:.1f} s")

        expected = containers + domains
        in_process_cold, in_process_warm, cli = [], [], []
        for _ in range(reps):
            _fresh_providers(get_provider, all_providers)  # connections are made inside the timing
            t = time.monotonic()
            found = lab_ops.discover()
            in_process_cold.append(time.monotonic() - t)
            t = time.monotonic()
            found = lab_ops.discover()
            in_process_warm.append(time.monotonic() - t)
            ours = sum(len(lab.nodes) for lab in found if lab.lab_id in {*container_labs, vm_lab})
            if ours != expected:
                raise RuntimeError(f"discovery found {ours} of our {expected} nodes")
            t = time.monotonic()
            out = subprocess.run([str(REPO / ".venv/bin/archetype"), "status", "--json"], capture_output=True,
                                 text=True, timeout=120, check=False)
            cli.append(time.monotonic() - t)
            if out.returncode != 0:
                raise RuntimeError(f"archetype status --json failed: {out.stderr[-500:]}")
            listed = json.loads(out.stdout)["labs"]
            ours = sum(len(lab["nodes"]) for lab in listed if lab["lab_id"] in {*container_labs, vm_lab})
            if ours != expected:
                raise RuntimeError(f"archetype status listed {ours} of our {expected} nodes")
        # The CLI's own cost without discovery: interpreter + imports.
        t = time.monotonic()
        subprocess.run([str(REPO / ".venv/bin/python"), "-c", "import archetype.cli, providers.labs, "
                        "providers.docker, providers.libvirt"], check=True, timeout=60)
        imports = time.monotonic() - t
        host_total = sum(len(lab.nodes) for lab in found)
        return {
            "nodes_of_ours": expected,
            "nodes_on_host": host_total,
            "discover_all_first_call": summary(in_process_cold),
            "discover_all_warm": summary(in_process_warm),
            "status_json_process": summary(cli),
            "cli_imports_only": round(imports, 3),
        }
    finally:
        t = time.monotonic()
        errors = []
        for lab in container_labs:
            rows = api.containers(all=True, filters={"label": f"{names.LABEL_LAB}={lab}"})
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda r: api.remove_container(r["Id"], force=True), rows))
            labs.container_labs.discard(lab)
        errors += lab_ops.destroy_lab(vm_lab).errors
        if not errors:
            labs.vm_labs.discard(vm_lab)
        locks.__exit__(None, None, None)
        api.close()
        libvirt_provider.close()
        _fresh_providers(get_provider, all_providers)
        say(f"  removed in {time.monotonic() - t:.1f} s" + (f" (errors: {errors})" if errors else ""))


def _fresh_providers(get_provider: Any, all_providers: Any) -> None:
    """Close the process-wide providers and forget them: the next call makes new ones."""
    for provider in all_providers():
        with contextlib.suppress(Exception):
            provider.close()
    get_provider.cache_clear()


# ---------------------------------------------------------------- VM readiness


def watch_for_line(path: Path, line: str, stop: threading.Event, seen: list[float]) -> None:
    """A 1 ms poll of the serial log: the monotonic time the line is first in the file.
    (The log is truncated when the domain starts: a stale file from before is skipped by
    reading only once it was recreated, i.e. from the start of the new inode.)"""
    wanted = line.encode()
    inode = None
    data = b""
    offset = 0
    while not stop.is_set():
        try:
            st = os.stat(path)
        except FileNotFoundError:
            time.sleep(0.001)
            continue
        if st.st_ino != inode or st.st_size < offset:
            inode, data, offset = st.st_ino, b"", 0
        if st.st_size > offset:
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read(st.st_size - offset)
            offset += len(chunk)
            data = data[-len(wanted):] + chunk
            if wanted in data:
                seen.append(time.monotonic())
                return
        time.sleep(0.001)


def bench_vm(labs: Labs, reps: int) -> dict[str, Any]:
    from lab import names
    from providers.libvirt import LibvirtProvider
    from topology import Node

    provider = LibvirtProvider()
    delays, boots = [], []
    try:
        for rep in range(reps):
            lab = lab_id("v")
            labs.vm_labs.add(lab)
            node = Node.of(name="v1", kind="mini-ios", image="")
            log_path = names.serial_log_path(lab, node.name)
            stop, seen = threading.Event(), []
            watcher = threading.Thread(target=watch_for_line, args=(log_path, VM_READY_LINE, stop, seen), daemon=True)
            watcher.start()
            try:
                with held([lab]):
                    t0 = time.monotonic()
                    provider.create_node(lab, node, [])
                    provider.wait_ready(lab, node)
                    t_ready = time.monotonic()
                watcher.join(2)
                if not seen:
                    raise RuntimeError(f"{VM_READY_LINE!r} never seen in {log_path} by the watcher")
                delays.append(t_ready - seen[0])
                boots.append(seen[0] - t0)
                say(f"  VM rep {rep + 1}/{reps}: line after {boots[-1]:.2f} s, ready declared "
                    f"{delays[-1] * 1000:.0f} ms later")
            finally:
                stop.set()
                from providers import labs as lab_ops

                report = lab_ops.destroy_lab(lab)
                if not report.errors:
                    labs.vm_labs.discard(lab)
    finally:
        provider.close()
    return {"ready_delay": summary(delays), "boot_to_line": summary(boots)}


# ---------------------------------------------------------------- main


def section(results: dict[str, Any], key: str, run: Callable[[], dict[str, Any]]) -> None:
    """One part of the benchmark; its failure is reported, and the others still run."""
    try:
        results[key] = run()
    except Exception as err:  # noqa: BLE001 - reported in the results
        say(f"  {key}: FAILED: {err.__class__.__name__}: {err}")
        results.setdefault("errors", []).append(f"{key}: {err.__class__.__name__}: {err}")


def check_host() -> None:
    import docker

    problems = []
    try:
        client = docker.from_env(timeout=10)
        for image in ("archetype/frr:latest", "archetype/linux:latest"):
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                problems.append(f"image {image} is missing (make setup builds it)")
        client.close()
    except docker.errors.DockerException as err:
        problems.append(f"dockerd does not answer: {err}")
    if shutil.which("ovs-vsctl") is None or subprocess.run(["ovs-vsctl", "--timeout=5", "show"],
                                                           capture_output=True).returncode != 0:
        problems.append("Open vSwitch does not answer")
    if problems:
        raise SystemExit("benchmarks cannot run: " + "; ".join(problems) + " (run `make setup`)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,20,40", help="lab sizes (nodes), comma-separated")
    parser.add_argument("--reps", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--skip-discovery", action="store_true")
    parser.add_argument("--skip-vm", action="store_true")
    parser.add_argument("--skip-deploy", action="store_true")
    parser.add_argument("--heartbeat", action="store_true",
                        help="keep Prefect's flow-run heartbeat on, as worker-run flows have it (its thread "
                             "makes every flow run end on a whole second: docs/performance.md); the "
                             "command line, which the default measures, runs without it")
    parser.add_argument("--nice-server", type=int, default=0, metavar="N",
                        help="run the Prefect server at this nice level (it shares the 2 cores with dockerd)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    check_host()

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)

    started = time.monotonic()
    labs = Labs()
    results: dict[str, Any] = {"host": host_facts(), "reps": args.reps, "sizes": sizes}
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if not args.skip_deploy and sizes:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            say("starting a Prefect server")
            from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

            settings: dict[Any, Any] = {}
            if not args.heartbeat:
                settings[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
            results["variant"] = {"heartbeat_off": not args.heartbeat, "nice_server": args.nice_server}
            with prefect_server(keep_logs=Path(tempfile.gettempdir()) / "archetype-bench-server.log",
                                nice=args.nice_server) as url, \
                    temporary_settings({**settings, PREFECT_API_URL: url}):
                quiet_prefect_console()
                results["deploy"] = bench_deploys(sizes, args.reps, labs)
                results["deploy_failures"] = results["deploy"].pop("failures", [])
        if not args.skip_discovery:
            section(results, "discovery", lambda: bench_discovery(labs, args.reps))
        if not args.skip_vm:
            say("VM readiness: mini-ios through LibvirtProvider")
            section(results, "vm", lambda: bench_vm(labs, args.reps))
    finally:
        errors = labs.cleanup()
        if errors:
            say(f"cleanup errors: {errors}")
    results["seconds"] = round(time.monotonic() - started, 1)
    targets = {}
    if "20" in deploys_of(results):
        targets[f"deploy N=20 within {TARGET_RATIO_N20}x"] = results["deploy"]["20"]["deploy_ratio"] <= TARGET_RATIO_N20
    if "discovery" in results and "error" not in results["discovery"]:
        targets[f"discover_all() < {TARGET_DISCOVERY_S:.0f} s"] = (
            results["discovery"]["discover_all_first_call"]["median"] < TARGET_DISCOVERY_S)
    if "vm" in results:
        targets[f"VM ready delay < {TARGET_VM_DELAY_S:.0f} s"] = results["vm"]["ready_delay"]["median"] < TARGET_VM_DELAY_S
    results["targets"] = targets

    (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "latest.md").write_text(render_markdown(results))
    say("")
    say(render_table(results))
    say("")
    say("targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    say(f"written {args.out / 'latest.json'} and {args.out / 'latest.md'} ({results['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
