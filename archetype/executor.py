"""The warm executor: one process per host with Prefect, the flows and the providers
imported, that runs ``archetype`` commands for the command line (``archetype/launch.py``).

Why: on a 2-core host, a command that imports Prefect and the flows before any work pays
~2 s, and the local server's start ~5 s more on the first one (docs/performance.md). Here
a command is a ``fork()``: the child takes the caller's argv, environment, working folder,
umask and terminal (its stdin, stdout and stderr, passed over the socket), runs the same
CLI code as in-process, and reports its exit status as soon as the command is done; it
drains Prefect's log and event workers to the server after the caller has gone.

Trust (DESIGN.md, Security): the socket is 0600 in the workspace's Prefect folder (0700,
root only), and a caller must have this process's uid and its network and mount
namespaces (a simulated host's command is never run in the host's namespaces). The
command goes through the CLI's own checks, exactly as in-process. A caller that dies takes
its command with it (the child's whole process group is killed), as a killed in-process
command would.

Lifetime: one per Prefect folder (``$PREFECT_HOME``), started by the first flow-backed
command there (``launch.py``), with the local server when the commands use it (no
``PREFECT_API_URL``) and none answers. It ends with ``archetype server stop``
(``handoff.stop_executor``), when the code it runs changed on disk, when its socket is
removed (its folder went away), or after ``ARCHETYPE_EXECUTOR_IDLE_SECONDS`` without a
command; the next command starts a fresh one.

Files, in ``$PREFECT_HOME``: ``executor.sock``, ``executor.json`` (pid), ``executor.log``,
``executor.lock`` (one executor per folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import pkgutil
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path

from archetype import handoff

# Imported once here, so that no command pays for them: all of our code, and what Prefect
# imports lazily on the first flow run of a process (found by comparing sys.modules before
# and after one; without them a command's first flow took 1.1-1.2 s instead of 0.4 s).
LAZY_IMPORTS = (
    "prefect.flow_engine", "prefect.task_engine", "prefect.utilities.visualization", "prefect.concurrency.sync",
    "prefect.concurrency.services", "prefect._internal.states", "fastapi", "starlette.staticfiles",
    "anyio._backends._asyncio", "anyio.streams.tls", "opentelemetry.metrics", "opentelemetry._logs", "netrc",
    "pydantic.color", "rich._emoji_codes",
)
_CODE_SUFFIXES = (".py", ".yml")
_CODE_PACKAGES = ("archetype", "deployments", "flows", "lab", "providers", "tasks", "topology", "vendors")
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def log_path(home: Path) -> Path:
    return home / "executor.log"


def code_stamp(root: Path) -> int:
    """The newest modification time of the code this process runs (nanoseconds)."""
    newest = 0
    for package in _CODE_PACKAGES:
        for folder, _dirs, files in os.walk(root / package):
            for name in files:
                if name.endswith(_CODE_SUFFIXES):
                    with contextlib.suppress(OSError):
                        newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return newest


class Executor:
    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.root = handoff.code_root()
        self.stamp = code_stamp(self.root)
        self.prefect_env = handoff.prefect_environment(os.environ)
        self.namespaces = _namespaces(os.getpid())
        self.children: dict[int, socket.socket] = {}  # pid -> its caller's connection
        self.stopping = False

    def serve(self, path: Path, idle_seconds: float) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        last_command = time.monotonic()
        while not self.stopping:
            self._reap()
            with contextlib.suppress(InterruptedError):
                readable, _, _ = select.select([self.listener], [], [], 0.5)
                if readable:
                    self._accept()
                    last_command = time.monotonic()
            idle = not self.children and idle_seconds and time.monotonic() - last_command > idle_seconds
            if idle or not path.exists():
                _log("idle: stopping" if idle else f"{path} is gone: stopping")
                self.stopping = True
        self.listener.close()

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        connection.settimeout(10)  # a caller that connects and says nothing holds no one up
        fds: list[int] = []
        try:
            request = handoff.receive(connection, fds)
            if request is None:  # a probe (a starting executor's): nothing to run
                connection.close()
                return
            refusal = self._refusal(connection, request)
            if refusal is not None:
                _log(f"refused: {refusal}")
                handoff.send(connection, {"refused": refusal})
                connection.close()
                return
            connection.settimeout(None)
            pid = os.fork()
            if pid == 0:
                for other in (self.listener, *self.children.values()):  # not this command's
                    other.close()
                _run_child(connection, request, fds)  # never returns
            self.children[pid] = connection
            _log(f"pid {pid}: archetype {' '.join(request['argv'])[:200]}")
        except OSError as err:
            _log(f"a request failed: {err}")
            connection.close()
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _refusal(self, connection: socket.socket, request: dict) -> str | None:
        """Why this process must not run the request (None: it may)."""
        peer_pid, peer_uid, _ = _PEERCRED.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                       _PEERCRED.size))
        if peer_uid != os.getuid():
            return f"uid {peer_uid} is not this executor's"
        if _namespaces(peer_pid) != self.namespaces:
            return "the caller runs in other namespaces"
        if (request.get("root"), request.get("python")) != (str(self.root), sys.executable):
            return "the caller runs another checkout or interpreter"
        if handoff.prefect_environment(request.get("env", {})) != self.prefect_env:
            return "the caller's PREFECT_ variables differ"
        if code_stamp(self.root) != self.stamp:
            self.stopping = True  # the next command starts an executor with the new code
            return "the code changed since this executor started"
        return None

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            if connection is None:
                continue
            if os.WIFSIGNALED(status):  # killed before it could report: the caller ends the same way
                with contextlib.suppress(OSError):
                    handoff.send(connection, {"signal": os.WTERMSIG(status)})
                _log(f"pid {pid}: killed by signal {os.WTERMSIG(status)}")
            connection.close()


def _run_child(connection: socket.socket, request: dict, fds: list[int]) -> None:
    """The command, in the forked child: the caller's terminal, folder, umask and
    environment, then the CLI as if it were the caller's own process."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own group: a caller that dies takes it and its subprocesses
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _take_terminal(fds)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        _forget_process_state()
        finished = threading.Event()
        threading.Thread(target=_die_with_caller, args=(connection, finished), daemon=True).start()
        handoff.send(connection, {"pid": os.getpid()})
        code = _run_cli(request["argv"])
        finished.set()
        sys.stdout.flush()
        sys.stderr.flush()
        handoff.send(connection, {"exit": code})
    except BaseException:  # noqa: BLE001 - whatever happens, the caller gets an end
        with contextlib.suppress(BaseException):
            _log(f"pid {os.getpid()}: {traceback.format_exc()}")
    finally:
        connection.close()
        _release_terminal()
        _exit(code)


def _run_cli(argv: list[str]) -> int:
    from archetype.cli import main

    sys.argv = ["archetype", *argv]
    try:
        main()
    except SystemExit as end:
        if end.code is None or isinstance(end.code, int):
            return end.code or 0
        print(end.code, file=sys.stderr)
        return 1
    return 0


def _take_terminal(fds: list[int]) -> None:
    if len(fds) != 3:
        raise OSError(f"expected the caller's stdin, stdout and stderr, got {len(fds)} descriptors")
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:  # only 0, 1 and 2 hold them: released at the end, the caller's pipes close
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the caller's, for the process's life
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _release_terminal() -> None:
    """Let go of the caller's terminal and pipes: their readers see the end now, not after
    Prefect's exit work."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    os.close(devnull)


def _forget_process_state() -> None:
    """What this process computed from its own environment and terminal before the fork."""
    from prefect.logging.configuration import setup_logging

    from archetype import render
    from lab.settings import get_settings

    get_settings.cache_clear()
    render.console = render.Console()  # colours and width from the caller's terminal
    setup_logging(incremental=False)  # Prefect's console handler on the caller's stderr


def _die_with_caller(connection: socket.socket, finished: threading.Event) -> None:
    """The caller's end of the socket closes when it exits: if the command is not done, it
    was killed (or interrupted hard), and so is the command, with its subprocesses."""
    with contextlib.suppress(OSError):
        while connection.recv(1):
            pass
    if not finished.is_set():
        os.killpg(0, signal.SIGKILL)


def _exit(code: int) -> None:
    """Python's own exit work, after the caller has its answer: threading's exit hooks
    (where Prefect drains its log and event workers to the server), then atexit. Without
    unwinding the executor's stack, which this child was forked in."""
    import atexit

    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    os._exit(code)


def _namespaces(pid: int) -> tuple[str, str] | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


_log_file = sys.__stderr__  # the executor's log once main() opened it; never a caller's terminal


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", file=_log_file, flush=True)


def main() -> None:
    """``python -m archetype.executor``: started detached by ``launch.py``; its stdout
    says ``ready [SERVER]`` (SERVER: the address of a local server it started) once its
    socket listens, then closes; anything else on it, or its end, means it did not start."""
    handoff.apply_defaults(os.environ)
    home = Path(os.environ["PREFECT_HOME"])
    os.chdir("/")  # not the first caller's folder, which may go away (each child takes its caller's)
    from lab.private import FILE_MODE, open_private_log, private_dir, write_private
    from lab.settings import get_settings

    global _log_file
    private_dir(home)
    _log_file = open_private_log(log_path(home))
    os.dup2(_log_file.fileno(), 2)  # Prefect's and Python's own messages too
    lock = os.open(home / "executor.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another one starting: wait for it, then use it
    except OSError as err:
        _log(f"cannot lock: {err}")
        raise SystemExit(1) from None
    path = handoff.socket_path(os.environ)
    probe = handoff.connect(path)
    if probe is not None:  # another one started it while this one waited for the lock
        probe.close()
        print("ready", flush=True)
        return
    started = _prepare()
    path.unlink(missing_ok=True)  # a stale socket of a killed executor
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_mask)
    listener.listen(64)
    write_private(handoff.record_path(home), json.dumps({"pid": os.getpid()}))
    _log(f"ready (pid {os.getpid()}, code {handoff.code_root()})")
    print(f"ready {started}".strip(), flush=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(lock)  # after the socket listens: a second starter finds it answering
    try:
        Executor(listener).serve(path, get_settings().executor_idle_seconds)
    finally:
        path.unlink(missing_ok=True)
        if handoff.recorded_pid(home) == os.getpid():
            handoff.record_path(home).unlink(missing_ok=True)
        _log("stopped")


def _prepare() -> str:
    """Import what every command needs while the local server starts, when the commands
    use it (both take seconds; together they take the longer of the two). The address of a
    server started here, or ''. No thread is left running: children are forked from this
    process."""
    from deployments import local_server

    started: list[str] = []
    failure: list[BaseException] = []

    def start_server() -> None:
        try:
            local_server.ensure(on_start=started.append)
        except BaseException as err:  # noqa: BLE001 - a command started later reports it
            failure.append(err)

    server = threading.Thread(target=start_server)
    if not os.environ.get("PREFECT_API_URL"):  # else: a fleet's or a remote server
        server.start()
    for module in (*_our_modules(), *LAZY_IMPORTS):
        importlib.import_module(module)
    if server.is_alive():
        server.join()
    if failure:
        _log(f"the local server did not start: {failure[0]}")
    return started[0] if started else ""


def _our_modules() -> list[str]:
    modules = []
    for package in _CODE_PACKAGES:
        root = importlib.import_module(package)
        modules += [found.name for found in pkgutil.walk_packages(root.__path__, f"{package}.")]
    return [name for name in modules if name != __spec__.name]  # not this module a second time


if __name__ == "__main__":
    main()
