"""The provider's console paths (readiness by console prompt or CLI probe, post-boot,
config extraction) against the fake device of test_console_session.py, with the
console password coming from settings. No daemon: the provider runs on test:///default
and its console command is the fake."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import vendors
from lab.errors import CommandError
from lab.settings import get_settings
from providers.libvirt import LibvirtProvider
from tests.unit import test_console_session as fake
from topology import Node
from vendors.model import Readiness, ReadinessMethod

FAKE = str(Path(fake.__file__))


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("ARCHETYPE_CONSOLE_PASSWORD__mini-ios", "s3cret")  # the catalog says admin/admin
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def provider(*options: str) -> LibvirtProvider:
    return LibvirtProvider("test:///default", console_command=lambda _domain: [sys.executable, FAKE, *options])


def mini_ios(**changes: object) -> vendors.VendorConfig:
    """The mini-ios entry with some fields changed (the catalog itself is not)."""
    return vendors.get_vendor("mini-ios").model_copy(update=changes)


def node(*exec_lines: str, vendor: vendors.VendorConfig | None = None) -> Node:
    return Node(name="r1", vendor=vendor or vendors.get_vendor("mini-ios"), image="x", exec=exec_lines)


def test_console_prompt_readiness() -> None:
    vendor = mini_ios(readiness=Readiness(method=ReadinessMethod.CONSOLE_PROMPT, pattern=r"configuration dialog", timeout=10))
    p = provider("booting")
    try:
        assert p.wait_ready("lab", node(vendor=vendor)) < 5
    finally:
        p.close()


def test_cli_probe_readiness() -> None:
    vendor = mini_ios(readiness=Readiness(method=ReadinessMethod.CLI_PROBE, command=["show", "running-config"],
                                          pattern=r"^hostname Router", timeout=10))
    p = provider()
    try:
        assert p.wait_ready("lab", node(vendor=vendor)) < 5
    finally:
        p.close()


def test_post_boot_reports_the_failing_command_and_logs_outputs(caplog: pytest.LogCaptureFixture) -> None:
    # the fake knows `configure terminal` and `end` but not `no ip domain-lookup`
    p = provider()
    try:
        with caplog.at_level(logging.INFO, logger="archetype.libvirt"), pytest.raises(CommandError) as caught:
            p.run_post_boot("lab", node())
    finally:
        p.close()
    assert caught.value.command == "no ip domain-lookup"
    assert "% Invalid input detected" in caught.value.output
    assert "'configure terminal'" in caplog.text and "no ip domain-lookup" in caplog.text
    assert "s3cret" not in caplog.text


def test_exec_lines_run_after_the_vendor_commands() -> None:
    vendor = mini_ios(post_boot_commands=["terminal length 0"])
    p = provider()
    try:
        results = p.run_post_boot("lab", node("configure terminal", "hostname EDGE", "end", vendor=vendor))
        config = p.extract_config("lab", node(vendor=vendor))
    finally:
        p.close()
    assert [r.command for r in results] == ["terminal length 0", "configure terminal", "hostname EDGE", "end"]
    assert all(r.ok for r in results)
    assert "hostname EDGE" not in config  # a new session on the fake starts from scratch
    # the preamble ("Building configuration...") dropped: the text is a startup-config again
    assert config.splitlines()[0] == "hostname Router" and config.rstrip().endswith("end"), config[:200]


def test_a_resumed_post_boot_runs_only_what_is_left_in_the_mode_it_needs() -> None:
    """Given the results of the commands done, the run starts after them; a command that
    was to be typed in config mode gets config mode again (a fresh session starts outside)."""
    from providers.base import CommandResult

    vendor = mini_ios(post_boot_commands=[])
    lines = ("configure terminal", "hostname FIRST", "hostname EDGE", "end")
    done = [CommandResult(c, 0, "", 0.0) for c in lines[:2]]  # as a first attempt left them
    p = provider()
    try:
        results = p.run_post_boot("lab", node(*lines, vendor=vendor), done)
    finally:
        p.close()
    assert results is done and [r.command for r in results] == list(lines)
    assert all(r.ok for r in results)
