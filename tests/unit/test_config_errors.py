"""Startup-config errors are reported, not fatal: the console provider goes on past a
startup-config line the device refuses (and only such a line), the line and the device's
message become the node's ``config_errors``, and they survive the state table's round trip
and the host's record. Against the fake device of test_console_session.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import config_errors
from lab.config_errors import ConfigError, ConfigRefusedError
from lab.errors import CommandError
from lab.settings import get_settings
from lab.state import LabState, LabStatus, NodePhase, NodeRecord, state_from_rows, state_to_rows
from providers.base import CommandResult
from tasks.nodes import refused_lines
from tests.unit.test_console_provider import mini_ios, provider
from topology import Node

IOS_REFUSAL = "interface Nonexistent9/9\n          ^\n% Invalid input detected at '^' marker.\n"


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("ARCHETYPE_CONSOLE_PASSWORD__mini-ios", "s3cret")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def node(startup: str | None, *exec_lines: str) -> Node:
    return Node(name="k1", vendor=mini_ios(post_boot_commands=[]), image="x", startup_config=startup, exec=exec_lines)


def test_the_startup_config_lines_are_those_between_config_enter_and_exit() -> None:
    typed = node("hostname A\n!\ninterface GigabitEthernet0/1\n", "show version")
    assert typed.post_boot_commands == ["configure terminal", "hostname A", "interface GigabitEthernet0/1", "end",
                                        "show version"]
    assert list(typed.startup_config_lines) == [1, 2]
    assert list(node(None, "show version").startup_config_lines) == []


def test_a_refused_startup_config_line_is_reported_and_the_rest_applied() -> None:
    p = provider()
    try:
        results = p.run_post_boot("lab", node("hostname EDGE\nbogus line here\nhostname AFTER\n"))
    finally:
        p.close()
    assert [(r.command, r.ok) for r in results] == [
        ("configure terminal", True), ("hostname EDGE", True), ("bogus line here", False), ("hostname AFTER", True),
        ("end", True),
    ]
    (error,) = refused_lines(results)
    assert error == ConfigError(line="bogus line here", message="% Invalid input detected at '^' marker.")


def test_an_exec_line_refused_still_fails_the_node() -> None:
    p = provider()
    try:
        with pytest.raises(CommandError) as caught:
            p.run_post_boot("lab", node("hostname EDGE\n", "bogus exec line"))
    finally:
        p.close()
    assert caught.value.command == "bogus exec line"


def test_the_device_message_drops_the_lone_caret() -> None:
    error = ConfigError.refused(" interface Nonexistent9/9", IOS_REFUSAL)
    assert error.line == "interface Nonexistent9/9"
    assert error.message == "interface Nonexistent9/9 % Invalid input detected at '^' marker."
    assert error.text() == "'interface Nonexistent9/9': " + error.message
    ok = [CommandResult("hostname A", 0, "", 0.1), CommandResult("interface Nonexistent9/9", 1, IOS_REFUSAL, 0.1)]
    assert [e.line for e in refused_lines(ok)] == ["interface Nonexistent9/9"]


def test_strict_names_every_refused_line() -> None:
    err = ConfigRefusedError("k1", [ConfigError.refused("interface Nonexistent9/9", IOS_REFUSAL)])
    assert "node k1" in str(err) and "'interface Nonexistent9/9'" in str(err) and not err.transient


def test_config_errors_survive_the_state_table() -> None:
    errors = [ConfigError(line="interface Nonexistent9/9", message="% Invalid input detected at '^' marker.")]
    state = LabState(lab_id="lab-e", status=LabStatus.DEPLOYED, nodes=[
        NodeRecord(name="k1", kind="mini-ios", provider="libvirt", runtime_name="arch-lab-e-k1",
                   state=NodePhase.READY, config_errors=errors),
        NodeRecord(name="k2", kind="mini-ios", provider="libvirt", runtime_name="arch-lab-e-k2", state=NodePhase.READY),
    ])
    rows = json.loads(json.dumps(state_to_rows(state)))  # Artifact.get gives table data back as JSON
    back = state_from_rows(rows)
    assert back.nodes[0].config_errors == errors and back.nodes[1].config_errors == []
    assert next(r for r in rows if r["name"] == "k2")["config_errors"] == ""


def test_the_host_record_of_a_node() -> None:
    errors = [ConfigError(line="x", message="% Invalid input")]
    assert config_errors.load("lab-e", "k1") == []
    config_errors.save("lab-e", "k1", errors)
    assert config_errors.load("lab-e", "k1") == errors
    assert config_errors.record_path("lab-e", "k1").stat().st_mode & 0o077 == 0  # root only: what users typed
    config_errors.save("lab-e", "k1", [])  # configured again without error
    assert not config_errors.record_path("lab-e", "k1").exists()


def test_a_node_configured_before_keeps_what_its_device_refused() -> None:
    """A redeploy does not configure a running node again: its errors still stand."""
    from flows.deploy_lab import _keep_config_errors

    errors = [ConfigError(line="x", message="% Invalid input")]

    def record(name: str, phase: NodePhase, errs: list[ConfigError] | None = None) -> NodeRecord:
        return NodeRecord(name=name, kind="mini-ios", provider="libvirt", runtime_name=f"arch-l-{name}", state=phase,
                          config_errors=errs or [])

    previous = LabState(lab_id="l", status=LabStatus.DEPLOYED,
                        nodes=[record("kept", NodePhase.READY, errors), record("again", NodePhase.READY, errors)])
    planned = LabState(lab_id="l", status=LabStatus.ALLOCATED,
                       nodes=[record("kept", NodePhase.READY), record("again", NodePhase.PLANNED)])
    _keep_config_errors(previous, planned)
    assert planned.nodes[0].config_errors == errors and planned.nodes[1].config_errors == []


def test_a_fleet_deploy_keeps_each_hosts_config_errors() -> None:
    """A lab over hosts: the coordinator's state takes each node's config_errors from its
    host's report (as a single-host deploy keeps them), in the form deploy --json gives."""
    from flows.fleet import _merge

    refused = ConfigError(line="interface Nonexistent9/9", message="% Invalid input detected at '^' marker.")
    state = LabState(lab_id="fleet-ce", status=LabStatus.ALLOCATED, nodes=[
        NodeRecord(name="v1", kind="mini-ios", provider="libvirt", host="sim-1", runtime_name="arch-fleet-ce-v1"),
        NodeRecord(name="r1", kind="frr", provider="docker", host="sim-2", runtime_name="archetype-fleet-ce-r1"),
    ])
    _merge(state, {
        "sim-1": {"nodes": [{"name": "v1", "state": "running", "ready_seconds": 9.0,
                             "config_errors": config_errors.as_json([refused])}]},
        "sim-2": {"nodes": [{"name": "r1", "state": "running", "ready_seconds": 1.0}]},
    })
    by_name = {n.name: n for n in state.nodes}
    assert by_name["v1"].config_errors == [refused]
    assert by_name["r1"].config_errors == []
