"""Snapshots end to end, on real daemons and a real Prefect server: a lab of a mini-ios VM
and two FRR nodes in eBGP (test_lab_controls' lab) is frozen, destroyed and brought back.

- what lived only in the VM's memory (a hostname typed on its console) and in FRR's
  running config (a prefix-list typed in vtysh) is there after the restore, the VM answers
  within seconds and its uptime went on (no boot), BGP comes back Established;
- snapshot-lab runs as a deployment (REST, as the UI does); restore from the CLI;
- a restore over the running lab is refused without --force;
- the files a node binds (a folder of r2's) and the files its kind says matter (FRR's
  /etc/frr/daemons, edited by hand in r1) come back as they were when the snapshot was taken,
  with their modes and owners;
- a truncated memory file or a foreign file is invalid input: exit 2, the file named, nothing
  created.

The tests run in order on one lab.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import threading
import time
from pathlib import Path

import pytest
import yaml

from lab import names
from lab import snapshots as store
from lab.locks import lab_lock
from tests.e2e.test_lab_controls import BGP_WAIT, bgp_established, cli, mixed_topology, ok
from tests.e2e.test_mixed_lab import exec_in, run_and_wait, wait_until
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt]

MARK_HOSTNAME = "snapmark"
FRR_MARK = "ip prefix-list SNAPMARK seq 5 permit 10.99.0.0/16"
DAEMONS_MARK = "# snapmark: kept by the snapshot"
BOUND_TEXT = "as it was at the snapshot\n"
LOCK_HELD = 8.0  # seconds a "deploy" holds the lab's lock while a snapshot is asked for
ANSWER_WITHIN = 10.0  # seconds from the restore's end to the VM's first answer, beyond the CLI's own cost


def vm_uptime_minutes(host: PrefectServer, lab: str) -> int:
    """The VM's uptime in minutes, from `show version` ("snapmark uptime is 1 minute")."""
    out = ok(cli(host, "exec", lab, "v1", "--", "show version"))
    found = re.search(r"uptime is (.*)", out)
    assert found, out
    spans = dict((unit.rstrip("s"), int(n)) for n, unit in re.findall(r"(\d+) (week|day|hour|minute)s?", found[1]))
    return spans.get("week", 0) * 10080 + spans.get("day", 0) * 1440 + spans.get("hour", 0) * 60 + spans.get("minute", 0)


@pytest.fixture(scope="module")
def lab(lab_host: PrefectServer, tmp_path_factory: pytest.TempPathFactory):
    lab_id = f"snap-{secrets.token_hex(3)}"
    folder = tmp_path_factory.mktemp("snap")
    (folder / "r2-extra").mkdir()
    (folder / "r2-extra" / "note.txt").write_text(BOUND_TEXT)
    os.chmod(folder / "r2-extra" / "note.txt", 0o640)
    document = yaml.safe_load(mixed_topology(lab_id))
    document["topology"]["nodes"]["r2"]["binds"] = ["r2-extra:/etc/archetype-extra"]
    topology = folder / "lab.yml"
    topology.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        started = time.monotonic()
        ok(cli(lab_host, "deploy", str(topology)))
        deploy_seconds = time.monotonic() - started
        assert wait_until(lambda: bgp_established(lab_id), BGP_WAIT)
        yield {"id": lab_id, "file": topology, "deploy_seconds": deploy_seconds, "folder": folder}
    finally:
        if leftovers(lab_id):
            cli(lab_host, "destroy", lab_id)
        for snapshot in store.list_snapshots(lab_id):
            store.delete_snapshot(lab_id, str(snapshot["name"]))


def test_snapshot_destroy_restore_keeps_what_lived_in_memory(lab_host: PrefectServer, lab: dict) -> None:
    lab_id = lab["id"]
    ok(cli(lab_host, "exec", lab_id, "v1", "--", "configure terminal", f"hostname {MARK_HOSTNAME}", "end"))
    code, out = exec_in(lab_id, "r1", "vtysh", "-c", "configure terminal", "-c", FRR_MARK)
    assert code == 0, out
    code, out = exec_in(lab_id, "r1", "sh", "-c", f"echo '{DAEMONS_MARK}' >> /etc/frr/daemons")  # by hand
    assert code == 0, out
    code, daemons_owner = exec_in(lab_id, "r1", "stat", "-c", "%U:%G %a", "/etc/frr/daemons")
    assert code == 0 and daemons_owner.startswith("frr:frr "), daemons_owner
    # an uptime of a minute or more: a VM that booted again would say 0 minutes
    assert wait_until(lambda: vm_uptime_minutes(lab_host, lab_id) >= 1, 120, interval=5)

    run_and_wait(lab_host, "snapshot-lab", {"lab": lab_id, "name": "first"})  # as the UI or REST runs it
    folder = names.workspace() / "snapshots" / lab_id / "first"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"vms/v1/memory.save", "configs/r1.cfg", "configs/r2.cfg", "topology.yml", "state.json"} <= set(manifest["files"])
    for path in [folder, *folder.rglob("*")]:  # root-only
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    assert FRR_MARK in (folder / "configs" / "r1.cfg").read_text()
    assert DAEMONS_MARK in (folder / "files" / "r1" / "etc" / "frr" / "daemons").read_text()  # the kind's file
    assert (folder / "binds" / "r2" / "0" / "dir" / "note.txt").read_text() == BOUND_TEXT  # r2's bind
    (lab["folder"] / "r2-extra" / "note.txt").write_text("changed after the snapshot\n")
    assert MARK_HOSTNAME in ok(cli(lab_host, "exec", lab_id, "v1", "--", "show running-config"))  # it ran on

    listed = json.loads(ok(cli(lab_host, "snapshots", lab_id, "--json")))["snapshots"]
    assert [s["name"] for s in listed] == ["first"] and listed[0]["size_bytes"] > 0

    refused = cli(lab_host, "restore", lab_id, "first")
    assert refused.returncode == 1 and "--force" in refused.stderr, refused.stderr

    ok(cli(lab_host, "destroy", lab_id))
    assert not leftovers(lab_id)
    started = time.monotonic()
    restored = json.loads(ok(cli(lab_host, "restore", lab_id, "first", "--json")))
    restore_seconds = time.monotonic() - started
    assert {n["name"]: n["state"] for n in restored["nodes"]} == {"r1": "ready", "r2": "ready", "v1": "ready"}

    started = time.monotonic()  # what a command costs here before any VM answers (the CLI, under the host's load)
    ok(cli(lab_host, "exec", lab_id, "r1", "--", "true"))
    overhead = time.monotonic() - started
    answered = time.monotonic()
    running = ok(cli(lab_host, "exec", lab_id, "v1", "--", "show running-config"))
    assert time.monotonic() - answered < ANSWER_WITHIN + overhead, f"the CLI alone took {overhead:.1f} s"
    assert f"hostname {MARK_HOSTNAME}" in running  # only its memory had it
    assert vm_uptime_minutes(lab_host, lab_id) >= 1  # no boot
    code, out = exec_in(lab_id, "r1", "vtysh", "-c", "show running-config")
    assert code == 0 and FRR_MARK in out
    assert wait_until(lambda: bgp_established(lab_id), BGP_WAIT)
    code, out = exec_in(lab_id, "r1", "sh", "-c", "cat /etc/frr/daemons; stat -c '%U:%G %a' /etc/frr/daemons")
    assert code == 0 and DAEMONS_MARK in out and "bgpd=yes" in out and out.endswith(daemons_owner), out
    code, out = exec_in(lab_id, "r2", "sh", "-c", "cat /etc/archetype-extra/note.txt; stat -c '%a' /etc/archetype-extra/note.txt")
    assert code == 0 and out == BOUND_TEXT + "640\n", out  # as it was at the snapshot, not as it is now
    code, out = exec_in(lab_id, "r2", "ping", "-c", "2", "-W", "3", "10.1.23.3")  # the VM's link, as it was
    assert code == 0, out
    print(f"\nfresh deploy {lab['deploy_seconds']:.1f} s; restore (CLI, end to end) {restore_seconds:.1f} s, "
          f"flow {restored['seconds']:.1f} s")


def test_a_truncated_memory_file_is_refused_and_nothing_is_made(lab_host: PrefectServer, lab: dict) -> None:
    lab_id = lab["id"]
    ok(cli(lab_host, "snapshot", lab_id, "--name", "second"))
    ok(cli(lab_host, "destroy", lab_id))
    memory = names.workspace() / "snapshots" / lab_id / "second" / "vms" / "v1" / "memory.save"
    with open(memory, "r+b") as handle:
        handle.truncate(os.path.getsize(memory) // 2)

    result = cli(lab_host, "restore", lab_id, "second")
    assert result.returncode == 2, result.stderr  # invalid input
    assert "vms/v1/memory.save" in result.stderr and "truncated" in result.stderr, result.stderr
    assert not leftovers(lab_id)
    assert not list(names.lab_files_dir(lab_id).glob("_restored-*"))  # not even the nodes' files

    (memory.parent / "extra.bin").write_bytes(b"x")  # a file the manifest does not list
    result = cli(lab_host, "restore", lab_id, "second")
    assert result.returncode == 2 and "extra.bin" in result.stderr and "foreign" in result.stderr, result.stderr
    assert not leftovers(lab_id)


def test_deploy_from_a_snapshot_and_a_snapshot_waits_for_the_labs_lock(lab_host: PrefectServer, lab: dict) -> None:
    lab_id = lab["id"]
    restored = json.loads(ok(cli(lab_host, "deploy", str(lab["file"]), "--snapshot", "first", "--json")))
    assert restored["snapshot"] == "first" and {n["state"] for n in restored["nodes"]} == {"ready"}
    assert f"hostname {MARK_HOSTNAME}" in ok(cli(lab_host, "exec", lab_id, "v1", "--", "show running-config"))

    held = threading.Event()

    def deploy_running() -> None:  # what a deploy of the lab holds while it runs
        with lab_lock(lab_id):
            held.set()
            time.sleep(LOCK_HELD)

    holder = threading.Thread(target=deploy_running)
    holder.start()
    assert held.wait(30)
    started = time.monotonic()
    ok(cli(lab_host, "snapshot", lab_id, "--name", "third"))
    holder.join()
    assert time.monotonic() - started >= LOCK_HELD - 1  # it waited, then froze the lab
    store.verify(lab_id, "third")


def test_delete_removes_a_snapshot(lab_host: PrefectServer, lab: dict) -> None:
    lab_id = lab["id"]
    ok(cli(lab_host, "snapshot", lab_id, "--delete", "second"))
    assert [s["name"] for s in store.list_snapshots(lab_id)] == ["first", "third"]
    assert cli(lab_host, "snapshot", lab_id, "--delete", "../first").returncode == 2
    assert Path(names.workspace() / "snapshots" / lab_id / "first").is_dir()
