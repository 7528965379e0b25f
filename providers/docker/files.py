"""A container's files as a snapshot keeps them: what it binds from the host (its bind mounts,
as docker set them up at our deploy), and the files its kind says matter, copied out of it
(``get_archive``). Only plain files and folders with plain names are kept: a link, a device
or an odd name is refused with its path, nothing half-copied left behind by the caller."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

import docker

from lab import snapshot_transfer
from lab.errors import ProviderError


def bind_mounts(api: Any, container: str) -> dict[str, tuple[Path, bool]]:
    """The container's bind mounts: container path -> (host path, writable)."""
    try:
        info = api.inspect_container(container)
    except docker.errors.NotFound:
        raise ProviderError(f"no container {container}") from None
    return {m["Destination"]: (Path(m["Source"]), bool(m.get("RW"))) for m in info.get("Mounts", [])
            if m.get("Type") == "bind"}


def copy_out(api: Any, container: str, path: str, target: Path, owners: snapshot_transfer.Owners) -> bool:
    """Copy ``path`` (a file or folder) out of the container into ``target`` (root-only;
    modes and owners into ``owners``); False when the container has no such path."""
    try:
        stream, _stat = api.get_archive(container, path)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as err:
        raise ProviderError(f"{container}: cannot copy {path} out: {err.explanation or err}") from err
    reader = _ChunkReader(stream)
    try:
        snapshot_transfer.extract_plain(reader, target, PurePosixPath(path).name, owners)
    except tarfile.TarError as err:
        raise ProviderError(f"{container}: {path}: unreadable archive: {err}") from err
    return True


class _ChunkReader:
    """A file-like ``read`` over docker's iterator of chunks (tarfile's stream mode)."""

    def __init__(self, chunks: Any):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
