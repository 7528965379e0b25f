"""One bound per engine on this host: how many engine calls run at once.

A deploy runs a task per node, so 200 nodes mean 200 threads calling one dockerd (or one
libvirtd) on a 2-core host at the same instant: calls time out after 60 s and their retries
come back into the same storm (HOST-FACTS, "Large labs"). Every call that makes an engine
work (a container's create, start, file copy, exec, a readiness probe's exec; a domain's
define and start) takes a slot of its engine's bound here first, and gives it back when the
call returns; waiting between two probes holds none, so probes never starve the creates and
starts of the nodes they wait for, and never more than the bound run at once.

The bound is per engine and per process (all of a deploy's tasks run in one process), and
is ``ARCHETYPE_MAX_WORKERS`` when set, else derived from the host's CPUs (``default_limit``).
Why a semaphore here and not Prefect's global concurrency limits: docs/performance.md,
"Bounded engine calls".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lab.settings import get_settings

CALLS_PER_CPU = 4  # measured: 8 workers on 2 cores created 100 FRR containers in 33 s, the engines' best
MIN_LIMIT = 2


def default_limit(cpus: int | None = None) -> int:
    """Engine calls at once on a host with ``cpus`` CPUs (this host's when None)."""
    cpus = cpus or len(os.sched_getaffinity(0)) or 1
    return max(MIN_LIMIT, CALLS_PER_CPU * cpus)


@dataclass
class BoundStats:
    limit: int
    active: int
    peak: int  # the most calls that ever ran at once (since the last ``reset_peak``)
    calls: int


class EngineBound:
    """A counting semaphore that also counts: the calls running now, their peak, their total."""

    def __init__(self, engine: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"engine bound of {engine}: the limit must be at least 1, not {limit}")
        self.engine, self.limit = engine, limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._active = self._peak = self._calls = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the engine's slots for the length of one call."""
        with self._slots:
            with self._lock:
                self._active += 1
                self._calls += 1
                self._peak = max(self._peak, self._active)
            try:
                yield
            finally:
                with self._lock:
                    self._active -= 1

    def stats(self) -> BoundStats:
        with self._lock:
            return BoundStats(self.limit, self._active, self._peak, self._calls)

    def reset_peak(self) -> None:
        with self._lock:
            self._peak, self._calls = self._active, 0


_bounds: dict[str, EngineBound] = {}
_bounds_lock = threading.Lock()


def engine_bound(engine: str) -> EngineBound:
    """The bound of ``engine`` ("docker", "libvirt") in this process, made on first use."""
    with _bounds_lock:
        bound = _bounds.get(engine)
        if bound is None:
            bound = _bounds[engine] = EngineBound(engine, get_settings().max_workers or default_limit())
        return bound


def forget_bounds() -> None:
    """Drop the bounds (tests that change ``ARCHETYPE_MAX_WORKERS``); calls in flight keep theirs."""
    with _bounds_lock:
        _bounds.clear()
