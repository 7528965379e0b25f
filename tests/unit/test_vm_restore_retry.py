"""providers.libvirt.snapshots._restore_from: a restore from saved memory that libvirt could not
finish (its ovs-vsctl timed out on a loaded host) is tried again; the last failure is raised."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from providers.libvirt import snapshots


class Conn:
    def __init__(self, failures: int):
        self.failures, self.calls = failures, 0

    def restoreFlags(self, path: str, xml: str | None, flags: int) -> None:  # noqa: N802 - libvirt's name
        self.calls += 1
        if self.calls <= self.failures:
            raise libvirt.libvirtError("internal error: Unable to add port vnet0 to OVS bridge arch-ovs")


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots.time, "sleep", lambda seconds: None)


def test_a_failed_restore_is_tried_again() -> None:
    conn = Conn(failures=snapshots.RESTORE_TRIES - 1)
    snapshots._restore_from(conn, Path("/m"), None, "v1")  # type: ignore[arg-type]
    assert conn.calls == snapshots.RESTORE_TRIES


def test_the_last_failure_is_raised() -> None:
    conn = Conn(failures=snapshots.RESTORE_TRIES)
    with pytest.raises(libvirt.libvirtError, match="OVS bridge"):
        snapshots._restore_from(conn, Path("/m"), None, "v1")  # type: ignore[arg-type]
    assert conn.calls == snapshots.RESTORE_TRIES
