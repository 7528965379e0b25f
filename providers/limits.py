"""One bound per engine on this host: how many engine calls run at once.

A deploy runs a task per node, so 200 nodes mean 200 threads calling one dockerd (or one
libvirtd) on a 2-core host at the same instant: calls time out after 60 s and their retries
come back into the same storm (HOST-FACTS, "Large labs"). Every call that makes an engine
work (a container's create, start, file copy, exec, a readiness probe's exec; a domain's
define and start) takes a slot of its engine's bound here first, and gives it back when the
call returns; waiting between two probes holds none, so probes never starve the creates and
starts of the nodes they wait for, and never more than the bound run at once.

The bound is per engine and per host, across processes: two deploys running at once on one
host share it. Each slot is a file under the workspace's ``locks/engine-<engine>/`` folder,
held with ``flock`` for the length of a call (``HostSlots``); the kernel releases a killed
process's slots. It is ``ARCHETYPE_MAX_WORKERS`` when set, else derived from the host's CPUs
(``default_limit``, ``host_cpus``). Waiting calls are served by ``Turn``: the start of a
container already created first, then creates, then execs, so that a lab's nodes are made
one after the other as a script's workers make them, not all created and then all started.
Each process then follows what the engine answers: its bound is halved when a create or
start is slow, raised back step by step while they are fast (``EngineBound``), and a
process whose bound is lowered uses only the lower slots.
Why a semaphore here and not Prefect's global concurrency limits: docs/performance.md,
"Bounded engine calls".
"""

from __future__ import annotations

import fcntl
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from lab import names
from lab.private import FILE_MODE, private_dir
from lab.settings import get_settings

log = logging.getLogger("archetype.limits")

CALLS_PER_CPU = 4  # measured: 8 workers on 2 cores created 100 FRR containers in 33 s, the engines' best
MIN_LIMIT = 2


def host_cpus() -> int:
    """The CPUs this host gives its labs: those this process may run on (its affinity, which
    a cgroup or ``taskset`` narrows; ``os.cpu_count`` counts the machine's). The one count
    the engine bound, the host's published facts and containers' CPU caps use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def default_limit(cpus: int | None = None) -> int:
    """Engine calls at once on a host with ``cpus`` CPUs (this host's when None)."""
    return max(MIN_LIMIT, CALLS_PER_CPU * (cpus or host_cpus()))


class Turn(IntEnum):
    """Which waiting call gets the next free slot: first the start of a container already
    created (a node half made is finished before another is begun, as a script's worker
    does: its node boots while the next ones are created), then creates, then the rest
    (execs: readiness probes, post-boot commands), each in the order asked."""

    FINISH = 0
    CREATE = 1
    OTHER = 2


@dataclass
class BoundStats:
    limit: int  # the bound now (adapted: between MIN_LIMIT and ``ceiling``)
    ceiling: int  # the configured bound
    active: int
    peak: int  # the most calls that ever ran at once (since the last ``reset_peak``)
    calls: int


HOST_POLL_SECONDS = 0.02  # the call first in line looks again this often for a slot another process gave back


class HostSlots:
    """The host's slots of one engine, shared by every process: files ``slot-<i>`` in
    ``folder``, each held with ``flock`` by at most one call at a time, and a ``gate`` file,
    the line: a call holds the gate (a blocking ``flock``, which the kernel grants to one
    waiter at a time, whatever its process) while it looks for a free slot, and lets go of
    it once it has one. So a process whose calls give slots back cannot hand them straight
    to its own next calls while another process's call waits: the one at the gate takes the
    next free slot, a slot given back in this process at once, one given back elsewhere
    within ``HOST_POLL_SECONDS``.

    flock locks belong to an open file description: this process opens each slot file once
    and keeps which of them its own calls hold, and opens the gate anew for each call. The
    kernel drops a dead process's locks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[int, int] = {}
        self._held: set[int] = set()
        self._freed = threading.Condition()

    def take(self, count: Callable[[], int]) -> int:
        """A slot among the first ``count()`` (read again while waiting: the bound adapts),
        waiting in the host's line for it."""
        private_dir(self.folder)
        gate = os.open(self.folder / "gate", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            with self._freed:
                while (index := self.try_take(count())) is None:
                    self._freed.wait(HOST_POLL_SECONDS)
                return index
        finally:
            os.close(gate)  # lets the next in line look

    def try_take(self, count: int) -> int | None:
        """One free slot among the first ``count``, or None; never waits. The highest first,
        so a process whose bound is lower (set lower, or halved) still finds the low ones."""
        with self._freed:
            for index in reversed(range(count)):
                if index in self._held:
                    continue
                try:
                    fcntl.flock(self._file(index), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self._held.add(index)
                return index
            return None

    def give_back(self, index: int) -> None:
        with self._freed:
            fcntl.flock(self._files[index], fcntl.LOCK_UN)
            self._held.discard(index)
            self._freed.notify_all()

    def _file(self, index: int) -> int:
        fd = self._files.get(index)
        if fd is None:
            fd = self._files[index] = os.open(self.folder / f"slot-{index}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                              FILE_MODE)
        return fd


SLOW_CALL_SECONDS = 30.0  # a create/start this slow nears the docker client's 60 s timeout: back off
FAST_CALL_SECONDS = 2.0


class EngineBound:
    """A counting semaphore whose count follows what the engine answers, and that counts.

    The bound starts at ``ceiling``. An engine call that takes longer than
    ``SLOW_CALL_SECONDS`` halves it (not below ``MIN_LIMIT``); each run of fast calls as long
    as the bound raises it by one again, up to ``ceiling``. Only calls whose time is the
    engine's own are measured (creates, starts, defines), not execs: an exec lasts as long
    as its command.

    With ``host_slots`` each call also holds one of the host's slots (``HostSlots``), so all
    processes together never run more calls than the largest ceiling among them, and each
    waits its turn in the host's line."""

    def __init__(self, engine: str, ceiling: int, host_slots: HostSlots | None = None) -> None:
        if ceiling < 1:
            raise ValueError(f"engine bound of {engine}: the limit must be at least 1, not {ceiling}")
        self.engine, self.ceiling = engine, ceiling
        self.limit = ceiling
        self._host = host_slots
        self._changed = threading.Condition()
        self._taken = 0  # calls of this process past its own bound (running, or in the host's line)
        self._line: list[tuple[Turn, int, threading.Event]] = []  # calls waiting for one of this process's slots
        self._tickets = itertools.count()
        self._active = self._peak = self._calls = self._fast_run = 0

    @contextmanager
    def slot(self, *, measured: bool = False, turn: Turn = Turn.OTHER) -> Iterator[None]:
        """Hold one of the engine's slots for the length of one call (``measured``: its
        time tells how loaded the engine is). Waiting calls get a free slot by ``turn``,
        then in the order they asked."""
        self._wait_turn(turn)
        held = None
        try:
            held = self._host_slot()
            with self._changed:
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
        finally:
            if held is not None:
                self._host.give_back(held)  # type: ignore[union-attr]
            with self._changed:
                self._taken -= 1
                self._hand_over()

    def _wait_turn(self, turn: Turn) -> None:
        """One of this process's slots: at once when one is free and nobody waits, else in
        the line (``turn``, then first come), handed over by the call that gives one back.
        One waiter woken per slot, not every waiting thread (200 nodes: 200 threads)."""
        with self._changed:
            if self._taken < self.limit and not self._line:
                self._taken += 1
                return
            ready = threading.Event()
            ticket = (turn, next(self._tickets), ready)
            heapq.heappush(self._line, ticket)
        try:
            ready.wait()
        except BaseException:  # interrupted in line: the slot handed over meanwhile goes on
            with self._changed:
                if ready.is_set():
                    self._taken -= 1
                else:
                    self._line.remove(ticket)
                    heapq.heapify(self._line)
                self._hand_over()
            raise

    def _hand_over(self) -> None:
        """Free slots to the first in line (holding ``_changed``)."""
        while self._line and self._taken < self.limit:
            self._taken += 1
            heapq.heappop(self._line)[2].set()

    def _host_slot(self) -> int | None:
        """One of the host's slots (``HostSlots``), waited for in the host's line; None
        without host slots."""
        host = self._host
        if host is None:
            return None
        try:
            return host.take(lambda: self.limit)
        except OSError as err:  # a workspace this process cannot write: its own bound only
            log.warning("%s: no host-wide bound (%s): at most %d calls at once in this process",
                        self.engine, err, self.limit)
            self._host = None
            return None

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
                self._hand_over()

    def stats(self) -> BoundStats:
        with self._changed:
            return BoundStats(self.limit, self.ceiling, self._active, self._peak, self._calls)

    def reset_peak(self) -> None:
        with self._changed:
            self._peak, self._calls = self._active, 0


_bounds: dict[str, EngineBound] = {}
_bounds_lock = threading.Lock()


def engine_bound(engine: str) -> EngineBound:
    """The bound of ``engine`` ("docker", "libvirt") on this host, made on first use in this
    process; its slots are shared with every process using the same workspace."""
    with _bounds_lock:
        bound = _bounds.get(engine)
        if bound is None:
            bound = _bounds[engine] = EngineBound(engine, get_settings().max_workers or default_limit(),
                                                  HostSlots(names.engine_slots_dir(engine)))
        return bound


def forget_bounds() -> None:
    """Drop the bounds (tests that change ``ARCHETYPE_MAX_WORKERS``); calls in flight keep theirs."""
    with _bounds_lock:
        _bounds.clear()
