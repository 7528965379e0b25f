"""The one thread that talks to libvirt.

libvirt-python is blocking and not thread-safe (HOST-FACTS), while flows call the provider
from many task threads at once. ``LibvirtThread`` owns the connection and runs every call
on a single dedicated thread: callers submit a function of the connection and wait for its
result (with a timeout, so a wedged daemon gives an error instead of a hang).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

import libvirt

from lab.errors import ProviderError

log = logging.getLogger("archetype.libvirt")
T = TypeVar("T")

# libvirt's C library prints every error on stderr by default; we raise them instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

VIR_ERR_NO_DOMAIN = libvirt.VIR_ERR_NO_DOMAIN  # 42
VIR_ERR_NO_DOMAIN_METADATA = libvirt.VIR_ERR_NO_DOMAIN_METADATA  # 80


class LibvirtThread:
    """Owns one libvirt connection and one thread; ``run(fn)`` calls ``fn(conn)`` there."""

    def __init__(self, uri: str, *, call_timeout: float = 120.0):
        self.uri = uri
        self.call_timeout = call_timeout
        self._conn: libvirt.virConnect | None = None
        self._thread_id: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="libvirt", initializer=self._mark)
        self._closed = False

    def _mark(self) -> None:
        self._thread_id = threading.get_ident()

    def _connection(self) -> libvirt.virConnect:
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
            log.info("libvirt connection to %s lost: reconnecting", self.uri)
            self._conn = None
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as err:
            raise ProviderError(f"cannot connect to libvirt at {self.uri}: {err}") from err
        return self._conn

    def run(self, fn: Callable[[libvirt.virConnect], T], *, timeout: float | None = None) -> T:
        """``fn(conn)`` on the libvirt thread; its exceptions are re-raised here."""
        if self._closed:
            raise ProviderError("the libvirt provider is closed")
        if threading.get_ident() == self._thread_id:  # already on it (a nested call)
            return fn(self._connection())
        future = self._executor.submit(lambda: fn(self._connection()))
        wait = self.call_timeout if timeout is None else timeout
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            raise ProviderError(
                f"libvirt ({self.uri}) did not answer within {wait:.0f} s ({getattr(fn, '__name__', 'call')})"
            ) from None

    def close(self) -> None:
        if self._closed:
            return

        def _close(_conn: object) -> None:
            if self._conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
                self._conn = None

        try:
            if self._conn is not None:
                self.run(_close, timeout=10)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)


def error_code(err: BaseException) -> int | None:
    return err.get_error_code() if isinstance(err, libvirt.libvirtError) else None
