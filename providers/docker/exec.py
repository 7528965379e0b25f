"""Commands in containers: exec with a deadline, and the vendor readiness checks.

docker exec has no timeout of its own: the exec's output is read in a worker thread and,
when the deadline passes, the exec's process is killed (it runs on this host: its PID is
a host PID, checked to belong to the container before the signal is sent).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker import APIClient

from lab.config_errors import ConfigError
from lab.errors import ProviderError
from providers.limits import engine_bound
from vendors.model import Readiness, ReadinessMethod

log = logging.getLogger("archetype.docker")

DOCKER_ENGINE = "docker"  # the name of dockerd's bound in providers.limits
LOG_TAIL = 1000  # log lines a log_pattern check reads
EXIT_LOG_LINES = 20  # log lines quoted when a container exits before it is ready


class ContainerNotRunningError(ProviderError):
    """The container exists but is not running (exited, created, paused)."""


class ContainerMissingError(ProviderError):
    """No container of that name."""


class ConfigNotAppliedError(ProviderError):
    """The image gave up applying the node's startup-config (its failed marker): the node is
    never ready, and waiting or asking again would not change that."""

    transient = False


@dataclass(frozen=True)
class ExecOutcome:
    exit_code: int | None  # None: the deadline passed and the command was killed
    output: str
    seconds: float


def _decode(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")


def run_exec(
    api: APIClient, container: str, argv: Sequence[str], timeout: float, *, kill_local: bool = True
) -> ExecOutcome:
    """Run ``argv`` (no shell) in ``container``; stdout and stderr together.

    Raises ``ContainerMissingError`` / ``ContainerNotRunningError``; a command that outlives
    ``timeout`` is killed and reported with ``exit_code=None`` and the output it gave so far.
    Holds a slot of the docker engine's bound (``providers.limits``) while it runs.
    """
    with engine_bound(DOCKER_ENGINE).slot():
        return _run_exec(api, container, argv, timeout, kill_local=kill_local)


def _run_exec(api: APIClient, container: str, argv: Sequence[str], timeout: float, *, kill_local: bool) -> ExecOutcome:
    started = time.monotonic()
    try:
        exec_id = api.exec_create(container, list(argv), stdout=True, stderr=True)["Id"]
    except docker.errors.NotFound as err:
        raise ContainerMissingError(f"container {container} does not exist") from err
    except docker.errors.APIError as err:
        if err.status_code == 409:  # "Container ... is not running" / "is paused"
            raise ContainerNotRunningError(
                f"container {container} is not running: {err.explanation}"
            ) from err
        raise ProviderError(
            f"container {container}: cannot exec {list(argv)}: {err.explanation or err}"
        ) from err

    chunks: list[bytes] = []
    failure: list[BaseException] = []

    def pump() -> None:
        try:
            for chunk in api.exec_start(exec_id, stream=True):
                chunks.append(chunk)
        except Exception as err:  # noqa: BLE001 - reported by the caller's thread
            failure.append(err)

    worker = threading.Thread(target=pump, name=f"exec:{container}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        if kill_local:
            _kill_exec(api, exec_id)
        worker.join(1.0)
        return ExecOutcome(None, _decode(chunks), time.monotonic() - started)
    if failure:
        raise ProviderError(f"container {container}: exec {list(argv)} failed: {failure[0]}") from failure[0]
    return ExecOutcome(_exit_code(api, exec_id), _decode(chunks), time.monotonic() - started)


def _exit_code(api: APIClient, exec_id: str) -> int:
    """The exec's exit code. dockerd may close the output stream a moment before it
    records the code (inspect says Running, ExitCode null): ask again briefly."""
    for _ in range(50):
        info = api.exec_inspect(exec_id)
        if info.get("ExitCode") is not None and not info.get("Running"):
            return int(info["ExitCode"])
        time.sleep(0.02)
    return -1  # finished (its output ended) but dockerd never told how


def _kill_exec(api: APIClient, exec_id: str) -> None:
    """Kill a timed-out exec's process, only if its PID is really in the container's cgroup."""
    try:
        info = api.exec_inspect(exec_id)
    except docker.errors.APIError:
        return
    pid, container_id = info.get("Pid") or 0, info.get("ContainerID") or ""
    if not info.get("Running") or pid <= 1 or not container_id:
        return
    try:
        if container_id not in Path(f"/proc/{pid}/cgroup").read_text():
            return
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
    log.warning(
        "killed exec %s (pid %d) in container %s after its timeout", exec_id[:12], pid, container_id[:12]
    )


def last_log_lines(api: APIClient, container: str, lines: int = EXIT_LOG_LINES) -> str:
    try:
        return api.logs(container, stdout=True, stderr=True, tail=lines).decode("utf-8", errors="replace")
    except docker.errors.APIError:
        return ""


def exited_error(api: APIClient, node: str, container: str) -> ProviderError:
    """The error for a container that stopped before it was ready: with its last log lines."""
    try:
        state = api.inspect_container(container)["State"]
        status = f"{state.get('Status')}, exit code {state.get('ExitCode')}"
        if state.get("Error"):
            status += f", {state['Error']}"
    except docker.errors.NotFound:
        return ProviderError(f"node {node}: container {container} disappeared before it was ready")
    logs = last_log_lines(api, container).strip() or "(no output)"
    return ProviderError(
        f"node {node}: container {container} is not running ({status}); last log lines:\n{logs}"
    )


def wait_until_ready(
    api: APIClient, node: str, container: str, readiness: Readiness, timeout: float, command_timeout: float
) -> float:
    """Poll the vendor's readiness check every ``readiness.interval``; return seconds waited."""
    started = time.monotonic()
    if readiness.method is ReadinessMethod.NONE:
        return 0.0
    if readiness.method not in (ReadinessMethod.LOG_PATTERN, ReadinessMethod.CLI_PROBE):
        raise ProviderError(
            f"node {node}: readiness method {readiness.method} is not available for containers"
        )
    deadline = started + timeout
    pattern = re.compile(readiness.pattern, re.MULTILINE) if readiness.pattern else None
    last = ""
    with _StartingMarker(api, container, readiness.starting_marker, readiness.failed_marker) as marker:
        while True:
            if marker.present() and marker.failed():
                raise _config_failed(api, node, container, readiness, command_timeout)
            ready, last = (
                (False, marker.shown)
                if marker.present()
                else _check(api, node, container, readiness, pattern, deadline, command_timeout)
            )
            if ready:
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise _not_ready(node, readiness, timeout, last)
            time.sleep(max(0.0, min(readiness.interval, deadline - time.monotonic())))


class _StartingMarker:
    """The image's starting marker (``Readiness.starting_marker``) looked up from the host
    through the container's root, ``/proc/PID/root``: a stat where a probe is an exec. The
    lookup goes through a descriptor of ``/proc/PID``, so a container that stopped (its PID
    free for reuse) is never mistaken for another process: the lookup fails and the probe
    decides, as it does when there is no marker, no PID, or the host cannot see it. Only
    existence is read; a marker path through a symlink in the container is not followed."""

    def __init__(self, api: APIClient, container: str, path: str | None, failed_path: str | None = None) -> None:
        self._fd: int | None = None
        self._path = f"root{path}" if path else ""
        self._failed_path = f"root{failed_path}" if failed_path else ""
        self.shown = f"(starting: {path} is still there)"
        if path:
            self._fd = _open_process_folder(api, container)

    def present(self) -> bool:
        return self._exists(self._path)

    def failed(self) -> bool:
        """The image's failed marker is there: it gave up applying its config."""
        return bool(self._failed_path) and self._exists(self._failed_path)

    def _exists(self, path: str) -> bool:
        if self._fd is None:
            return False
        try:
            os.stat(path, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError:  # the container's process is gone (ESRCH), or not ours to see
            self.close()
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> _StartingMarker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _check(
    api: APIClient,
    node: str,
    container: str,
    readiness: Readiness,
    pattern: re.Pattern[str] | None,
    deadline: float,
    command_timeout: float,
) -> tuple[bool, str]:
    """One readiness check: (ready, what it saw)."""
    if readiness.method is ReadinessMethod.LOG_PATTERN:
        assert pattern is not None
        return _log_matches(api, node, container, pattern)
    assert readiness.command is not None
    remaining = max(0.5, deadline - time.monotonic())
    return _probe(api, node, container, readiness.command, pattern, min(command_timeout, remaining))


def _config_failed(
    api: APIClient, node: str, container: str, readiness: Readiness, command_timeout: float
) -> ConfigNotAppliedError:
    """The error of a node whose image gave up applying its config: the reason it wrote in its
    failed marker. Read through exec, in the container's own root: a path under
    /proc/PID/root could lead out of it through a symlink the image made."""
    assert readiness.failed_marker is not None
    try:
        outcome = run_exec(api, container, ["cat", readiness.failed_marker], command_timeout)
        reason = outcome.output.strip() if outcome.exit_code == 0 else ""
    except ProviderError:
        reason = ""
    if not reason:
        reason = last_log_lines(api, container).strip() or "(no reason given)"
    return ConfigNotAppliedError(f"node {node}: its startup-config was not applied, never ready: {reason[-1500:]}")


_REFUSED_LINE = re.compile(r"^line (\d+): (%[^:]*):\s*(.*)$")  # vtysh's "line 4: % Unknown command: foo"
_NOT_APPLIED = "not applied: "


def device_config_errors(
    api: APIClient, container: str, readiness: Readiness, command_timeout: float
) -> list[ConfigError]:
    """The startup-config lines the device refused, from the file its image wrote once the rest
    was applied (``Readiness.config_errors_file``); [] when it has none. The file's size is
    looked up from the host first: an exec only when there is something to read."""
    path = readiness.config_errors_file
    if not path or not _nonempty(api, container, path):
        return []
    outcome = run_exec(api, container, ["cat", path], command_timeout)
    if outcome.exit_code != 0:
        return []
    errors = []
    for text in outcome.output.splitlines():
        if match := _REFUSED_LINE.match(text.strip()):
            errors.append(ConfigError(line=match[3].strip(), message=f"{match[2].strip()} (line {match[1]})"))
        elif text.startswith(_NOT_APPLIED):
            errors.append(ConfigError(line=text[len(_NOT_APPLIED):].strip(),
                                      message="not in the running config after the file was applied again"))
        elif text.strip():
            errors.append(ConfigError(line=text.strip(), message="refused"))
    return errors


def _nonempty(api: APIClient, container: str, path: str) -> bool:
    """A file of the container has content (looked up through /proc/PID/root, not followed if a
    symlink); True when the host cannot tell, so that the caller reads it."""
    fd = _open_process_folder(api, container)
    if fd is None:
        return True
    try:
        return os.stat(f"root{path}", dir_fd=fd, follow_symlinks=False).st_size > 0
    except FileNotFoundError:
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _open_process_folder(api: APIClient, container: str) -> int | None:
    """A descriptor of the container's /proc/PID folder, or None (not running, or not ours to
    see). Paths are then looked up relative to it: if the container stops, its PID may go to
    another process, but this descriptor never will."""
    try:
        pid = int(api.inspect_container(container)["State"].get("Pid") or 0)
        return os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY) if pid > 0 else None
    except (docker.errors.APIError, OSError):
        return None


def _not_ready(node: str, readiness: Readiness, timeout: float, last: str) -> ProviderError:
    what = (
        f"log pattern {readiness.pattern!r}"
        if readiness.method is ReadinessMethod.LOG_PATTERN
        else f"probe {list(readiness.command or [])}"
        + (f" matching {readiness.pattern!r}" if readiness.pattern else "")
    )
    return ProviderError(
        f"node {node}: not ready after {timeout:.0f} s ({what}); last output: {last.strip()[-800:] or '(none)'}"
    )


def _log_matches(api: APIClient, node: str, container: str, pattern: re.Pattern[str]) -> tuple[bool, str]:
    try:
        logs = api.logs(container, stdout=True, stderr=True, tail=LOG_TAIL).decode("utf-8", errors="replace")
    except docker.errors.NotFound as err:
        raise ProviderError(f"node {node}: container {container} does not exist") from err
    if pattern.search(logs):
        return True, logs
    try:
        running = api.inspect_container(container)["State"]["Running"]
    except docker.errors.NotFound as err:
        raise ProviderError(f"node {node}: container {container} does not exist") from err
    if not running:
        raise exited_error(api, node, container)
    return False, "\n".join(logs.splitlines()[-EXIT_LOG_LINES:])


def _probe(
    api: APIClient,
    node: str,
    container: str,
    command: Sequence[str],
    pattern: re.Pattern[str] | None,
    timeout: float,
) -> tuple[bool, str]:
    try:
        outcome = run_exec(api, container, command, timeout)
    except ContainerNotRunningError:
        raise exited_error(api, node, container) from None
    except ContainerMissingError as err:
        raise ProviderError(f"node {node}: container {container} does not exist") from err
    if outcome.exit_code is None:
        return False, f"(probe timed out after {timeout:.1f} s) {outcome.output}"
    ok = outcome.exit_code == 0 and (pattern is None or bool(pattern.search(outcome.output)))
    return ok, f"exit code {outcome.exit_code}: {outcome.output}"
