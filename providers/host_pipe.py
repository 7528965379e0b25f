"""One command's stdout piped into another's stdin, each run on a host through that host's
access (``ssh root@HOST archetype ...``, or what the host publishes): how a snapshot's files
go from the host that has them to the one that restores them, as ``ssh a cmd | ssh b cmd``.

Argument lists only, never a shell. Both ends are waited for; a failure of either (its exit
status and the end of its stderr) is a ProviderError, the receiver's first.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile

from lab.errors import ProviderError


class PipeFailed(ProviderError):
    """One end (or both) exited non-zero: ``codes`` holds their exit statuses."""

    transient = False

    def __init__(self, message: str, codes: list[int]):
        super().__init__(message)
        self.codes = codes


def local_cli() -> list[str]:
    """argv of the archetype CLI on this very host (same interpreter and code)."""
    return [sys.executable, "-c", "from archetype.cli import main; main()"]


def remote_cli(access: list[str], address: str | None) -> list[str]:
    """argv prefix of the archetype CLI on a fleet host: its published access, else ssh
    (no tty: the pipe carries bytes)."""
    if access:
        return list(access)
    if not address:
        raise ProviderError("the host publishes neither an access command nor a data-plane address")
    return ["ssh", "-o", "BatchMode=yes", f"root@{address}", "archetype"]


def pipe(sender: list[str], receiver: list[str], timeout: float) -> str:
    """Run ``sender | receiver``; the receiver's stdout."""
    with tempfile.TemporaryFile() as sender_err, tempfile.TemporaryFile() as receiver_err:
        source = subprocess.Popen(sender, stdout=subprocess.PIPE, stderr=sender_err, stdin=subprocess.DEVNULL)  # noqa: S603 - argv of our own CLI
        try:
            sink = subprocess.Popen(receiver, stdin=source.stdout, stdout=subprocess.PIPE, stderr=receiver_err)  # noqa: S603
        except OSError:
            source.kill()
            source.wait()
            raise
        assert source.stdout is not None
        source.stdout.close()  # the receiver holds the read end: the sender sees EPIPE if it goes
        try:
            out, _ = sink.communicate(timeout=timeout)
            source.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for process in (source, sink):
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            raise ProviderError(f"copy between hosts: not finished within {timeout:.0f} s") from None
        problems, codes = [], []
        for what, process, err in (("receiver", sink, receiver_err), ("sender", source, sender_err)):
            if process.returncode != 0:
                err.seek(0)
                tail = err.read()[-1500:].decode(errors="replace").strip()
                problems.append(f"{what} exited {process.returncode}: {tail or 'no message'}")
                codes.append(process.returncode)
        if problems:
            raise PipeFailed("copy between hosts failed: " + "; ".join(problems), codes)
        return out.decode(errors="replace")
