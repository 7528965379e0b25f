"""The bound on engine calls (providers.limits): never more calls at once than the bound,
and the bound follows what the engine answers."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from providers import limits
from providers.limits import EngineBound
from tests.support.engine_calls import most_at_once


def test_never_more_calls_at_once_than_the_bound() -> None:
    bound = EngineBound("test", 3)
    running, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal running, most
        with bound.slot():
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.02)
            with lock:
                running -= 1

    with ThreadPoolExecutor(max_workers=20) as pool:
        for _ in range(60):
            pool.submit(call)
    assert most == 3 and bound.stats().peak == 3 and bound.stats().calls == 60 and bound.stats().active == 0


def test_a_slow_engine_halves_the_bound_and_fast_answers_raise_it_back() -> None:
    bound = EngineBound("test", 8)
    bound._adapt(limits.SLOW_CALL_SECONDS + 5)
    assert bound.limit == 4
    bound._adapt(limits.SLOW_CALL_SECONDS + 5)
    bound._adapt(limits.SLOW_CALL_SECONDS + 5)
    assert bound.limit == limits.MIN_LIMIT  # never below
    for _ in range(limits.MIN_LIMIT):  # a run of fast calls as long as the bound: one more
        bound._adapt(0.1)
    assert bound.limit == limits.MIN_LIMIT + 1
    for _ in range(100):
        bound._adapt(0.1)
    assert bound.limit == bound.ceiling == 8  # never above what was configured


def test_only_measured_calls_adapt_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "SLOW_CALL_SECONDS", 0.01)
    bound = EngineBound("test", 8)
    with bound.slot():  # an exec: as long as its command
        time.sleep(0.05)
    assert bound.limit == 8
    with bound.slot(measured=True):  # a create: the engine's own time
        time.sleep(0.05)
    assert bound.limit == 4


def test_the_default_bound_follows_the_cpus_and_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.settings import get_settings

    assert limits.default_limit(2) == 8 and limits.default_limit(1) == 4
    monkeypatch.setenv("ARCHETYPE_MAX_WORKERS", "5")
    get_settings.cache_clear()
    limits.forget_bounds()
    try:
        assert limits.engine_bound("docker").ceiling == 5
    finally:
        monkeypatch.delenv("ARCHETYPE_MAX_WORKERS")
        get_settings.cache_clear()
        limits.forget_bounds()


def _calls_in_one_process(folder: str, limit: int, calls: int, log_path: str, barrier: Any) -> None:
    """One process's share of ``test_two_processes_together_never_exceed_the_bound``: ``calls``
    engine calls from 3 x ``limit`` threads, each call's (start, end) on the host's monotonic
    clock written to ``log_path``."""
    from pathlib import Path

    bound = EngineBound("test", limit, limits.HostSlots(Path(folder)))
    spans: list[tuple[float, float]] = []
    barrier.wait(60)  # both processes started: their calls overlap

    def call() -> None:
        with bound.slot():
            started = time.monotonic()
            time.sleep(0.01)
            spans.append((started, time.monotonic()))

    with ThreadPoolExecutor(max_workers=3 * limit) as pool:
        for _ in range(calls):
            pool.submit(call)
    Path(log_path).write_text("\n".join(f"{a} {b}" for a, b in spans))


def test_two_processes_together_never_exceed_the_bound(tmp_path: Path) -> None:
    # Two deploys on one host: each process has its own EngineBound, both share the host's
    # slot files; together they never run more than the bound (each alone would run 3).
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    logs = [tmp_path / f"calls-{i}.log" for i in range(2)]
    barrier = context.Barrier(2)
    processes = [context.Process(target=_calls_in_one_process,
                                 args=(str(tmp_path / "slots"), 3, 80, str(log), barrier)) for log in logs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    per_process = [[tuple(map(float, line.split())) for line in log.read_text().splitlines()] for log in logs]
    assert [len(spans) for spans in per_process] == [80, 80]
    first, second = per_process
    assert min(b for _, b in first) < max(a for a, _ in second) and min(b for _, b in second) < max(a for a, _ in first)
    assert most_at_once(first + second) == 3, "the two processes' calls at once, together"


def test_a_process_whose_bound_is_lower_uses_only_the_lower_slots(tmp_path: Path) -> None:
    slots = limits.HostSlots(tmp_path)
    other = limits.HostSlots(tmp_path)  # another process's view (its own open files)
    assert [slots.try_take(4) for _ in range(3)] == [3, 2, 1]  # the highest first
    assert other.try_take(2) == 0 and other.try_take(2) is None  # 1 is held, 2 and 3 are above its bound
    slots.give_back(1)
    assert other.try_take(2) == 1


def test_one_count_of_the_host_cpus() -> None:
    import os

    from providers import host_facts
    from providers.docker import spec

    assert limits.host_cpus() == len(os.sched_getaffinity(0))
    assert limits.default_limit() == max(limits.MIN_LIMIT, limits.CALLS_PER_CPU * limits.host_cpus())
    assert spec.cpu_limit(10_000) == limits.host_cpus() * 1_000_000_000
    assert "host_cpus" in vars(host_facts)


def test_a_busy_process_does_not_starve_another_one(tmp_path: Path) -> None:
    # One deploy keeps every slot busy with back-to-back calls from many threads; another
    # one's call (a second EngineBound on the same slots: its own open files, as another
    # process has) gets its turn within a few calls, not when the busy one is done.
    busy = EngineBound("test", 3, limits.HostSlots(tmp_path))
    other = EngineBound("test", 3, limits.HostSlots(tmp_path))
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            with busy.slot():
                time.sleep(0.02)

    threads = [threading.Thread(target=hammer) for _ in range(9)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        waits = []
        for _ in range(5):
            asked = time.monotonic()
            with other.slot():
                waits.append(time.monotonic() - asked)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert max(waits) < 0.5, waits  # a busy slot frees every 20 ms: a few turns at most


def test_a_free_slot_goes_to_a_start_then_a_create_then_the_rest_each_in_the_order_asked() -> None:
    from providers.limits import Turn

    bound = EngineBound("test", 1)
    order: list[str] = []
    release = threading.Event()

    def hold() -> None:
        with bound.slot():
            release.wait(10)

    def call(name: str, turn: Turn) -> None:
        with bound.slot(turn=turn):
            order.append(name)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.05)
    waiting = []
    for name, turn in (("exec-1", Turn.OTHER), ("create-1", Turn.CREATE), ("exec-2", Turn.OTHER),
                       ("start-1", Turn.FINISH), ("create-2", Turn.CREATE), ("start-2", Turn.FINISH)):
        thread = threading.Thread(target=call, args=(name, turn))
        thread.start()
        waiting.append(thread)
        time.sleep(0.02)  # each in line before the next asks
    release.set()
    for thread in [holder, *waiting]:
        thread.join(10)
    assert order == ["start-1", "start-2", "create-1", "create-2", "exec-1", "exec-2"]
    assert bound.stats().active == 0 and bound._taken == 0
