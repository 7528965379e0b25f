"""Impairment relays (``relay.py``): started detached, one per impaired link, and found again
by the record each leaves in the lab's folder (``labs/<lab>/relays/<key>.json``).

A relay is stopped by the pid in its record, and only once ``/proc/<pid>/cmdline`` shows it
is that link's relay (``--key <key>``): a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab import names
from lab.errors import NetworkError
from lab.state import LinkConditions

log = logging.getLogger(__name__)

RELAY_PROGRAM = Path(__file__).with_name("relay.py")
START_CHECK_SECONDS = 0.3  # a relay that cannot open its ports exits at once: looked for this long
STOP_GRACE_SECONDS = 3.0


def relay_key(lab_id: str, link_id: str) -> str:
    return hashlib.sha1(f"{lab_id}\0{link_id}".encode()).hexdigest()[:16]


def relays_dir(lab_id: str) -> Path:
    return names.lab_dir(lab_id) / "relays"


def _record_path(lab_id: str, link_id: str) -> Path:
    return relays_dir(lab_id) / f"{relay_key(lab_id, link_id)}.json"


def _log_path(lab_id: str, link_id: str) -> Path:
    return names.logs_dir(lab_id) / f"relay-{relay_key(lab_id, link_id)}.log"


def _is_relay(pid: int, key: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(RELAY_PROGRAM).encode() in argv and key.encode() in argv


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def relay_pid(lab_id: str, link_id: str) -> int | None:
    """The pid of the link's relay if it runs, else None."""
    record = _read_record(_record_path(lab_id, link_id))
    if record is None:
        return None
    pid = int(record.get("pid", 0))
    return pid if pid > 1 and _is_relay(pid, relay_key(lab_id, link_id)) else None


def relay_args(ports: tuple[str, str], conditions: LinkConditions, key: str) -> list[str]:
    return [
        sys.executable, str(RELAY_PROGRAM), "--a", ports[0], "--b", ports[1],
        "--delay-ms", f"{conditions.delay_ms or 0:g}", "--jitter-ms", f"{conditions.jitter_ms or 0:g}",
        "--loss", f"{conditions.loss_percent or 0:g}", "--rate-kbit", str(conditions.rate_kbit or 0), "--key", key,
    ]


def start_relay(lab_id: str, link_id: str, ports: tuple[str, str], conditions: LinkConditions) -> int:
    """(Re)start the link's relay between its two host ports; returns its pid."""
    stop_relay(lab_id, link_id)
    key = relay_key(lab_id, link_id)
    record, log_file = _record_path(lab_id, link_id), _log_path(lab_id, link_id)
    record.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as out:
        # Its own session: it outlives this process (a CLI run, a worker's flow run).
        process = subprocess.Popen(relay_args(ports, conditions, key), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=out, start_new_session=True, close_fds=True)
    time.sleep(START_CHECK_SECONDS)
    if process.poll() is not None:
        tail = log_file.read_text()[-500:] if log_file.exists() else ""
        raise NetworkError(f"lab {lab_id} link {link_id}: the impairment relay exited at once: {tail.strip()}")
    record.write_text(json.dumps({"pid": process.pid, "link": link_id, "ports": list(ports),
                                  "conditions": conditions.text()}))
    log.info("lab %s link %s: relay %d carries %s <-> %s (%s)", lab_id, link_id, process.pid, *ports,
             conditions.text())
    return process.pid


def stop_relay(lab_id: str, link_id: str) -> bool:
    """Stop the link's relay (if it runs) and forget it; True if one was stopped."""
    path = _record_path(lab_id, link_id)
    stopped = _stop(path)
    path.unlink(missing_ok=True)
    return stopped


def _stop(record_path: Path) -> bool:
    record = _read_record(record_path)
    if record is None:
        return False
    pid, key = int(record.get("pid", 0)), record_path.stem
    if pid <= 1 or not _is_relay(pid, key):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and _is_relay(pid, key):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child (this process started it): reap it
        time.sleep(0.05)
    if _is_relay(pid, key):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def stop_lab_relays(lab_id: str) -> list[str]:
    """Stop every relay of the lab (destroy, orphan cleanup); returns the links they carried."""
    folder = relays_dir(lab_id)
    stopped = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = _read_record(path) or {}
        if _stop(path):
            stopped.append(str(record.get("link", path.stem)))
        path.unlink(missing_ok=True)
    return stopped
