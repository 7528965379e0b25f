"""Archetype's internals, measured in-process (``make bench`` runs it after ``run.py``):

1. discovery with 200 nodes present (180 archetype/linux containers, a third running, and
   20 defined-but-stopped libvirt domains carrying our metadata): ``discover_all()``
   in-process, and ``archetype status --json`` as a process;
2. VM readiness delay: a mini-ios VM booted by ``LibvirtProvider``; the delay between
   "Press RETURN to get started" appearing in its serial log (watched by a 1 ms poll loop
   in a thread) and ``wait_ready`` returning.

(Deploy and destroy against the engines-only baseline, as users run them, are
``benchmarks/run.py``.) Every measurement is repeated (``--reps``, default 3) and the
median reported, with min-max. Results: ``benchmarks/results/internals.json`` and
``internals.md``. Every lab made here is removed at the end, also after a failure.

Usage: .venv/bin/python benchmarks/internals.py [--reps 3] [--skip-discovery] [--skip-vm] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from benchmarks.internals_report import (  # noqa: E402
    TARGET_DISCOVERY_S,
    TARGET_VM_DELAY_S,
    VM_READY_LINE,
    render_markdown,
    render_table,
)
from benchmarks.measure import (  # noqa: E402
    host_facts,
    summary,
)

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


@contextlib.contextmanager
def held(lab_ids: list[str]) -> Iterator[None]:
    """Hold the labs' locks (outside any timing): orphan cleanup, which other people's
    tests run on this host, leaves a lab whose lock is held alone."""
    from lab.locks import lab_lock

    with contextlib.ExitStack() as stack:
        for lab in lab_ids:
            stack.enter_context(lab_lock(lab, timeout=10))
        yield


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
    if "discovery" in results and "error" not in results["discovery"]:
        targets[f"discover_all() < {TARGET_DISCOVERY_S:.0f} s"] = (
            results["discovery"]["discover_all_first_call"]["median"] < TARGET_DISCOVERY_S)
    if "vm" in results:
        targets[f"VM ready delay < {TARGET_VM_DELAY_S:.0f} s"] = results["vm"]["ready_delay"]["median"] < TARGET_VM_DELAY_S
    results["targets"] = targets

    (args.out / "internals.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "internals.md").write_text(render_markdown(results))
    say("")
    say(render_table(results))
    say("")
    say("targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    say(f"written {args.out / 'internals.json'} and {args.out / 'internals.md'} ({results['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
