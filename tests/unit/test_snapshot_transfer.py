"""lab.snapshot_transfer: a snapshot goes from one workspace to another as a tar stream; the
receiver keeps only a whole, verified copy of this very snapshot (root-only, holes kept), and
refuses a cut stream, a link, a path out or another snapshot of the same name, leaving nothing."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import snapshot_transfer as transfer
from lab import snapshots as store
from lab.errors import TopologyError
from lab.settings import get_settings
from tests.unit.test_snapshot_store import make


def make_sparse() -> Path:
    """Snapshot 'one' of lab1 whose memory file is 4 KiB of data, then 3 MiB of zeros."""
    staging = store.start_staging("lab1", "one")
    (staging / "vms" / "v1").mkdir(parents=True)
    (staging / "vms" / "v1" / "memory.save").write_bytes(os.urandom(4096) + bytes(3 << 20))
    (staging / "topology.yml").write_text("name: lab1\n")
    manifest = store.Manifest(lab_id="lab1", name="one", created_at="2026-12-07T13:00:00+00:00", host="h",
                              nodes=[store.SnapshotNode(name="v1", kind="mini-ios", provider="libvirt")], files={})
    return store.finish_staging(staging, manifest)


def use_workspace(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(path))
    get_settings.cache_clear()


@pytest.fixture
def sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[bytes]:
    """The stream of snapshot 'one' of lab1 from a first workspace; the test then runs in a second."""
    use_workspace(tmp_path / "source", monkeypatch)
    make_sparse()
    out = io.BytesIO()
    transfer.send("lab1", "one", out)
    use_workspace(tmp_path / "destination", monkeypatch)
    yield out.getvalue()
    get_settings.cache_clear()


def test_a_snapshot_arrives_whole_root_only_and_sparse(sent: bytes) -> None:
    result = transfer.receive("lab1", "one", io.BytesIO(sent))
    assert result["copied"] is True
    folder, manifest = store.verify("lab1", "one")
    assert set(manifest.files) == {"vms/v1/memory.save", "topology.yml"}
    for path in [folder, *folder.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    memory = folder / "vms" / "v1" / "memory.save"
    assert memory.stat().st_blocks * 512 <= 1 << 20  # the zeros stayed holes (3 MiB of them)
    assert transfer.receive("lab1", "one", io.BytesIO(sent))["copied"] is False  # the same one: kept


def test_a_cut_stream_leaves_nothing(sent: bytes) -> None:
    with pytest.raises(store.SnapshotError, match="not whole|cut short"):
        transfer.receive("lab1", "one", io.BytesIO(sent[: len(sent) // 2]))
    assert not (store.lab_snapshots_dir("lab1") / "one").exists()
    assert not transfer.incoming_dir("lab1", "one").exists()


def test_a_damaged_file_is_refused_by_its_checksum(sent: bytes) -> None:
    damaged = bytearray(sent)
    at = damaged.index(b"name: lab1")
    damaged[at:at + 10] = b"name: labX"
    with pytest.raises(store.SnapshotError, match="topology.yml: its sha256"):
        transfer.receive("lab1", "one", io.BytesIO(bytes(damaged)))
    assert not (store.lab_snapshots_dir("lab1") / "one").exists()


@pytest.mark.parametrize("member", ["../escape", "/etc/x", "vms/../../x", "link"])
def test_links_and_paths_out_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member: str) -> None:
    use_workspace(tmp_path, monkeypatch)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(store.SnapshotError, match="not a file of a snapshot"):
        transfer.receive("lab1", "one", io.BytesIO(out.getvalue()))
    assert not any(p for p in tmp_path.rglob("*") if p.name in ("escape", "x"))
    get_settings.cache_clear()


def test_another_snapshot_of_that_name_is_refused(sent: bytes) -> None:
    make()  # a different 'one' here (other random bytes)
    with pytest.raises(store.SnapshotError, match="already has another snapshot"):
        transfer.receive("lab1", "one", io.BytesIO(sent))


def test_names_are_checked_before_anything_is_read(sent: bytes) -> None:
    with pytest.raises(TopologyError, match="invalid snapshot name"):
        transfer.receive("lab1", "../one", io.BytesIO(sent))
    assert not store.snapshots_root().exists()


def test_a_damaged_snapshot_is_not_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_workspace(tmp_path, monkeypatch)
    folder = make()
    os.truncate(folder / "vms" / "v1" / "memory.save", 10)
    with pytest.raises(store.SnapshotError, match="truncated"):
        transfer.send("lab1", "one", io.BytesIO())
    get_settings.cache_clear()
