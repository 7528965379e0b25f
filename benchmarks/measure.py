"""What the benchmarks measure with: provider-call timestamps (where a flow's time goes),
CPU meters (this process, the Prefect server, the host), the Prefect client's API retries,
host load and facts, and the median/min/max summary of repeated runs."""

from __future__ import annotations

import functools
import logging
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def summary(values: list[float]) -> dict[str, Any]:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": [round(v, 3) for v in values],
    }


@dataclass
class Call:
    what: str
    lab: str
    node: str
    start: float
    end: float


class Probe:
    """Timestamps of the provider calls the flows make (wrappers on the classes; the
    calls themselves are unchanged). Lets us split a flow's wall time into the work and
    Prefect's share: before the first node call, between a node's stages, after the last."""

    NODE_METHODS = ("create_node", "wire_node", "wait_ready", "run_post_boot")

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._undo: list[Callable[[], None]] = []

    def install(self) -> None:
        from providers.docker import DockerProvider

        for method in self.NODE_METHODS:
            self._wrap(DockerProvider, method)

    def _wrap(self, cls: type, method: str) -> None:
        original = getattr(cls, method)
        calls = self.calls

        @functools.wraps(original)
        def timed(provider: Any, lab: str, node: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return original(provider, lab, node, *args, **kwargs)
            finally:
                calls.append(Call(method, lab, getattr(node, "name", str(node)), started, time.monotonic()))

        setattr(cls, method, timed)
        self._undo.append(lambda: setattr(cls, method, original))

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def breakdown(self, lab: str, t0: float, t_end: float) -> dict[str, float]:
        """Where a flow's wall time went, for one lab."""
        calls = [c for c in self.calls if c.lab == lab]
        if not calls:
            return {}
        by_node: dict[str, dict[str, Call]] = {}
        for call in calls:
            by_node.setdefault(call.node, {})[call.what] = call
        gaps = []
        for stages in by_node.values():
            chain = [stages[m] for m in self.NODE_METHODS if m in stages]
            gaps += [b.start - a.end for a, b in zip(chain, chain[1:], strict=False)]
        creates = [s["create_node"] for s in by_node.values() if "create_node" in s]
        return {
            "before_first_create": min(c.start for c in calls) - t0,
            "last_create_started": max(c.start for c in creates) - t0 if creates else 0.0,
            "all_created": max(c.end for c in creates) - t0 if creates else 0.0,
            "all_ready": max(c.end for c in calls if c.what == "wait_ready") - t0,
            "stage_handoff_mean": statistics.mean(gaps) if gaps else 0.0,
            "stage_handoff_max": max(gaps) if gaps else 0.0,
            "after_last_call": t_end - max(c.end for c in calls),
        }


class CpuMeter:
    """CPU seconds used by this process (the flow or the baseline: client side), by the
    Prefect server's process tree, and by the whole host (all cores), between two samples.
    On this 2-core host a deploy keeps both cores busy, so CPU spent by Prefect is wall
    time taken from dockerd and the routers."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self.server_pid: int | None = None

    @classmethod
    def _stat(cls, pid: int | str) -> list[str] | None:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None

    def server_pids(self) -> list[int]:
        """The server process and its descendants."""
        if self.server_pid is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (fields := self._stat(entry)) is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
        found, todo = [], [self.server_pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def _server_cpu(self) -> float:
        total = 0.0
        for pid in self.server_pids():
            fields = self._stat(pid)
            if fields is not None:
                total += sum(int(x) for x in fields[11:13]) / self.HZ  # utime + stime
        return total

    @classmethod
    def _host_busy(cls) -> float:
        values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(values) - values[3] - values[4]) / cls.HZ  # all but idle and iowait

    def sample(self) -> tuple[float, float, float]:
        times = os.times()
        return times.user + times.system, self._server_cpu(), self._host_busy()

    def since(self, start: tuple[float, float, float]) -> dict[str, float]:
        end = self.sample()
        return {"cpu_client": end[0] - start[0], "cpu_server": end[1] - start[1], "cpu_host": end[2] - start[2]}


CPU = CpuMeter()


class RetryCounter(logging.Handler):
    """Counts the Prefect client's retried API calls (a 503 is SQLite busy on the server;
    each retry waits ~2 s with jitter): a source of outliers worth seeing."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retryable" in record.getMessage():
            self.count += 1


RETRIES = RetryCounter()


def count_api_retries() -> None:
    client_log = logging.getLogger("prefect.client")
    if RETRIES not in client_log.handlers:
        client_log.addHandler(RETRIES)
        client_log.setLevel(logging.DEBUG)


def host_busy_now(seconds: float = 1.0) -> float:
    """How busy the host's CPUs are (0-1) over a short pause before a run: other people's
    work on the host, and the server still digesting the previous run's events."""
    start = CpuMeter._host_busy(), time.monotonic()
    time.sleep(seconds)
    cpus = os.cpu_count() or 1
    return (CpuMeter._host_busy() - start[0]) / ((time.monotonic() - start[1]) * cpus)


def host_facts() -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "?"

    from importlib.metadata import version as package_version  # Prefect's version, without importing it

    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "prefect": package_version("prefect"),
        "docker": version(["docker", "version", "--format", "{{.Server.Version}}"]),
        "ovs": version(["ovs-vsctl", "--version"]),
        "libvirt": version(["virsh", "--version"]),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }

