"""The per-lab lock: two deploy/destroy runs of one lab never overlap on a host."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from lab import names
from lab.errors import LabBusyError
from lab.private import FILE_MODE, private_dir
from lab.settings import get_settings


@contextmanager
def lab_lock(lab_id: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lab's host-wide lock; a second run waits, then fails clearly.

    A file lock (flock) is released by the kernel when its process dies, so a killed
    deploy never leaves the lab locked.
    """
    path = names.lab_lock_path(lab_id)
    private_dir(path.parent)
    wait = get_settings().lab_lock_timeout if timeout is None else timeout
    lock = FileLock(str(path), mode=FILE_MODE, thread_local=False)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise LabBusyError(f"lab {lab_id} is busy: another deploy or destroy holds {path} (waited {wait:.0f} s)") from None
    try:
        yield
    finally:
        lock.release()


def lab_is_busy(lab_id: str) -> bool:
    """Whether a run holds the lab's lock right now (orphan cleanup leaves such labs alone)."""
    try:
        with lab_lock(lab_id, timeout=0):
            return False
    except LabBusyError:
        return True
