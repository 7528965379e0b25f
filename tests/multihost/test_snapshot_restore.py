"""A snapshot taken on one host of the fleet, restored on another (issue 25): a mini-ios VM v1
and an FRR node r1 on sim-1, linked; `archetype snapshot` from the coordinator freezes the lab
on sim-1 (its workspace, root-only); the lab is destroyed; `archetype restore LAB NAME --to
sim-2` carries the snapshot's files to sim-2 and brings the lab back there.

What a user relies on: v1 resumes on sim-2 (no boot: its uptime went on, a hostname typed on
its console and never saved is still there), r1 has its startup config and a line typed in
its running config, the link carries traffic as before, sim-1 holds nothing of the lab but
the snapshot; a snapshot damaged on sim-1 (a truncated memory file) is refused with exit 2,
the file named, nothing made on sim-2.
"""

from __future__ import annotations

import json
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.multihost.conftest import HOSTS, Fleet, host_leftovers
from tests.multihost.test_migrate import console, uptime_seconds

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs]

R1 = "hostname r1\ninterface eth1\n ip address 10.3.1.1/24\n"
V1_EXEC = ["configure terminal", "interface GigabitEthernet0/1", "ip address 10.3.1.3 255.255.255.0", "no shutdown",
           "end"]
MARK = "SNAPMH"
FRR_MARK = "ip prefix-list SNAPMH seq 5 permit 10.98.0.0/16"
SIM_WORKSPACE = Path("/var/lib/archetype-sim/hosts")  # each host's /var/lib/archetype, seen from here


def snapshot_folder(host: str, lab_id: str, name: str) -> Path:
    return SIM_WORKSPACE / host / "workspace" / "snapshots" / lab_id / name


def lab_resources(fleet: Fleet, host: str, lab_id: str) -> dict[str, list[str]]:
    """What the lab has on a host, its snapshots left aside (they outlive the lab)."""
    found = host_leftovers(fleet, host, lab_id)
    workspace = [p for p in found.pop("workspace", []) if "/snapshots/" not in p]
    return {**found, **({"workspace": workspace} if workspace else {})}


@pytest.fixture(scope="module")
def lab(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lab_id = f"snapmh-{secrets.token_hex(2)}"
    document = {"name": lab_id, "topology": {
        "kinds": {"frr": {"image": "archetype/frr:latest"}},
        "nodes": {"r1": {"kind": "frr", "host": "sim-1", "startup-config": R1},
                  "v1": {"kind": "mini-ios", "host": "sim-1", "exec": V1_EXEC}},
        "links": [{"endpoints": ["r1:eth1", "v1:GigabitEthernet0/1"]}]}}
    path = tmp_path_factory.mktemp("snapmh") / "lab.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        code, deployed, err = fleet.cli_json("deploy", str(path))
        assert code == 0, err[-4000:]
        assert {n["name"]: n["host"] for n in deployed["nodes"]} == {"r1": "sim-1", "v1": "sim-1"}
        yield lab_id
    finally:
        if any(lab_resources(fleet, h, lab_id) for h in HOSTS):
            fleet.cli("destroy", lab_id)
        fleet.cli("snapshot", lab_id, "--delete", "first")  # where it lives, and the fleet's record of it
        for host in HOSTS:  # a copy a restore left
            fleet.on(host, "rm", "-rf", f"/var/lib/archetype/snapshots/{lab_id}")


def ping_v1(fleet: Fleet, host: str, lab_id: str, within: float) -> tuple[int, str]:
    deadline = time.monotonic() + within
    while True:
        code, out = fleet.docker_exec(host, lab_id, "r1", "ping", "-c", "2", "-W", "2", "10.3.1.3")
        if code == 0 or time.monotonic() > deadline:
            return code, out
        time.sleep(2)


def test_a_lab_frozen_on_one_host_comes_back_on_the_other(fleet: Fleet, lab: str) -> None:
    lab_id = lab
    console(fleet, "sim-1", lab_id, "configure terminal", f"hostname {MARK}", "end")  # never saved
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "vtysh", "-c", "configure terminal", "-c", FRR_MARK)
    assert code == 0, out
    code, out = ping_v1(fleet, "sim-1", lab_id, within=60)
    assert code == 0, out
    deadline = time.monotonic() + 120  # a minute of uptime: a VM booted again would say less
    while (before := uptime_seconds(console(fleet, "sim-1", lab_id, "show version")[0])) < 60:
        assert time.monotonic() < deadline, before
        time.sleep(5)

    code, taken, err = fleet.cli_json("snapshot", lab_id, "--name", "first")
    assert code == 0, err[-4000:]
    assert taken["host"] == "sim-1" and taken["vms"] == ["v1"] and taken["containers"] == ["r1"]
    folder = snapshot_folder("sim-1", lab_id, "first")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"vms/v1/memory.save", "configs/r1.cfg", "topology.yml", "state.json"} <= set(manifest["files"])
    for path in [folder, *folder.rglob("*")]:  # root-only
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    code, listed, err = fleet.cli_json("snapshots", lab_id)
    assert code == 0, err
    assert [(s["name"], s["host"]) for s in listed["snapshots"]] == [("first", "sim-1")]

    code, _, err = fleet.cli_json("restore", lab_id, "first", "--to", "sim-2")  # the lab runs
    assert code == 1 and "--force" in err, err[-3000:]
    assert fleet.cli("destroy", lab_id).returncode == 0
    assert not any(lab_resources(fleet, h, lab_id) for h in HOSTS)

    started = time.monotonic()
    code, restored, err = fleet.cli_json("restore", lab_id, "first", "--to", "sim-2")
    seconds = time.monotonic() - started
    assert code == 0, err[-4000:]
    assert (restored["host"], restored["copied_from"]) == ("sim-2", "sim-1")
    assert {n["name"]: n["state"] for n in restored["nodes"]} == {"r1": "ready", "v1": "ready"}
    print(f"\n[figures] restore --to sim-2 (copy of {manifest_size(manifest) / 2**20:.0f} MiB included): "
          f"{seconds:.1f} s from the CLI, {restored['seconds']} s on sim-2, v1 resumed in "
          f"{restored['vm_restore_seconds']['v1']} s")

    assert lab_resources(fleet, "sim-1", lab_id) == {}
    assert lab_resources(fleet, "sim-2", lab_id)["domains"] == [f"arch-{lab_id}-v1"]
    config, version = console(fleet, "sim-2", lab_id, "show running-config", "show version")
    assert f"hostname {MARK}" in config  # only its memory had it
    assert uptime_seconds(version) >= before  # no boot
    code, out = fleet.docker_exec("sim-2", lab_id, "r1", "vtysh", "-c", "show running-config")
    assert code == 0 and FRR_MARK in out and "ip address 10.3.1.1/24" in out, out
    code, out = ping_v1(fleet, "sim-2", lab_id, within=30)  # the link, as it was
    assert code == 0, out
    code, document, err = fleet.cli_json("status", lab_id)
    assert code == 0, err
    assert {n["name"]: n["host"] for n in document["labs"][0]["nodes"]} == {"r1": "sim-2", "v1": "sim-2"}


def manifest_size(manifest: dict) -> int:
    return sum(entry["size"] for entry in manifest["files"].values())


def test_a_snapshot_damaged_on_its_host_is_refused_and_nothing_is_made(fleet: Fleet, lab: str) -> None:
    lab_id = lab
    assert fleet.cli("destroy", lab_id).returncode == 0
    fleet.on("sim-2", "rm", "-rf", f"/var/lib/archetype/snapshots/{lab_id}")  # the copy the restore left there
    memory = snapshot_folder("sim-1", lab_id, "first") / "vms" / "v1" / "memory.save"
    with open(memory, "r+b") as handle:
        handle.truncate(memory.stat().st_size // 2)

    result = fleet.cli("restore", lab_id, "first", "--to", "sim-2")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "vms/v1/memory.save" in result.stderr and "truncated" in result.stderr, result.stderr[-3000:]
    assert not any(lab_resources(fleet, h, lab_id) for h in HOSTS)
    assert not fleet.on("sim-2", "ls", "-A", f"/var/lib/archetype/snapshots/{lab_id}").stdout.strip()


def test_delete_from_the_coordinator_removes_it_where_it_lives(fleet: Fleet, lab: str) -> None:
    assert snapshot_folder("sim-1", lab, "first").is_dir()
    result = fleet.cli("snapshot", lab, "--delete", "first")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not snapshot_folder("sim-1", lab, "first").exists()
    code, listed, err = fleet.cli_json("snapshots", lab)
    assert code == 0 and listed["snapshots"] == [], err
