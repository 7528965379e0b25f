"""SIGKILL of `archetype deploy` at ten points of its work, each found by polling the host
(not by guessing a delay): deploying again converges -- every node ready, the VLANs of the
first allocation, nothing duplicated, the links working -- and destroy leaves nothing.

The lab (faults.small_lab): h1 -- r1 -- r2 -- h2, two FRR routers and two linux hosts,
three links, six OVS ports; h1's post-boot marks a file and then waits until the test
releases it (after the kill), so the deploy is seen in post-boot and lasts past every kill
point however fast the host, while the redeploy's post-boot passes at once.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.reliability import faults
from tests.reliability.faults import Deploy
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

SEED = 20261125
CONTAINERS, PORTS = 4, 6


def _random_delay() -> Callable[[str, Path, PrefectServer, Deploy], bool]:
    # within the deploy (process start ~1.5 s, the lab ~1.5 s, then h1's post-boot is held)
    delay = random.Random(SEED).uniform(1.0, 4.5)

    def elapsed(_lab: str, _folder: Path, _server: PrefectServer, deploy: Deploy) -> bool:
        import time

        return time.monotonic() - deploy.started >= delay

    elapsed.__doc__ = f"{delay:.2f} s after the start (seed {SEED})"
    return elapsed


# name -> condition on the host that marks the kill point
KILL_POINTS: dict[str, Callable[[str, Path, PrefectServer, Deploy], bool]] = {
    "vlans-reserved": lambda lab, *_: faults.reserved_vlans(lab) is not None,
    "state-allocated": lambda lab, _f, server, _d: faults.state_status(server, lab) == "allocated",
    "mgmt-network": lambda lab, *_: bool(faults.mgmt_networks(lab)),
    # a container made and not started yet: its startup config may not be in it
    "container-created": lambda lab, *_: any(c["state"] == "created" for c in faults.containers(lab)),
    "all-containers": lambda lab, *_: len(faults.containers(lab)) >= CONTAINERS,
    "first-veth": lambda lab, *_: len(faults.lab_veths(lab)) >= 1,
    "first-ovs-port": lambda lab, *_: len(faults.lab_ports(lab)) >= 1,
    "all-ovs-ports": lambda lab, *_: len(faults.lab_ports(lab)) >= PORTS,
    "post-boot": lambda lab, folder, *_: (folder / "mark" / lab / "post-boot").exists(),
    "seeded-delay": _random_delay(),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_deploy_killed_then_redeployed_converges(server: PrefectServer, tmp_path: Path, point: str) -> None:
    lab = faults.lab_id("kill")
    topology = faults.small_lab(lab, tmp_path, mark=True, hold=True)
    reached = KILL_POINTS[point]
    run = Deploy.start(server, topology)
    try:
        seen = faults.wait_until(lambda: reached(lab, tmp_path, server, run) or not run.running(), 120, 0.02)
        assert seen, f"kill point {point} not reached in 120 s"
        assert run.running(), f"the deploy ended (exit {run.process.returncode}) before kill point {point}:\n" \
                              f"{run.stderr()[-3000:]}"
        run.kill()
        faults.release(lab, tmp_path)  # the redeploy's post-boot of h1 does not wait
        first_allocation = faults.reserved_vlans(lab)

        result = faults.deploy(server, topology)
        faults.assert_converged(lab, result, containers_expected=CONTAINERS, ports_expected=PORTS,
                                vlans_before=first_allocation)
        assert faults.state_status(server, lab) == "deployed"
        faults.assert_discovered(lab, dict.fromkeys(("h1", "h2", "r1", "r2"), "running"))
        assert faults.pings(lab, "r1", "10.9.12.2"), "r1 does not reach r2"
        assert faults.pings(lab, "r1", "10.9.1.2"), "r1 does not reach h1"
        assert faults.pings(lab, "r2", "10.9.2.2"), "r2 does not reach h2"

        faults.destroy_and_check(server, lab)
        assert faults.state_status(server, lab) == "destroyed"
    finally:
        faults.tear_down(server, lab, runs=[run])
    assert leftovers(lab) == {}


# A lab with a VM (faults.mixed_lab: r1 -- v1, one link, two OVS ports): killed while the
# domain is being made, and while the deploy talks to the VM's serial console.
VM_KILL_POINTS: dict[str, Callable[[str], bool]] = {
    "vm-domain-defined": lambda lab: bool(faults.domains(lab)),
    "vm-console-session": lambda lab: bool(faults.console_processes(lab)),
}


@pytest.mark.libvirt
@pytest.mark.parametrize("point", list(VM_KILL_POINTS))
def test_deploy_with_a_vm_killed_then_redeployed_converges(
    server: PrefectServer, tmp_path: Path, mini_ios_image: None, point: str
) -> None:
    lab = faults.lab_id("killvm")
    topology = faults.mixed_lab(lab, tmp_path)
    run = Deploy.start(server, topology)
    try:
        seen = faults.wait_until(lambda: VM_KILL_POINTS[point](lab) or not run.running(), 180, 0.02)
        assert seen and run.running(), f"kill point {point} not reached: {run.stderr()[-3000:]}"
        run.kill()
        # Its console session (pexpect's child, in a session of its own) dies with it: the
        # pty's master side closed, virsh gets a hangup.
        assert faults.wait_until(lambda: not faults.console_processes(lab), 10, 0.1), faults.console_processes(lab)
        first_allocation = faults.reserved_vlans(lab)

        result = faults.deploy(server, topology)
        faults.assert_converged(lab, result, containers_expected=1, domains_expected=1, ports_expected=2,
                                vlans_before=first_allocation)
        faults.assert_discovered(lab, {"r1": "running", "v1": "running"})
        assert faults.pings(lab, "r1", "10.7.0.2", timeout=30), "r1 does not reach the VM"
        faults.destroy_and_check(server, lab)
        assert not faults.console_processes(lab)
    finally:
        faults.tear_down(server, lab, runs=[run])
    assert leftovers(lab) == {}


def test_redeploy_killed_after_its_allocation_keeps_the_nodes_configured(server: PrefectServer, tmp_path: Path) -> None:
    """A deployed lab, a redeploy killed once it published its allocation, a redeploy: the
    nodes configured by the first deploy (and running since) are not configured again --
    their `exec` (`ip addr add`, not idempotent) would fail a second time.

    The killed redeploy adds a node whose post-boot sleeps: a redeploy of running nodes alone
    ends some 0.2 s after it publishes its allocation, too soon to be killed there every time.
    The last deploy, of the first topology, removes that node again."""
    lab = faults.lab_id("rekill")
    topology = faults.pair_lab(lab, tmp_path, verb="add")
    document = yaml.safe_load(topology.read_text())
    document["topology"]["nodes"]["h3"] = {"kind": "linux", "exec": ["sleep 60"]}
    slow_redeploy = faults.write_topology(tmp_path / "with-h3", document)
    run: Deploy | None = None
    try:
        first = faults.deploy(server, topology)
        assert faults.state_status(server, lab) == "deployed"
        run = Deploy.start(server, slow_redeploy)
        assert faults.wait_until(lambda: faults.state_status(server, lab) == "allocated" or not run.running(), 120, 0.02)
        assert run.running(), run.stderr()[-3000:]
        run.kill()

        done = faults.cli(server, "deploy", str(topology), "--json")
        assert done.returncode == 0, done.stderr[-3000:]  # `ip addr add` run again would fail: "File exists"
        faults.assert_converged(lab, json.loads(done.stdout), containers_expected=2, ports_expected=2,
                                vlans_before=faults.link_vlans(first))
        assert faults.pings(lab, "h1", "10.8.0.2")
        faults.destroy_and_check(server, lab)
    finally:
        faults.tear_down(server, lab, runs=[run])
    assert leftovers(lab) == {}
