"""lab.snapshots: a snapshot is staged and renamed into place whole; every file is checked
against the manifest before use (size, sha256), and anything the manifest does not vouch
for (a foreign file, a symlink, a path out, another lab's manifest) is refused."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import snapshots as store
from lab.errors import TopologyError
from lab.settings import get_settings


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def make(lab: str = "lab1", name: str = "one") -> Path:
    staging = store.start_staging(lab, name)
    (staging / "vms" / "v1").mkdir(parents=True)
    (staging / "vms" / "v1" / "memory.save").write_bytes(os.urandom(4096) + b"\0" * 8192)
    (staging / "topology.yml").write_text("name: lab1\n")
    manifest = store.Manifest(lab_id=lab, name=name, created_at="2026-12-07T13:00:00+00:00", host="h",
                              nodes=[store.SnapshotNode(name="v1", kind="mini-ios", provider="libvirt")], files={})
    return store.finish_staging(staging, manifest)


def test_a_snapshot_is_complete_once_it_exists_and_verifies() -> None:
    folder = make()
    assert not any(p.name.endswith(".partial") for p in folder.parent.iterdir())
    _, manifest = store.verify("lab1", "one")
    assert set(manifest.files) == {"vms/v1/memory.save", "topology.yml"}
    assert manifest.files["vms/v1/memory.save"].size == 12288
    assert [s["name"] for s in store.list_snapshots("lab1")] == ["one"]


def test_a_truncated_file_is_named() -> None:
    folder = make()
    os.truncate(folder / "vms" / "v1" / "memory.save", 100)
    with pytest.raises(store.SnapshotError, match=r"vms/v1/memory.save: 100 bytes, the manifest says 12288 \(truncated"):
        store.verify("lab1", "one")


def test_a_changed_file_of_the_same_size_fails_its_checksum() -> None:
    folder = make()
    (folder / "topology.yml").write_text("name: lab2\n")
    with pytest.raises(store.SnapshotError, match="topology.yml: its sha256"):
        store.verify("lab1", "one")


def test_foreign_files_symlinks_and_missing_files_are_refused() -> None:
    folder = make()
    (folder / "extra").write_text("x")
    (folder / "vms" / "link").symlink_to("/etc/passwd")
    (folder / "topology.yml").unlink()
    with pytest.raises(store.SnapshotError) as err:
        store.verify("lab1", "one")
    assert "extra: a file the manifest does not list" in str(err.value)
    assert "vms/link: a symlink" in str(err.value)
    assert "topology.yml: missing" in str(err.value)


def test_a_manifest_of_another_lab_or_with_a_path_out_is_refused() -> None:
    make("lab1", "one")
    folder = make("lab2", "one")
    other = store.snapshot_dir("lab1", "one") / store.MANIFEST
    other.write_text((folder / store.MANIFEST).read_text())
    with pytest.raises(store.SnapshotError, match="it is snapshot 'one' of lab 'lab2'"):
        store.verify("lab1", "one")
    manifest = json.loads((folder / store.MANIFEST).read_text())
    manifest["files"]["../../etc/passwd"] = {"size": 1, "sha256": "0" * 64}
    (folder / store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(store.SnapshotError, match="not a plain relative path"):
        store.verify("lab2", "one")


def test_names_are_checked_like_lab_ids() -> None:
    for bad in ("../x", "X", "a/b", "", "a" * 21):
        with pytest.raises(TopologyError):
            store.snapshot_dir("lab1", bad)
    assert store.NAME_RE.match(store.default_name())


def test_an_existing_snapshot_is_not_overwritten_and_delete_removes_it() -> None:
    make()
    with pytest.raises(store.SnapshotError, match="already has a snapshot"):
        store.start_staging("lab1", "one")
    store.delete_snapshot("lab1", "one")
    assert store.list_snapshots("lab1") == []


def test_copies_keep_holes_and_are_root_only(workspace: Path) -> None:
    source = workspace / "sparse"
    with open(source, "wb") as handle:
        handle.write(b"head")
        handle.seek(64 << 20)
        handle.write(b"tail")
    target = workspace / "copy" / "sparse"
    store.private_copy(source, target)
    assert target.read_bytes()[:4] == b"head" and target.stat().st_size == source.stat().st_size
    assert target.stat().st_blocks * 512 < 1 << 20  # the hole stayed a hole
    assert target.stat().st_mode & 0o777 == 0o600
