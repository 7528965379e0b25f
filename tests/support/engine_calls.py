"""Engine calls as spans of time, to check a bound from outside: each call's (start, end)
on the host's monotonic clock, taken while it holds its slot, comparable across processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from providers.limits import EngineBound


def log_calls(bound: EngineBound) -> list[tuple[float, float]]:
    """From now on, each call through ``bound`` adds its span to the list returned (the bound
    is this process's; drop it with ``providers.limits.forget_bounds`` to stop)."""
    spans: list[tuple[float, float]] = []
    plain = bound.slot

    @contextmanager
    def logged(**kwargs: object) -> Iterator[None]:
        with plain(**kwargs):  # type: ignore[arg-type]
            started = time.monotonic()
            try:
                yield
            finally:
                spans.append((started, time.monotonic()))

    bound.slot = logged  # type: ignore[method-assign]
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans that overlap at one instant (an end before a start at a tie)."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most
