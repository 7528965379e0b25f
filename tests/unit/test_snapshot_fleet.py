"""flows.snapshot_fleet.lab_host: a fleet's lab is frozen by the one host it runs on; a lab
spread over hosts is refused with each host's nodes named, before anything is written."""

from __future__ import annotations

import pytest

from flows import snapshot_fleet
from lab.state import LabState, LabStatus, NodeRecord


def state(status: LabStatus = LabStatus.DEPLOYED, **hosts: str | None) -> LabState:
    return LabState(lab_id="lab1", status=status, nodes=[
        NodeRecord(name=node, kind="frr", provider="docker", runtime_name=f"archetype-lab1-{node}", host=host)
        for node, host in hosts.items()])


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, LabState | None]:
    box: dict[str, LabState | None] = {"state": None}
    monkeypatch.setattr(snapshot_fleet, "load_lab_state", lambda lab: box["state"])
    return box


def test_a_lab_on_one_host_is_frozen_there(recorded: dict) -> None:
    recorded["state"] = state(r1="sim-1", v1="sim-1")
    assert snapshot_fleet.lab_host("lab1") == "sim-1"


def test_no_lab_or_a_destroyed_one_is_this_hosts_business(recorded: dict) -> None:
    assert snapshot_fleet.lab_host("lab1") is None
    recorded["state"] = state(LabStatus.DESTROYED, r1="sim-1")
    assert snapshot_fleet.lab_host("lab1") is None


def test_a_lab_spread_over_hosts_is_refused_naming_them(recorded: dict) -> None:
    recorded["state"] = state(r1="sim-1", v1="sim-1", r2="sim-2")
    with pytest.raises(snapshot_fleet.FleetSnapshotRefused, match=r"sim-1: r1, v1; sim-2: r2.*archetype migrate"):
        snapshot_fleet.lab_host("lab1")
