"""What the ``archetype`` entry point (``launch.py``) and the executor (``executor.py``)
share: the executor's files, the environment a command is compared on, and the messages
on its socket. Standard library only: every command imports it.

Messages: a 4-byte length, then JSON. The caller sends ``{argv, env, cwd, umask, root,
python}`` with its stdin, stdout and stderr attached (SCM_RIGHTS); the executor answers
``{refused}``, or ``{pid}`` (the child running the command) then ``{exit}`` or
``{signal}`` (the child was killed by it).
"""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path

DEFAULT_WORKSPACE = "/var/lib/archetype"  # lab.settings' default, read without pydantic
SERVER_STARTING = "starting the local Prefect server at {address} (once; `archetype server stop` ends it)"
_HEADER = struct.Struct("!I")


def apply_defaults(environ: os._Environ | dict[str, str]) -> None:
    """What every command's environment holds (the executor compares it with its own):
    Prefect's state with the host's labs, and no telemetry."""
    workspace = environ.get("ARCHETYPE_WORKSPACE") or DEFAULT_WORKSPACE
    environ.setdefault("PREFECT_HOME", str(Path(workspace) / "prefect"))
    environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    environ.setdefault("DO_NOT_TRACK", "1")


def socket_path(environ: os._Environ | dict[str, str]) -> Path:
    return Path(environ["PREFECT_HOME"]) / "executor.sock"


def record_path(home: Path) -> Path:
    """The running executor's pid (``archetype server stop`` ends it)."""
    return home / "executor.json"


def recorded_pid(home: Path) -> int | None:
    try:
        return int(json.loads(record_path(home).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_executor(home: Path, timeout: float = 10) -> int | None:
    """End the executor of the Prefect folder ``home`` (commands it runs finish); its pid,
    or None if none ran."""
    from lab.processes import alive, terminate

    pid = recorded_pid(home)
    if pid is None:
        return None
    record_path(home).unlink(missing_ok=True)
    if not alive(pid):
        return None
    terminate(pid, timeout=timeout)
    return pid


def connect(path: Path) -> socket.socket | None:
    """A connection to the executor listening on ``path``, or None (none, a stale socket, a
    path too long for AF_UNIX, not root)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        return None
    return connection


def code_root() -> Path:
    """The checkout (or installed tree) whose code this process runs."""
    return Path(__file__).resolve().parent.parent


def prefect_environment(environ: os._Environ | dict[str, str]) -> dict[str, str]:
    """The variables Prefect reads once, at import: a process serves only commands that
    have the same ones (any other variable is the command's own, applied in its child)."""
    return {k: v for k, v in environ.items() if k.startswith("PREFECT_")}


def send(connection: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(connection, [payload], fds)
        connection.sendall(payload[sent:])
    else:
        connection.sendall(payload)


def receive(connection: socket.socket, fds: list[int] | None = None) -> dict | None:
    """One message (None at the end of the stream); with ``fds``, the descriptors that came
    with it are appended to that list."""
    head = _read(connection, _HEADER.size, fds)
    if head is None:
        return None
    body = _read(connection, _HEADER.unpack(head)[0])
    return None if body is None else json.loads(body)


def _read(connection: socket.socket, size: int, fds: list[int] | None = None) -> bytes | None:
    data = b""
    while len(data) < size:
        if fds is not None and not data:
            chunk, received, _flags, _address = socket.recv_fds(connection, size, 8)
            fds.extend(received)
        else:
            chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
