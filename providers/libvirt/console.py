"""A session on a VM's serial console, driven like a person would: pexpect on
``virsh console --force`` (HOST-FACTS: known to work here; login + command + detach < 1 s).

The session logs in when asked (vendor username/password, overridable per kind in
settings), answers the vendor's boot dialogs, enters enable mode, turns paging off,
recognises prompts with the vendor's regexes, and returns a command's output without its
echo, the prompt or terminal escape codes. It is a context manager that ALWAYS detaches
(Ctrl-]) and reaps its child, on every path. A per-domain lock (a thread lock plus a file
lock under ``lab.names.locks_dir()``, so it holds across processes) keeps two sessions off
one console. Every wait has a timeout: a console that never answers gives ``ConsoleError``.
Passwords are never logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum

import pexpect
from filelock import FileLock
from filelock import Timeout as FileLockTimeout

from lab import names
from lab.errors import CommandError, ConsoleError
from lab.private import FILE_MODE, private_dir
from lab.settings import get_settings
from providers.libvirt.console_text import LINE_START, PlainTextSpawn, clean_output, render
from vendors.model import ConsoleDialect, VendorConfig

log = logging.getLogger("archetype.console")

DETACH = "\x1d"  # Ctrl-]
INTERRUPT = "\x03"  # Ctrl-C: stops a command that outlived its timeout
INTERRUPT_WAIT_SECONDS = 3.0  # how long a prompt may take to come back after Ctrl-C
NUDGE_SECONDS = 2.0  # silence for this long while waking a console: press RETURN again
FIRST_NUDGE_SECONDS = 0.2  # on attach, what the console shows at once before the first RETURN
BANNER = r"Escape character is"
MORE = r"-+ ?More ?-+"

# Locks -------------------------------------------------------------------------------------

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(domain: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(domain, threading.Lock())


@contextmanager
def console_lock(domain: str, timeout: float) -> Iterator[None]:
    """Hold the domain's console: one session per console, across threads and processes."""
    deadline = time.monotonic() + timeout
    thread_lock = _thread_lock(domain)
    if not thread_lock.acquire(timeout=max(0.0, timeout)):
        raise ConsoleError(f"console of {domain} is busy (another session in this process held it for {timeout:.0f} s)")
    try:
        path = names.console_lock_path(domain)
        private_dir(path.parent)
        file_lock = FileLock(str(path), mode=FILE_MODE, thread_local=False)
        try:
            file_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        except FileLockTimeout:
            raise ConsoleError(
                f"console of {domain} is busy: another process holds {path} (a deploy, a configs run, "
                f"or a person on `archetype connect`)"
            ) from None
        try:
            yield
        finally:
            file_lock.release()
    finally:
        thread_lock.release()


# Credentials --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never show the password
        return f"Credentials(username={self.username!r}, password={'***' if self.password else None})"


def credentials_for(vendor: VendorConfig) -> Credentials:
    """The vendor's console login, overridden per kind by settings (console_username /
    console_password, e.g. ARCHETYPE_CONSOLE_PASSWORD__cisco_iosv)."""
    settings = get_settings()
    username = settings.console_username.get(vendor.kind, vendor.console.username)
    secret = settings.console_password.get(vendor.kind)
    password = secret.get_secret_value() if secret is not None else vendor.console.password
    return Credentials(username, password)


# The session ------------------------------------------------------------------------------


class Mode(StrEnum):
    USER = "user"
    ENABLE = "enable"
    CONFIG = "config"


class ConsoleSession:
    """``with ConsoleSession(domain, dialect, ...) as s: s.start(); s.send_command("show version")``"""

    def __init__(
        self,
        domain: str,
        dialect: ConsoleDialect,
        *,
        node: str | None = None,
        credentials: Credentials | None = None,
        uri: str | None = None,
        timeout: float | None = None,
        lock_timeout: float | None = None,
        command: Sequence[str] | None = None,
        banner: str | None = BANNER,
    ):
        settings = get_settings()
        self.domain = domain
        self.node = node or domain
        self.dialect = dialect
        self.credentials = credentials or Credentials(dialect.username, dialect.password)
        self.timeout = settings.console_timeout if timeout is None else timeout
        self.lock_timeout = max(self.timeout, 120.0) if lock_timeout is None else lock_timeout
        self.argv = list(command) if command else ["virsh", "-c", uri or settings.libvirt_uri, "console", "--force", domain]
        self.banner = banner
        self.mode: str | None = None
        self.child: PlainTextSpawn | None = None
        self._lock: AbstractContextManager[None] | None = None
        self._prompt = re.compile(LINE_START + f"(?:{dialect.prompt})", re.DOTALL)
        self._config = re.compile(dialect.config_prompt)
        self._privileged = re.compile(dialect.privileged_prompt)
        self._errors = [re.compile(p) for p in dialect.error_patterns]

    # lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ConsoleSession:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Take the console lock and attach (the banner of virsh, when expected)."""
        self._lock = console_lock(self.domain, self.lock_timeout)
        self._lock.__enter__()
        try:
            log.debug("%s: attaching: %s", self.node, " ".join(self.argv))
            self.child = PlainTextSpawn(
                self.argv[0], self.argv[1:], dimensions=(50, 250), encoding="utf-8",
                codec_errors="replace", timeout=self.timeout, echo=False,
            )
            if self.banner:
                self._expect([self.banner], self.timeout, "attaching to the console")
        except pexpect.ExceptionPexpect as err:  # the command cannot run at all
            self.close()
            raise ConsoleError(f"node {self.node}: cannot attach to the console ({self.argv[0]}): {err}") from err
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Detach (Ctrl-]), then make sure the child is gone and reaped; release the lock."""
        child, self.child = self.child, None
        try:
            if child is not None:
                try:
                    if child.isalive():
                        child.send(DETACH)
                        child.expect(pexpect.EOF, timeout=1)
                except (pexpect.ExceptionPexpect, OSError):
                    pass
                finally:
                    with suppress(pexpect.ExceptionPexpect, OSError):
                        child.close(force=True)
                    if child.isalive():  # close(force) gave up: SIGKILL and reap
                        child.kill(9)
                        child.wait()
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.__exit__(None, None, None)

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    # waiting ----------------------------------------------------------------------------

    def _expect(self, patterns: list, timeout: float, doing: str) -> int:
        assert self.child is not None
        try:
            return self.child.expect(patterns, timeout=max(0.0, timeout))
        except pexpect.TIMEOUT:
            raise ConsoleError(
                f"node {self.node}: console did not answer within {timeout:.0f} s while {doing}; "
                f"last output: {self._tail()!r}"
            ) from None
        except pexpect.EOF:
            raise ConsoleError(f"node {self.node}: console closed while {doing}: {self._tail()!r}") from None

    def _tail(self, text: str | None = None) -> str:
        if text is None:
            child = self.child
            text = "" if child is None else f"{child.before or ''}{child.buffer or ''}"
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
        text = render(text)[-300:]
        password = self.credentials.password
        return text.replace(password, "***") if password else text

    def _drain(self) -> None:
        """Forget output nobody waits for (late echoes), so the next match is fresh."""
        assert self.child is not None
        try:
            while True:
                self.child.read_nonblocking(65536, timeout=0)
        except (pexpect.TIMEOUT, pexpect.EOF):
            pass
        self.child.buffer = self.child.string_type()

    def _mode_of(self, prompt: str) -> str:
        prompt = render(prompt).strip()
        if self._config.search(prompt):
            return Mode.CONFIG
        if self._privileged.search(prompt):
            return Mode.ENABLE
        return Mode.USER

    def wait_for(self, pattern: str, timeout: float) -> float:
        """Press RETURN until ``pattern`` shows on the console (console_prompt readiness);
        seconds waited."""
        assert self.child is not None
        started = time.monotonic()
        deadline = started + timeout
        wanted = re.compile(pattern, re.IGNORECASE)
        self.child.send("\r")
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsoleError(f"node {self.node}: {pattern!r} did not show on the console within {timeout:.0f} s")
            try:
                self.child.expect([wanted], timeout=min(NUDGE_SECONDS, remaining))
                return time.monotonic() - started
            except pexpect.TIMEOUT:
                self.child.send("\r")
            except pexpect.EOF:
                raise ConsoleError(f"node {self.node}: console closed: {self._tail()!r}") from None

    # getting to a prompt --------------------------------------------------------------------

    def start(self, *, login: bool = True, enable: bool = True, paging_off: bool = True) -> str:
        """Wake the console, answer dialogs, log in, leave config mode, enter enable mode
        and turn paging off. Returns the mode reached."""
        self.wake(login=login)
        if self.mode == Mode.CONFIG and self.dialect.config_exit:
            self.send_command(self.dialect.config_exit, check=False)
        if enable and self.mode == Mode.USER and self.dialect.enable_command:
            self._enable()
        if paging_off and self.dialect.paging_off:
            self.send_command(self.dialect.paging_off, check=False)
        return self.mode or Mode.USER

    def wake(self, *, login: bool = True, timeout: float | None = None) -> str:
        """Press RETURN until a prompt shows, answering boot dialogs and the login on the way."""
        assert self.child is not None
        dialect = self.dialect
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        patterns = [
            self._prompt,
            re.compile(dialect.login_prompt),
            re.compile(dialect.password_prompt),
            re.compile(dialect.login_failed),
            *(re.compile(step.expect) for step in dialect.dialogs),
        ]
        logins = 0
        quiet = FIRST_NUDGE_SECONDS  # a pending dialog shows at once: answer it, not a blind RETURN
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsoleError(
                    f"node {self.node}: no prompt on the console within {timeout:.0f} s; last output: {self._tail()!r}"
                )
            try:
                index = self.child.expect(patterns, timeout=min(quiet, remaining))
            except pexpect.TIMEOUT:
                self.child.send("\r")
                quiet = NUDGE_SECONDS
                continue
            except pexpect.EOF:
                raise ConsoleError(f"node {self.node}: console closed: {self._tail()!r}") from None
            if index == 0:
                self.mode = self._mode_of(self.child.after)
                return self.mode
            if index == 1:  # Username:
                if not login or not self.credentials.username:
                    raise ConsoleError(f"node {self.node}: the console asks for a login and none is configured")
                logins += 1
                if logins > 3:
                    raise ConsoleError(f"node {self.node}: console login as {self.credentials.username!r} keeps failing")
                log.debug("%s: logging in as %s", self.node, self.credentials.username)
                self.child.send(self.credentials.username + "\r")
            elif index == 2:  # Password:
                if self.credentials.password is None:
                    raise ConsoleError(f"node {self.node}: the console asks for a password and none is configured")
                self.child.send(self.credentials.password + "\r")
            elif index == 3:
                raise ConsoleError(f"node {self.node}: console login as {self.credentials.username!r} failed")
            else:
                step = dialect.dialogs[index - 4]
                log.debug("%s: dialog %r", self.node, step.expect)
                self.child.send(step.send.replace("{password}", self.credentials.password or "") + "\r")

    def _enable(self) -> None:
        assert self.child is not None and self.dialect.enable_command
        self._drain()
        self.child.send(self.dialect.enable_command + "\r")
        password = re.compile(self.dialect.password_prompt)
        index = self._expect([self._prompt, password], self.timeout, "entering enable mode")
        if index == 1:
            self.child.send((self.credentials.password or "") + "\r")
            self._expect([self._prompt], self.timeout, "entering enable mode")
        self.mode = self._mode_of(self.child.after)
        if self.mode == Mode.USER:
            raise ConsoleError(f"node {self.node}: {self.dialect.enable_command!r} did not reach privileged mode")

    # commands -------------------------------------------------------------------------------

    def send_command(self, command: str, *, timeout: float | None = None, check: bool = True) -> str:
        """Send one line, wait for the next prompt, return the output (no echo, prompt or
        escape codes). ``--More--`` pages are turned. ``check``: an error pattern in the
        output raises ``CommandError``; a timeout always does (exit code None)."""
        child = self.child
        if child is None:
            raise ConsoleError(f"node {self.node}: console session is not open")
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._drain()
        child.send(command + "\r")
        pieces: list[str] = []
        more = re.compile(MORE)
        while True:
            try:
                index = child.expect([self._prompt, more], timeout=max(0.0, deadline - time.monotonic()))
            except (pexpect.TIMEOUT, pexpect.EOF) as err:
                partial = clean_output("".join(pieces) + (child.before or ""), command)
                what = "timed out" if isinstance(err, pexpect.TIMEOUT) else "console closed"
                log.warning("%s: %r %s; partial output: %s", self.node, command, what, partial[-300:])
                if isinstance(err, pexpect.TIMEOUT):
                    self._interrupt()
                raise CommandError(self.node, command, None, partial) from None
            pieces.append(child.before or "")
            if index == 0:
                self.mode = self._mode_of(child.after)
                break
            child.send(" ")  # next page
        output = clean_output("".join(pieces), command)
        if check and self.error_in(output):
            raise CommandError(self.node, command, 1, output)
        return output

    def _interrupt(self) -> None:
        """After a command timed out: Ctrl-C, and a short wait for the prompt, so the
        command does not keep the console busy for the next session (a retry would find
        no prompt and fail without naming the command). Best effort."""
        child = self.child
        if child is None:
            return
        try:
            child.send(INTERRUPT)
            child.expect([self._prompt], timeout=INTERRUPT_WAIT_SECONDS)
            self.mode = self._mode_of(child.after)
        except (pexpect.ExceptionPexpect, OSError):
            log.warning("%s: the console shows no prompt after Ctrl-C", self.node)

    def error_in(self, output: str) -> str | None:
        """The first vendor error marker in the output, if any."""
        for error in self._errors:
            match = error.search(output)
            if match:
                return match.group()
        return None

    def send_commands(self, commands: Sequence[str], *, timeout: float | None = None) -> list[str]:
        return [self.send_command(c, timeout=timeout) for c in commands]

    @contextmanager
    def config_mode(self) -> Iterator[ConsoleSession]:
        """Enter configuration mode, and leave it again on the way out (errors too)."""
        if self.dialect.config_enter:
            self.send_command(self.dialect.config_enter)
        try:
            yield self
        finally:
            if self.dialect.config_exit and self.child is not None and self.mode == Mode.CONFIG:
                self.send_command(self.dialect.config_exit, check=False)

    def configure(self, lines: Sequence[str], *, timeout: float | None = None) -> list[str]:
        with self.config_mode():
            return [self.send_command(line, timeout=timeout) for line in lines]
