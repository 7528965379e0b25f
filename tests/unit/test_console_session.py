"""The console session against a fake IOS-style device on a pty (this file, run as a
script, is the device): login, dialogs, enable, paging, echo stripping (wrapped echo,
ANSI codes), errors, config mode, timeouts that leave no process behind, the lock."""

from __future__ import annotations

import os
import secrets
import sys
import time

if __name__ != "__main__":
    import threading

    import pytest

    from lab.errors import CommandError, ConsoleError
    from lab.settings import get_settings
    from providers.libvirt.console import ConsoleSession, Credentials
    from providers.libvirt.console_text import clean_output, render, strip_echo
    from vendors import get_vendor

CONFIG_LINES = [f"interface GigabitEthernet0/{i}\n no ip address\n shutdown\n!" for i in range(12)]


# ------------------------------------------------------------------------- the fake device


def fake_device(options: set[str]) -> None:  # pragma: no cover - runs in the child
    import termios
    import tty

    fd = sys.stdin.fileno()
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, attrs)

    def out(text: str) -> None:
        os.write(1, text.replace("\n", "\r\n").encode())

    def read_line(echo: bool = True) -> str:
        chars = []
        column = 0
        while True:
            ch = os.read(fd, 1).decode(errors="replace")
            if ch == "\x1d":  # Ctrl-]: detach, like virsh
                sys.exit(0)
            if ch in "\r\n":
                out("\n")
                return "".join(chars)
            chars.append(ch)
            if echo:
                column += 1
                if "wrap" in options and column % 20 == 0:
                    os.write(1, (ch + "\r\n").encode())  # the line editor wraps the echo
                else:
                    os.write(1, ch.encode())

    out("Connected to domain 'fake'\nEscape character is ^] (Ctrl + ])\n")
    if "silent" in options:
        while True:
            time.sleep(1)
    host, mode, tlen = "Router", "user", 24
    if "booting" in options:
        out("Loading...\nWould you like to enter the initial configuration dialog? [yes/no]: ")
        answer = read_line()
        while answer not in ("yes", "no"):
            out("% Please answer 'yes' or 'no'.\nWould you like to enter the initial configuration dialog? [yes/no]: ")
            answer = read_line()
        out(f"[answered {answer}]\n\nPress RETURN to get started!\n\n")
    read_line()
    while True:
        out("\nUser Access Verification\n\nUsername: ")
        user = read_line()
        while not user:
            out("Username: ")
            user = read_line()
        out("Password: ")
        password = read_line(echo=False)
        if (user, password) == ("admin", "s3cret"):
            break
        out("% Login invalid\n")
    ansi = "\x1b[1m" if "ansi" in options else ""
    while True:
        suffix = {"user": ">", "enable": "#", "config": "(config)#", "config-if": "(config-if)#"}[mode]
        out(f"{ansi}{host}{suffix}{chr(27) + '[0m' if ansi else ''}")
        line = read_line().strip()
        words = line.split()
        if not words:
            continue
        output = ""
        if line == "enable":
            out("Password: ")
            if read_line(echo=False) == "s3cret":
                mode = "enable"
            else:
                out("% Bad secrets\n")
            continue
        if line == "terminal length 0":
            tlen = 0
        elif line == "show running-config":
            output = "Building configuration...\n\nhostname " + host + "\n!\n" + "\n".join(CONFIG_LINES) + "\nend\n"
        elif line == "show slow":
            time.sleep(60)
        elif line == "configure terminal" and mode == "enable":
            mode = "config"
        elif words[0] == "hostname" and mode.startswith("config") and len(words) == 2:
            host = words[1]
        elif words[0] == "interface" and mode.startswith("config"):
            mode = "config-if"
        elif line == "end" and mode.startswith("config"):
            mode = "enable"
        else:
            output = "                ^\n% Invalid input detected at '^' marker.\n\n"
        lines = output.splitlines()
        for index, text in enumerate(lines):
            if tlen and index and index % (tlen - 1) == 0:
                out(" --More-- ")
                os.read(fd, 1)
                out("\b" * 10 + " " * 10 + "\b" * 10)
            out(text + "\n")


if __name__ == "__main__":  # pragma: no cover
    fake_device(set(sys.argv[1:]))
    sys.exit(0)


# ------------------------------------------------------------------------------ tests


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):  # noqa: ANN001, ANN201 - locks live under the workspace
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def session(*options: str, timeout: float = 10, password: str = "s3cret", domain: str = "fake") -> ConsoleSession:
    return ConsoleSession(
        domain, get_vendor("mini-ios").console, node="r1", credentials=Credentials("admin", password),
        timeout=timeout, command=[sys.executable, __file__, *options],
    )


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie still answers kill(0)
        return f.read().split(")")[1].split()[0] == "Z"


def test_login_enable_paging_and_full_output() -> None:
    with session() as s:
        assert s.start() == "enable"
        config = s.send_command("show running-config")
    lines = config.splitlines()
    assert lines[0] == "Building configuration..." and lines[-1] == "end"
    assert len(lines) == 3 + 4 * 12 + 2 - 1 + 1
    assert "Router#" not in config and "show running-config" not in config


def test_more_pages_are_turned_when_paging_is_on() -> None:
    with session() as s:
        s.start(paging_off=False)
        config = s.send_command("show running-config")
    assert "More" not in config and "\b" not in config
    assert config.count("interface GigabitEthernet0/") == 12
    assert config.splitlines()[-1] == "end"


def test_boot_dialogs_wrapped_echo_and_ansi() -> None:
    with session("booting", "wrap", "ansi") as s:
        s.start()
        output = s.send_command("show running-config")
        assert output.startswith("Building configuration...")
        assert "\x1b" not in output
        with s.config_mode():
            assert s.mode == "config"
            s.send_command("hostname a-very-long-hostname-1")
            s.send_command("interface GigabitEthernet0/1")
            assert s.mode == "config"
        assert s.mode == "enable"
        assert "hostname a-very-long-hostname-1" in s.send_command("show running-config")


def test_errors_are_detected() -> None:
    with session() as s:
        s.start()
        with pytest.raises(CommandError) as caught:
            s.send_command("show nonsense")
        assert caught.value.command == "show nonsense" and caught.value.exit_code == 1
        assert "% Invalid input" in caught.value.output
        assert "Invalid" in s.send_command("show nonsense", check=False)


def test_wrong_password_fails_without_showing_it() -> None:
    with session(password="hunter2-wrong", timeout=8) as s, pytest.raises(ConsoleError) as caught:
        s.start()
    assert "hunter2-wrong" not in str(caught.value)


def live_children(marker: str) -> list[int]:
    """Our live (not zombie) child processes whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and marker in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.parametrize("banner", [True, False])
@pytest.mark.parametrize("kind", ["silent-device", "sleep"])
def test_silent_console_fails_in_time_and_leaves_no_process(kind: str, banner: bool) -> None:
    marker = f"{secrets.token_hex(4)}"
    s = session("silent", marker, timeout=1) if kind == "silent-device" else session(timeout=1)
    if kind == "sleep":
        s.argv = ["sleep", f"300.{int(marker, 16) % 1000:03d}"]
        marker = s.argv[1]
    if not banner:
        s.banner = None
    started = time.monotonic()
    with pytest.raises(ConsoleError, match="did not answer|no prompt"), s:
        s.start()
    assert time.monotonic() - started < 1 + 3  # its timeout, plus detaching
    assert live_children(marker) == []
    assert s.child is None


def test_command_timeout_reports_the_command_and_detaches() -> None:
    with session() as s:
        s.start()
        pid = s.pid
        with pytest.raises(CommandError) as caught:
            s.send_command("show slow", timeout=1)
        assert caught.value.exit_code is None
    assert pid_gone(pid)


def test_one_session_per_console() -> None:
    order: list[str] = []
    first = session(domain="shared")
    first.open()
    try:
        second = session(domain="shared")
        second.lock_timeout = 0.5
        with pytest.raises(ConsoleError, match="busy"):
            second.open()

        def later() -> None:
            with session(domain="shared"):
                order.append("second")

        thread = threading.Thread(target=later)
        thread.start()
        time.sleep(0.5)
        order.append("first done")
    finally:
        first.close()
    thread.join(10)
    assert order == ["first done", "second"]


def test_render_and_strip_echo() -> None:
    assert render("abc\x1b[1mdef\x1b[0m\r\nx") == "abcdef\nx"
    assert render(" --More-- \b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\bline") == "line"
    assert render("12345\r\x1b[Kab") == "ab"
    assert strip_echo("Router#show ver\nsion\nCisco IOS", "show version") == "Cisco IOS"
    assert strip_echo("Cisco IOS\nline", "show version") == "Cisco IOS\nline"
    assert clean_output("terminal length 0\r\n", "terminal length 0") == ""


def test_a_command_that_cannot_run_is_a_console_error() -> None:
    s = session()
    s.argv = ["/nonexistent/virsh"]
    with pytest.raises(ConsoleError, match="cannot attach"), s:
        pass
    assert s.child is None
