"""A lab's snapshots in the workspace: ``snapshots/<lab>/<name>/``, root-only, each with a
manifest (``manifest.json``) giving the size and sha256 of every file in it.

A snapshot is made in a hidden staging folder (``.<name>.partial``) and renamed into place
only once complete: a snapshot that exists is whole. Before anything is restored from it,
``verify`` checks every file against the manifest (size, sha256), refuses a file the
manifest does not list, a path that leaves the folder, a symlink, and a manifest of another
lab or name. Plain Python: no Prefect, no runtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field, ValidationError

from lab import names
from lab.errors import TopologyError
from lab.private import FILE_MODE, private_dir, write_private

FORMAT = 1
MANIFEST = "manifest.json"
OWNERS = "owners.json"  # the modes and owners of the nodes' files it keeps (binds/, files/)
NODE_FILES = ("binds/", "files/")
MAX_MANIFEST_BYTES = 1 << 20
# Snapshot names are lab ids' form: they become folder names and flow-run names.
NAME_RE = re.compile(names.LAB_ID_PATTERN)
# Relative paths a snapshot holds: plain names, no hidden files, no "..".
PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
CHUNK = 1 << 20


class SnapshotError(TopologyError):
    """A snapshot is missing, incomplete, corrupted or foreign: nothing was made from it.
    Invalid input, as a bad topology is (the CLI exits 2)."""

    def __init__(self, message: str):
        super().__init__([message])


class FileEntry(BaseModel):
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SnapshotNode(BaseModel):
    name: str
    kind: str
    provider: str  # "docker" | "libvirt"
    mgmt_ipv4: str | None = None


class Manifest(BaseModel):
    format: int = FORMAT
    lab_id: str
    name: str
    created_at: str
    host: str
    mgmt_ipv4_subnet: str | None = None
    nodes: list[SnapshotNode]
    files: dict[str, FileEntry]

    @property
    def vms(self) -> list[SnapshotNode]:
        return [n for n in self.nodes if n.provider == "libvirt"]

    @property
    def containers(self) -> list[SnapshotNode]:
        return [n for n in self.nodes if n.provider == "docker"]


# Names and folders -------------------------------------------------------------------------


def check_names(lab_id: str, name: str | None, field: str = "name") -> None:
    """Both names valid (they become paths): TopologyError naming each problem."""
    problems = []
    if not names.is_valid_lab_id(lab_id):
        problems.append(f"lab: invalid lab id {lab_id!r}")
    if name is not None and not NAME_RE.match(name):
        problems.append(f"{field}: invalid snapshot name {name!r} (as a lab id: {names.LAB_ID_PATTERN})")
    if problems:
        raise TopologyError(problems)


def default_name(now: float | None = None) -> str:
    """``s20261207-131502``: a valid name, sorting by time."""
    return "s" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))


def snapshots_root() -> Path:
    return names.workspace() / "snapshots"


def lab_snapshots_dir(lab_id: str) -> Path:
    return snapshots_root() / lab_id


def snapshot_dir(lab_id: str, name: str) -> Path:
    check_names(lab_id, name)
    return lab_snapshots_dir(lab_id) / name


def staging_dir(lab_id: str, name: str) -> Path:
    """Where a snapshot is made before it is renamed into place (hidden: never listed)."""
    folder = snapshot_dir(lab_id, name)
    return folder.parent / f".{name}.partial"


def start_staging(lab_id: str, name: str) -> Path:
    """A fresh, empty, root-only staging folder; SnapshotError if the snapshot exists."""
    final = snapshot_dir(lab_id, name)
    if final.exists():
        raise SnapshotError(f"lab {lab_id} already has a snapshot {name!r} ({final}): delete it or choose another name")
    staging = staging_dir(lab_id, name)
    if staging.exists():  # an earlier snapshot run died half-way
        shutil.rmtree(staging)
    private_dir(staging.parent)
    staging.mkdir(mode=0o700)
    os.chmod(staging, 0o700)
    return staging


def finish_staging(staging: Path, manifest: Manifest) -> Path:
    """Write the manifest over every file of ``staging`` and rename it into place."""
    manifest.files = {rel: entry for rel, entry in _checksums(staging).items() if rel != MANIFEST}
    write_private(staging / MANIFEST, manifest.model_dump_json(indent=2))
    final = snapshot_dir(manifest.lab_id, manifest.name)
    os.rename(staging, final)  # atomic: a snapshot folder that exists is complete
    return final


def abandon_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def private_copy(source: Path, target: Path) -> None:
    """Copy a file root-only (sparse files stay sparse: a VM disk is mostly holes)."""
    private_dir(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)
    _copy_sparse(source, target)
    os.chmod(target, FILE_MODE)


def _copy_sparse(source: Path, target: Path) -> None:
    """Copy data regions only (SEEK_DATA/SEEK_HOLE); the holes stay holes."""
    with open(source, "rb") as src, open(target, "r+b") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            src.seek(start)
            dst.seek(start)
            left = end - start
            while left > 0:
                block = src.read(min(CHUNK, left))
                if not block:
                    break
                dst.write(block)
                left -= len(block)
            offset = end
        dst.truncate(size)


# Checksums and verification ------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _checksums(folder: Path) -> dict[str, FileEntry]:
    entries = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        entries[path.relative_to(folder).as_posix()] = FileEntry(size=path.stat().st_size, sha256=sha256_of(path))
    return entries


def safe_relative(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(parts) and not PurePosixPath(rel).is_absolute() and all(PART_RE.match(p) for p in parts)


def read_manifest(lab_id: str, name: str) -> tuple[Path, Manifest]:
    """The snapshot's folder and manifest, the manifest checked to be this snapshot's (not
    its files: ``verify`` does that)."""
    return _manifest_in(snapshot_dir(lab_id, name), lab_id, name)


def _manifest_in(folder: Path, lab_id: str, name: str) -> tuple[Path, Manifest]:
    if folder.is_symlink() or not folder.is_dir():
        raise SnapshotError(f"lab {lab_id} has no snapshot {name!r} (archetype snapshots {lab_id})")
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise SnapshotError(f"snapshot {name} of lab {lab_id}: no {MANIFEST}: not a snapshot, or an incomplete one")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise SnapshotError(f"snapshot {name} of lab {lab_id}: {MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except ValidationError as err:
        raise SnapshotError(f"snapshot {name} of lab {lab_id}: {MANIFEST} is not a snapshot manifest: "
                            f"{err.error_count()} problem(s), first: {err.errors()[0]['msg']}") from None
    problems = []
    if manifest.format != FORMAT:
        problems.append(f"format {manifest.format} (this Archetype reads {FORMAT})")
    if (manifest.lab_id, manifest.name) != (lab_id, name):
        problems.append(f"it is snapshot {manifest.name!r} of lab {manifest.lab_id!r}, not {name!r} of {lab_id!r}")
    for node in manifest.nodes:
        if not names.is_valid_node_name(node.name) or node.provider not in ("docker", "libvirt"):
            problems.append(f"node {node.name!r} ({node.provider!r}): not a valid node")
    bad = [rel for rel in manifest.files if not safe_relative(rel)]
    problems += [f"file {rel!r}: not a plain relative path inside the snapshot" for rel in bad]
    if problems:
        raise SnapshotError(f"snapshot {name} of lab {lab_id}: {MANIFEST} refused: " + "; ".join(problems))
    return folder, manifest


def verify(lab_id: str, name: str) -> tuple[Path, Manifest]:
    """Every file of the snapshot as its manifest says (size, then sha256), no file it does
    not list, no symlink: SnapshotError listing every problem. Nothing is changed."""
    return verify_folder(snapshot_dir(lab_id, name), lab_id, name)


def verify_folder(folder: Path, lab_id: str, name: str) -> tuple[Path, Manifest]:
    folder, manifest = _manifest_in(folder, lab_id, name)
    problems = []
    present = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            problems.append(f"{rel}: a symlink")
        elif path.is_file() and rel != MANIFEST:
            present[rel] = path
    for rel in sorted(set(present) - set(manifest.files)):
        problems.append(f"{rel}: a file the manifest does not list (foreign)")
    for rel, entry in sorted(manifest.files.items()):
        path = present.get(rel)
        if path is None:
            problems.append(f"{rel}: missing")
            continue
        size = path.stat().st_size
        if size != entry.size:
            problems.append(f"{rel}: {size} bytes, the manifest says {entry.size} (truncated or replaced)")
        elif sha256_of(path) != entry.sha256:
            problems.append(f"{rel}: its sha256 is not the manifest's (corrupted or replaced)")
    if problems:
        raise SnapshotError(f"snapshot {name} of lab {lab_id} is damaged, nothing was restored: " + "; ".join(problems))
    return folder, manifest


# Listing and deleting --------------------------------------------------------------------------


def list_snapshots(lab_id: str | None = None) -> list[dict[str, object]]:
    """Every complete snapshot (of one lab, or all): lab, name, created, age, size, nodes."""
    if lab_id is not None:
        check_names(lab_id, None)
    root = snapshots_root()
    labs = [root / lab_id] if lab_id else sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    found = []
    now = datetime.now(UTC)
    for lab_folder in labs:
        if not lab_folder.is_dir() or not names.is_valid_lab_id(lab_folder.name):
            continue
        for folder in sorted(p for p in lab_folder.iterdir() if p.is_dir() and NAME_RE.match(p.name)):
            try:
                _, manifest = read_manifest(lab_folder.name, folder.name)
            except SnapshotError:
                continue
            created = datetime.fromisoformat(manifest.created_at)
            found.append({
                "lab_id": manifest.lab_id, "name": manifest.name, "created_at": manifest.created_at,
                "age_seconds": round((now - created).total_seconds()), "host": manifest.host,
                "size_bytes": sum(e.size for e in manifest.files.values()),
                "nodes": [n.name for n in manifest.nodes], "path": str(folder),
            })
    return found


def delete_snapshot(lab_id: str, name: str) -> Path:
    folder = snapshot_dir(lab_id, name)
    if folder.is_symlink() or not folder.is_dir():
        raise SnapshotError(f"lab {lab_id} has no snapshot {name!r}")
    shutil.rmtree(folder)
    with contextlib.suppress(OSError):  # the lab's folder goes with its last snapshot
        folder.parent.rmdir()
    return folder


def write_json(path: Path, data: object) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=True))
