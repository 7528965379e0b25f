"""The bound on engine calls (providers.limits): never more calls at once than the bound,
and the bound follows what the engine answers."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from providers import limits
from providers.limits import EngineBound


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
