"""When a failed task is worth retrying: only transient errors, never invalid input."""

from __future__ import annotations

from typing import Any


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for every task: our errors say whether a retry can help
    (``ArchetypeError.transient``); anything else (a bug) is not retried."""
    try:
        state.result()
    except Exception as err:  # noqa: BLE001 - we only classify it
        return bool(getattr(err, "transient", False))
    return False
