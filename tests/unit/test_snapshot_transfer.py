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


def test_a_nodes_folder_is_copied_plain_with_its_modes_and_owners_given_back(tmp_path: Path) -> None:
    source = tmp_path / "bound"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "frr.conf").write_text("router bgp 1\n")
    os.chmod(source / "sub" / "frr.conf", 0o640)
    os.chown(source / "sub" / "frr.conf", 100, 101)
    owners: transfer.Owners = {}
    assert transfer.copy_plain(source, tmp_path / "snap" / "dir", owners) == len("router bgp 1\n")
    copy = tmp_path / "snap" / "dir" / "sub" / "frr.conf"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and copy.stat().st_uid == 0  # root-only in the snapshot
    assert owners[copy] == (0o640, 100, 101)

    transfer.give_back({p.relative_to(tmp_path / "snap").as_posix(): list(o) for p, o in owners.items()},
                       tmp_path / "snap")
    assert (stat.S_IMODE(copy.stat().st_mode), copy.stat().st_uid, copy.stat().st_gid) == (0o640, 100, 101)
    with pytest.raises(store.SnapshotError, match="not a path inside"):
        transfer.give_back({"../x": [0o644, 0, 0]}, tmp_path / "snap")


def test_links_odd_names_and_devices_are_refused_not_followed(tmp_path: Path) -> None:
    source = tmp_path / "bound"
    source.mkdir()
    (source / "shadow").symlink_to("/etc/shadow")
    with pytest.raises(transfer.NodeFilesRefused, match="a link"):
        transfer.copy_plain(source, tmp_path / "snap", {})
    with pytest.raises(transfer.NodeFilesRefused, match="not a plain file"):
        transfer.copy_plain(source / "shadow", tmp_path / "snap2", {})
    (source / "shadow").unlink()
    (source / "a b").write_text("x")
    with pytest.raises(transfer.NodeFilesRefused, match="not a plain name"):
        transfer.copy_plain(source, tmp_path / "snap3", {})


def test_a_containers_archive_keeps_plain_files_only(tmp_path: Path) -> None:
    def archive(*members: tarfile.TarInfo) -> io.BytesIO:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for member in members:
                tar.addfile(member, io.BytesIO(b"zebra=yes\n") if member.isfile() else None)
        out.seek(0)
        return out

    daemons = tarfile.TarInfo("daemons")
    daemons.size, daemons.mode, daemons.uid, daemons.gid = 10, 0o640, 100, 101
    owners: transfer.Owners = {}
    assert transfer.extract_plain(archive(daemons), tmp_path / "files" / "daemons", "daemons", owners) == 10
    assert (tmp_path / "files" / "daemons").read_text() == "zebra=yes\n"
    assert owners == {tmp_path / "files" / "daemons": (0o640, 100, 101)}
    link = tarfile.TarInfo("flash/x")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    with pytest.raises(transfer.NodeFilesRefused, match="a link or device"):
        transfer.extract_plain(archive(link), tmp_path / "flash", "flash", {})
    other = tarfile.TarInfo("elsewhere")
    other.size = 10
    with pytest.raises(transfer.NodeFilesRefused, match="not a plain name"):
        transfer.extract_plain(archive(other), tmp_path / "y", "daemons", {})
