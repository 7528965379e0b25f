"""The ``archetype`` entry point: hand the command to the warm executor when one serves
this host, else run it in this process (``archetype.cli``).

A flow-backed command run in its own process pays ~2 s before any work on a 2-core host:
Python importing Prefect, the flows and the providers (docs/performance.md, "The floors").
The executor (``archetype/executor.py``) has them imported once; it forks a child per
command that runs the very same CLI code with this process's argv, environment, working
folder and terminal (stdin, stdout and stderr are passed over the socket), so the output,
the exit code and Ctrl-C behave as in-process. This module uses the standard library only:
a served command costs Python's start and one Unix-socket round trip.

There is one executor per Prefect folder (``PREFECT_HOME``), serving the commands that have
its ``PREFECT_`` variables: the local server's (no ``PREFECT_API_URL``) or a fleet's. The
first flow-backed command that finds none starts it (and, for the local server, the server
too, while the executor imports) and is served by it. Read-only commands use a running
executor but never start one. Whatever cannot be served (no executor, another
environment, namespace or checkout, a changed code tree) runs here, as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from archetype import handoff

# Never served: an interactive session on a node (`connect`), the long-running server
# processes, and `capture`, whose tcpdump must get the terminal's own Ctrl-C.
LOCAL_COMMANDS = frozenset({"connect", "serve", "server", "capture"})
# Commands that run a flow, and so need the local Prefect server: worth starting the
# executor for when none runs.
FLOW_COMMANDS = frozenset({"deploy", "destroy", "configs", "cleanup", "node", "link", "save", "migrate"})


def main() -> None:
    handoff.apply_defaults(os.environ)
    argv = sys.argv[1:]
    command = _command(argv)
    try:
        code = served(argv, start=command in FLOW_COMMANDS) if _servable(command, argv) else None
    except KeyboardInterrupt:  # Ctrl-C before the command started (the executor starting)
        raise SystemExit(130) from None
    if code is not None:
        raise SystemExit(code)
    from archetype.cli import main as run_here

    run_here()


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _servable(command: str | None, argv: list[str]) -> bool:
    return command is not None and command not in LOCAL_COMMANDS and "--help" not in argv


def served(argv: list[str], start: bool) -> int | None:
    """The command's exit status, run by the executor (started first if ``start`` and none
    answers); None when it cannot be served."""
    path = handoff.socket_path(os.environ)
    connection = handoff.connect(path)
    if connection is None and start:
        connection = _start_executor(path)
    if connection is None:
        return None
    with connection:
        return _run_remotely(connection, argv)


def _start_executor(path: Path) -> socket.socket | None:
    """Start the executor (it starts the local server while it imports) and wait for its
    word: ``ready`` (and whether it started the server), or an end without it."""
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "archetype.executor"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, text=True,
        )
    except OSError:
        return None
    word = process.stdout.readline().strip() if process.stdout else ""
    if process.stdout:
        process.stdout.close()
    started = word.removeprefix("ready").strip()
    if not word.startswith("ready"):
        return None  # it could not start (its log says why): this process runs the command
    if started:
        print(handoff.SERVER_STARTING.format(address=started), file=sys.stderr)
    return handoff.connect(path)


def _run_remotely(connection: socket.socket, argv: list[str]) -> int | None:
    request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "umask": _umask(),
               "root": str(handoff.code_root()), "python": sys.executable}
    try:
        handoff.send(connection, request, fds=[0, 1, 2])
        answer = handoff.receive(connection)
    except OSError:
        return None
    if answer is None or "pid" not in answer:
        return None  # refused: another environment, checkout or code tree
    child = int(answer["pid"])
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda number, _frame: _forward(child, number))
    end = handoff.receive(connection)
    if end is None:
        print("error: the command's process ended without a result (see the executor's log)", file=sys.stderr)
        return 1
    if "signal" in end:  # killed: end the same way, as an in-process command would
        signal.signal(int(end["signal"]), signal.SIG_DFL)
        os.kill(os.getpid(), int(end["signal"]))
    return int(end["exit"])


def _forward(child: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, number)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


if __name__ == "__main__":
    main()
