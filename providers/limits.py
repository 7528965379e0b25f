"""One bound per engine on this host: how many engine calls run at once.

A deploy runs a task per node, so 200 nodes mean 200 threads calling one dockerd (or one
libvirtd) on a 2-core host at the same instant: calls time out after 60 s and their retries
come back into the same storm (HOST-FACTS, "Large labs"). Every call that makes an engine
work (a container's create, start, file copy, exec, a readiness probe's exec; a domain's
define and start) takes a slot of its engine's bound here first, and gives it back when the
call returns; waiting between two probes holds none, so probes never starve the creates and
starts of the nodes they wait for, and never more than the bound run at once.

The bound is per engine and per process (all of a deploy's tasks run in one process), and
is ``ARCHETYPE_MAX_WORKERS`` when set, else derived from the host's CPUs (``default_limit``);
it then follows what the engine answers: halved when a create or start is slow, raised back
step by step while they are fast (``EngineBound``).
Why a semaphore here and not Prefect's global concurrency limits: docs/performance.md,
"Bounded engine calls".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lab.settings import get_settings

log = logging.getLogger("archetype.limits")

CALLS_PER_CPU = 4  # measured: 8 workers on 2 cores created 100 FRR containers in 33 s, the engines' best
MIN_LIMIT = 2


def default_limit(cpus: int | None = None) -> int:
    """Engine calls at once on a host with ``cpus`` CPUs (this host's when None)."""
    cpus = cpus or len(os.sched_getaffinity(0)) or 1
    return max(MIN_LIMIT, CALLS_PER_CPU * cpus)


@dataclass
class BoundStats:
    limit: int  # the bound now (adapted: between MIN_LIMIT and ``ceiling``)
    ceiling: int  # the configured bound
    active: int
    peak: int  # the most calls that ever ran at once (since the last ``reset_peak``)
    calls: int


SLOW_CALL_SECONDS = 30.0  # a create/start this slow nears the docker client's 60 s timeout: back off
FAST_CALL_SECONDS = 2.0


class EngineBound:
    """A counting semaphore whose count follows what the engine answers, and that counts.

    The bound starts at ``ceiling``. An engine call that takes longer than
    ``SLOW_CALL_SECONDS`` halves it (not below ``MIN_LIMIT``); each run of fast calls as long
    as the bound raises it by one again, up to ``ceiling``. Only calls whose time is the
    engine's own are measured (creates, starts, defines), not execs: an exec lasts as long
    as its command."""

    def __init__(self, engine: str, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError(f"engine bound of {engine}: the limit must be at least 1, not {ceiling}")
        self.engine, self.ceiling = engine, ceiling
        self.limit = ceiling
        self._changed = threading.Condition()
        self._active = self._peak = self._calls = self._fast_run = 0

    @contextmanager
    def slot(self, *, measured: bool = False) -> Iterator[None]:
        """Hold one of the engine's slots for the length of one call (``measured``: its
        time tells how loaded the engine is)."""
        with self._changed:
            self._changed.wait_for(lambda: self._active < self.limit)
            self._active += 1
            self._calls += 1
            self._peak = max(self._peak, self._active)
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - started
            with self._changed:
                self._active -= 1
                if measured:
                    self._adapt(seconds)
                self._changed.notify_all()

    def _adapt(self, seconds: float) -> None:
        if seconds > SLOW_CALL_SECONDS:
            self._fast_run = 0
            lower = max(min(MIN_LIMIT, self.ceiling), self.limit // 2)
            if lower < self.limit:
                log.warning("%s answered in %.0f s: at most %d calls at once (was %d)",
                            self.engine, seconds, lower, self.limit)
                self.limit = lower
        elif seconds < FAST_CALL_SECONDS and self.limit < self.ceiling:
            self._fast_run += 1
            if self._fast_run >= self.limit:
                self._fast_run = 0
                self.limit += 1

    def stats(self) -> BoundStats:
        with self._changed:
            return BoundStats(self.limit, self.ceiling, self._active, self._peak, self._calls)

    def reset_peak(self) -> None:
        with self._changed:
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
