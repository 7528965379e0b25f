"""A snapshot carried from one host's workspace to another's, as one tar stream (the sender's
stdout piped into the receiver's stdin: ``archetype snapshot-send`` on the host that has it,
``archetype snapshot-receive`` on the one that restores it, each through the host's access).

The sender checks the snapshot against its manifest before a byte leaves. The receiver trusts
nothing of the stream: only plain files and folders with the snapshot's own path form, none
larger than the bound, written root-only into a hidden staging folder of its own workspace;
then the whole is checked against its manifest (this lab, this name, every size and sha256)
and renamed into place. A stream cut or damaged half-way leaves nothing. Plain Python.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from lab import snapshots as store
from lab.errors import ArchetypeError
from lab.private import FILE_MODE, private_dir

MAX_FILE_BYTES = 64 << 30  # a VM's memory or disk copy: far below, a stream claiming more is refused


def send(lab_id: str, name: str, out: BinaryIO) -> int:
    """Write the snapshot (checked first) to ``out`` as a tar stream; its size in bytes."""
    folder, manifest = store.verify(lab_id, name)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in [store.MANIFEST, *sorted(manifest.files)]:
            info = tar.gettarinfo(str(folder / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(folder / rel, "rb") as handle:
                tar.addfile(info, handle)
    return sum(e.size for e in manifest.files.values())


def incoming_dir(lab_id: str, name: str) -> Path:
    folder = store.snapshot_dir(lab_id, name)
    return folder.parent / f".{name}.incoming"


def receive(lab_id: str, name: str, stream: BinaryIO) -> dict[str, object]:
    """Read a snapshot's tar stream into this workspace as ``snapshots/<lab>/<name>/``.

    An identical snapshot already here (the same manifest) is kept and the stream read to its
    end; another one of that name is refused. SnapshotError, with nothing left, when the
    stream is not this snapshot whole."""
    store.check_names(lab_id, name)
    final = store.snapshot_dir(lab_id, name)
    staging = incoming_dir(lab_id, name)
    if staging.exists():  # an earlier copy died half-way
        shutil.rmtree(staging)
    private_dir(staging.parent)
    staging.mkdir(mode=0o700)
    os.chmod(staging, 0o700)
    try:
        _unpack(stream, staging)
        _, manifest = store.verify_folder(staging, lab_id, name)
        copied = _into_place(staging, final, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"lab_id": lab_id, "name": name, "path": str(final), "copied": copied,
            "size_bytes": sum(e.size for e in manifest.files.values())}


def _into_place(staging: Path, final: Path, manifest: store.Manifest) -> bool:
    """Rename the received copy in; False when the very same snapshot is here already."""
    if not final.exists():
        os.rename(staging, final)
        return True
    _, present = store.read_manifest(manifest.lab_id, manifest.name)
    if present.files != manifest.files:
        raise store.SnapshotError(f"lab {manifest.lab_id} already has another snapshot {manifest.name!r} on this "
                                  f"host ({final}): delete it there first")
    shutil.rmtree(staging)
    return False


def _unpack(stream: BinaryIO, staging: Path) -> None:
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = member.name
                if not member.isfile() or not _plain(rel) or rel in seen:
                    raise store.SnapshotError(f"the snapshot stream holds {rel!r} ({_type_of(member)}): not a file "
                                              "of a snapshot: refused")
                if member.size > MAX_FILE_BYTES:
                    raise store.SnapshotError(f"the snapshot stream's {rel} claims {member.size} bytes: refused")
                seen.add(rel)
                source = tar.extractfile(member)
                if source is None:
                    raise store.SnapshotError(f"the snapshot stream's {rel}: no content")
                _write_sparse(source, staging.joinpath(*PurePosixPath(rel).parts), member.size)
    except tarfile.TarError as err:
        raise store.SnapshotError(f"the snapshot stream is not whole (cut or damaged): {err}") from None


def _plain(rel: str) -> bool:
    return rel == store.MANIFEST or store.safe_relative(rel)


def _type_of(member: tarfile.TarInfo) -> str:
    return "a file" if member.isfile() else "a folder" if member.isdir() else "a link or device"


def _write_sparse(source: BinaryIO, target: Path, size: int) -> None:
    """Write root-only; blocks of zeros stay holes (a VM's disk copy is mostly zeros)."""
    private_dir(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        written = 0
        while block := source.read(store.CHUNK):
            if block.count(0) == len(block):
                out.seek(len(block), os.SEEK_CUR)
            else:
                out.write(block)
            written += len(block)
        if written != size:
            raise store.SnapshotError(f"the snapshot stream's {target.name}: {written} bytes of {size}: cut short")
        out.truncate(size)


# A node's own files (its binds' sources, its kind's files) into a snapshot --------------------

MAX_NODE_FILES_BYTES = 512 << 20  # a node's binds and kind files, in all: configs, not disks


class NodeFilesRefused(ArchetypeError):
    """A node's file cannot go into a snapshot as it is (a link, a device, an odd name, too big)."""


Owners = dict[Path, tuple[int, int, int]]  # a copy -> the original's (mode, uid, gid)


def extract_plain(stream: BinaryIO, target: Path, top: str, owners: Owners) -> int:
    """Extract a tar stream of ``top`` (a file, or a folder and what it holds) to ``target``,
    root-only: plain files and folders only, each name of a snapshot's form; each one's mode
    and owner go to ``owners`` (a restore gives them back). Bytes written."""
    written = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not parts or parts[0] != top or not all(store.PART_RE.match(p) for p in parts[1:]):
                raise NodeFilesRefused(f"{member.name!r}: not a plain name (letters, digits, '_', '.', '-')")
            path = target.joinpath(*parts[1:])
            owners[path] = (member.mode & 0o777, member.uid, member.gid)
            if member.isdir():
                private_dir(path)
            elif member.isfile():
                written += member.size
                if written > MAX_NODE_FILES_BYTES:
                    raise NodeFilesRefused(f"{member.name}: more than {MAX_NODE_FILES_BYTES >> 20} MiB of files")
                source = tar.extractfile(member)
                if source is None:
                    raise NodeFilesRefused(f"{member.name}: no content")
                _write_sparse(source, path, member.size)
            else:
                raise NodeFilesRefused(f"{member.name}: {_type_of(member)}, which a snapshot does not keep")
    return written


def copy_plain(source: Path, target: Path, owners: Owners) -> int:
    """Copy a host file or folder into a snapshot, root-only: plain files and folders with
    plain names only (a link is refused, not followed); each one's mode and owner go to
    ``owners``. Bytes copied."""
    if source.is_symlink() or not (source.is_file() or source.is_dir()):
        raise NodeFilesRefused(f"{source}: not a plain file or folder")
    _own(owners, source, target)
    if source.is_file():
        store.private_copy(source, target)
        return source.stat().st_size
    private_dir(target)
    copied = 0
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not all(store.PART_RE.match(p) for p in rel.parts):
            raise NodeFilesRefused(f"{path}: not a plain name (letters, digits, '_', '.', '-')")
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise NodeFilesRefused(f"{path}: a link or a device, which a snapshot does not keep")
        _own(owners, path, target / rel)
        if path.is_dir():
            private_dir(target / rel)
            continue
        copied += path.stat().st_size
        if copied > MAX_NODE_FILES_BYTES:
            raise NodeFilesRefused(f"{source}: more than {MAX_NODE_FILES_BYTES >> 20} MiB of files")
        store.private_copy(path, target / rel)
    return copied


def _own(owners: Owners, source: Path, target: Path) -> None:
    status = source.stat()
    owners[target] = (status.st_mode & 0o777, status.st_uid, status.st_gid)


def give_back(owners: dict[str, list[int]], folder: Path) -> None:
    """Modes and owners of a node's restored files (relative to ``folder``), as they were;
    no set-id bit ever."""
    for rel, (mode, uid, gid) in owners.items():
        if not store.safe_relative(rel):
            raise store.SnapshotError(f"owners: {rel!r} is not a path inside the snapshot")
        path = folder / rel
        if path.exists() and not path.is_symlink():
            os.chown(path, uid, gid)
            os.chmod(path, mode & 0o777)
