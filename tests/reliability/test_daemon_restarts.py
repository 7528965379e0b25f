"""Daemons restarted under a lab: dockerd and libvirtd in the middle of a deploy, Open
vSwitch with a lab up. The flow retries or recovers; nothing is lost or duplicated; a
redeploy converges; discovery is still right.

These disturb every lab on the host (other test runs included): each restart is one
quick kill and an immediate start, in a ``finally``, so the daemon is never left down.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from lab import names
from tests.reliability import faults
from tests.reliability.faults import Deploy
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
LIBVIRTD_DOWN = 3.0  # seconds libvirtd stays down (a cold start takes longer than a warm one)


def _restart_dockerd() -> float:
    """SIGKILL dockerd (its containerd goes with it; containers stop), start it again."""
    started = time.monotonic()
    try:
        faults.kill_daemon("/var/run/docker.pid", "dockerd")
    finally:
        faults.start_daemons("docker")
    return time.monotonic() - started


def _restart_libvirtd(down: float = 0.0) -> float:
    """SIGKILL libvirtd (QEMU processes and virtlogd stay), start it again after ``down`` s."""
    started = time.monotonic()
    try:
        faults.kill_daemon("/run/libvirtd.pid", "libvirtd")
        time.sleep(down)
    finally:
        faults.start_daemons("libvirt")
    return time.monotonic() - started


OVS_PIDFILES = {"ovsdb-server": "/run/openvswitch/ovsdb-server.pid", "ovs-vswitchd": "/run/openvswitch/ovs-vswitchd.pid"}


def _ovs_pids() -> dict[str, int | None]:
    """The running pid of each OVS daemon (None: no pid file, or no such process)."""
    pids = {}
    for daemon, pidfile in OVS_PIDFILES.items():
        try:
            pid = int(Path(pidfile).read_text().strip())
        except (OSError, ValueError):
            pid = None
        alive = pid is not None and Path(f"/proc/{pid}/comm").exists() and \
            Path(f"/proc/{pid}/comm").read_text().strip() == daemon
        pids[daemon] = pid if alive else None
    return pids


def _restart_ovs() -> float:
    """`ovs-ctl restart`: ovsdb-server and ovs-vswitchd stop and start (conf.db stays).
    Checked: both daemons run afterwards under new pids (a restart that did nothing fails)."""
    before = _ovs_pids()
    assert all(before.values()), f"OVS is not running before the restart: {before}"
    started = time.monotonic()
    try:
        done = subprocess.run([OVS_CTL, "restart", "--system-id=random"], capture_output=True, text=True,
                              timeout=120, start_new_session=True, check=False)
    finally:
        faults.start_daemons("ovs")
    after = _ovs_pids()
    assert all(after.values()) and all(after[d] != before[d] for d in before), (
        f"OVS was not restarted: pids {before} -> {after}; ovs-ctl said {done.stdout[-500:]}{done.stderr[-500:]}")
    return time.monotonic() - started


def _retried(server: PrefectServer, lab: str) -> dict[str, int]:
    """Task runs of the lab's newest deploy that ran more than once: name -> runs."""
    flow_runs = server.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"any_": [f"deploy-lab/{lab}"]}}})
    ids = [r["id"] for r in flow_runs]
    runs = server.api("POST", "/task_runs/filter", json={"flow_runs": {"id": {"any_": ids}}})
    return {r["name"]: r["run_count"] for r in runs if r["run_count"] > 1}


def test_dockerd_restarted_while_nodes_are_created(server: PrefectServer, tmp_path: Path) -> None:
    """dockerd goes away while the containers are being made: the create and wire steps
    retry (a container stopped by the restart is started again) and the same run completes."""
    lab = faults.lab_id("dockerd")
    topology = faults.small_lab(lab, tmp_path)
    run = Deploy.start(server, topology)
    try:
        # The first container exists and is not started yet: every node is in its create step.
        assert faults.wait_until(lambda: faults.containers(lab) or not run.running(), 120, 0.01)
        assert run.running(), run.stderr()[-3000:]
        print(f"dockerd down and back in {_restart_dockerd():.1f} s")
        code = run.wait()
        retried = _retried(server, lab)
        print("retried:", retried)
        assert code == 0, f"the deploy did not recover from the dockerd restart (exit {code}):\n{run.stderr()[-4000:]}"
        assert any(name.startswith("bring-up/") for name in retried), retried
        result = run.result()
        faults.assert_converged(lab, result, containers_expected=4, ports_expected=6)
        faults.assert_discovered(lab, dict.fromkeys(("h1", "h2", "r1", "r2"), "running"))
        assert faults.pings(lab, "r1", "10.9.12.2") and faults.pings(lab, "r1", "10.9.1.2")
        assert faults.pings(lab, "r2", "10.9.2.2")

        again = faults.deploy(server, topology)  # converges on itself: nothing changes
        faults.assert_converged(lab, again, containers_expected=4, ports_expected=6,
                                vlans_before=faults.link_vlans(result))
        faults.destroy_and_check(server, lab)
    finally:
        faults.tear_down(server, lab, runs=[run])
    assert leftovers(lab) == {}


def test_dockerd_restarted_during_post_boot(server: PrefectServer, tmp_path: Path) -> None:
    """dockerd goes away once every node is wired (h1 in its post-boot): the restart stops
    every container and takes their links with their namespaces. The run does not recover
    by itself (the retried step cannot re-wire a node: that is an earlier step): it fails
    at once naming the node, discovery shows the stopped nodes, and deploying again
    converges with the same VLANs and nothing duplicated."""
    lab = faults.lab_id("dockerd")
    topology = faults.small_lab(lab, tmp_path, post_boot_sleep=10, mark=True)
    run = Deploy.start(server, topology)
    try:
        marked = tmp_path / "mark" / lab / "post-boot"
        assert faults.wait_until(lambda: (marked.exists() and len(faults.lab_ports(lab)) == 6) or not run.running(),
                                 120, 0.05)
        assert run.running(), run.stderr()[-3000:]
        vlans = faults.reserved_vlans(lab)
        print(f"dockerd down and back in {_restart_dockerd():.1f} s")
        code = run.wait(timeout=120)
        assert code == 1, f"exit {code}: {run.stderr()[-3000:]}"
        report = run.stderr().partition("\nerror: ")[2]  # the CLI's error: every failed node, named
        assert "h1: post-boot" in report and "not running" in report, run.stderr()[-3000:]
        # h1 stays stopped; a node whose bring-up (create, wire, ready: one retried task)
        # was still running when dockerd went is started again by its retry.
        found = faults.discovered(lab)
        assert set(found) == {"h1", "h2", "r1", "r2"} and found["h1"] == "stopped", found
        assert faults.state_status(server, lab) == "failed"

        result = faults.deploy(server, topology)
        faults.assert_converged(lab, result, containers_expected=4, ports_expected=6, vlans_before=vlans)
        faults.assert_discovered(lab, dict.fromkeys(("h1", "h2", "r1", "r2"), "running"))
        assert faults.pings(lab, "r1", "10.9.12.2") and faults.pings(lab, "r1", "10.9.1.2")
        assert faults.pings(lab, "r2", "10.9.2.2")
        faults.destroy_and_check(server, lab)
    finally:
        faults.tear_down(server, lab, runs=[run])
    assert leftovers(lab) == {}


@pytest.mark.libvirt
def test_libvirtd_restarted_mid_deploy(server: PrefectServer, tmp_path: Path, mini_ios_image: None) -> None:
    lab = faults.lab_id("libvirtd")
    topology = faults.mixed_lab(lab, tmp_path)
    run = Deploy.start(server, topology)
    try:
        # Mid-deploy: the VM was just started (its serial log appeared): it boots, and the
        # deploy is starting it or watching its readiness (which asks libvirt every second).
        serial = names.serial_log_path(lab, "v1")
        assert faults.wait_until(lambda: (serial.exists() and faults.state_status(server, lab) == "creating")
                                 or not run.running(), 120, 0.02)
        assert "Press RETURN" not in serial.read_text(errors="replace")
        assert run.running(), run.stderr()[-3000:]
        print(f"libvirtd down and back in {_restart_libvirtd(down=LIBVIRTD_DOWN):.1f} s")
        code = run.wait()
        print("retried:", _retried(server, lab))
        assert code == 0, f"the deploy did not recover from the libvirtd restart (exit {code}):\n{run.stderr()[-4000:]}"
        result = run.result()
        faults.assert_converged(lab, result, containers_expected=1, domains_expected=1, ports_expected=2)
        assert faults.domains(lab) == [names.domain_name(lab, "v1")]
        faults.assert_discovered(lab, {"r1": "running", "v1": "running"})
        assert faults.pings(lab, "r1", "10.7.0.2", timeout=30), "r1 does not reach the VM\n" + faults.reach_picture(lab, "v1")
        faults.destroy_and_check(server, lab)
    finally:
        faults.tear_down(server, lab, runs=[run])
    assert leftovers(lab) == {}


@pytest.mark.libvirt
def test_ovs_restarted_with_a_lab_up(server: PrefectServer, tmp_path: Path, mini_ios_image: None) -> None:
    lab = faults.lab_id("ovs")
    topology = faults.mixed_lab(lab, tmp_path, host=True)
    try:
        result = faults.deploy(server, topology)
        vlans = faults.link_vlans(result)
        faults.assert_converged(lab, result, containers_expected=2, domains_expected=1, ports_expected=4)
        assert faults.pings(lab, "r1", "10.7.0.2", timeout=30) and faults.pings(lab, "r1", "10.7.1.2")
        ports = faults.lab_ports(lab)

        print(f"OVS down and back in {_restart_ovs():.1f} s")
        print("after the OVS restart, before a redeploy: container link", faults.pings(lab, "r1", "10.7.1.2", timeout=5),
              "VM link", faults.pings(lab, "r1", "10.7.0.2", timeout=5))
        # Ports, tags and markers live in conf.db: all still there, once.
        assert faults.lab_ports(lab) == ports
        assert {p.name for p in ports} <= faults.bridge_port_names()
        faults.assert_discovered(lab, {"h1": "running", "r1": "running", "v1": "running"})

        again = faults.deploy(server, topology)  # re-wires what the restart broke
        faults.assert_converged(lab, again, containers_expected=2, domains_expected=1, ports_expected=4,
                                vlans_before=vlans)
        assert faults.pings(lab, "r1", "10.7.1.2"), "container link broken after the OVS restart"
        assert faults.pings(lab, "r1", "10.7.0.2", timeout=30), "VM link broken after the OVS restart"
        faults.destroy_and_check(server, lab)
    finally:
        faults.safety_destroy(server, lab)
    assert leftovers(lab) == {}
