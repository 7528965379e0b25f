"""Concurrent OVS transactions are merged into one ovs-vsctl, each caller still gets its own
outcome (the merging logic; ovs-vsctl itself is replaced by a recorder)."""

from __future__ import annotations

import threading
import time

import pytest

from lab.errors import NetworkError
from providers.network import ovs


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[list[list[str]]]:
    calls: list[list[list[str]]] = []

    def transaction(commands, *, what):  # an ovs-vsctl that takes a while, and refuses "bad"
        calls.append(list(commands))
        time.sleep(0.05)
        if ["bad"] in commands:
            raise NetworkError(f"{what}: refused")
        return "applied"

    monkeypatch.setattr(ovs, "transaction", transaction)
    return calls


def run_concurrently(commands_of: dict[int, list[list[str]]]) -> dict[int, str]:
    outcome: dict[int, str] = {}
    start = threading.Barrier(len(commands_of))

    def caller(i: int) -> None:
        start.wait()
        try:
            outcome[i] = ovs.grouped_transaction(commands_of[i], what=f"caller {i}")
        except NetworkError as err:
            outcome[i] = f"error: {err}"

    threads = [threading.Thread(target=caller, args=(i,)) for i in commands_of]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def test_callers_arriving_together_share_a_transaction(recorded: list) -> None:
    outcome = run_concurrently({i: [["add-port", f"p{i}"]] for i in range(10)})
    assert outcome == dict.fromkeys(range(10), "applied")
    assert len(recorded) <= 3  # the first alone, the others merged behind it
    assert sorted(c for call in recorded for c in call) == sorted(["add-port", f"p{i}"] for i in range(10))


def test_a_bad_transaction_fails_only_its_caller(recorded: list) -> None:
    outcome = run_concurrently({i: [["bad"]] if i == 4 else [["add-port", f"p{i}"]] for i in range(8)})
    assert outcome.pop(4) == "error: caller 4: refused"
    assert outcome == dict.fromkeys(outcome, "applied")
    applied = [c for call in recorded if ["bad"] not in call for c in call]
    assert sorted(applied) == sorted(["add-port", f"p{i}"] for i in range(8) if i != 4)
