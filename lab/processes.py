"""Whether a process lives, and ending one, as the long-lived helpers (the local server,
the executor) need from their pid records. Standard library only, as ``archetype.handoff``
(which stops the executor with it) is."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (not yet reaped: PID 1 does not reap here) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def terminate(pid: int, *, timeout: float, group: bool = False, kill_after: float | None = None) -> None:
    """SIGTERM to ``pid`` (to its process group with ``group``), then wait up to ``timeout``
    seconds for it to end; with ``kill_after``, SIGKILL if it has not, and wait that long."""
    send = os.killpg if group else os.kill
    steps = [(signal.SIGTERM, timeout)] + ([(signal.SIGKILL, kill_after)] if kill_after is not None else [])
    for sig, wait in steps:
        with contextlib.suppress(ProcessLookupError):
            send(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if not alive(pid):
            return
