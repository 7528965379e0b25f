"""Labs deployed at the same time: disjoint VLANs, both complete; orphan cleanup while a
lab deploys leaves the deploying lab alone (its lock is held) and removes the orphan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.locks import lab_is_busy
from providers.labs import labs_with_resources
from tests.reliability import faults
from tests.reliability.faults import Deploy
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

ROUNDS = 5


@pytest.mark.parametrize("round_", range(1, ROUNDS + 1))
def test_two_labs_deployed_at_once_get_disjoint_vlans(server: PrefectServer, tmp_path: Path, round_: int) -> None:
    first, second = faults.lab_id(f"two{round_}a"), faults.lab_id(f"two{round_}b")
    labs = {
        first: (faults.pair_lab(first, tmp_path), 2, 2),  # topology, containers, OVS ports
        second: (faults.line_lab(second, tmp_path, hosts=3), 3, 4),
    }
    runs: dict[str, Deploy] = {}
    try:
        runs = {lab: Deploy.start(server, topology) for lab, (topology, _, _) in labs.items()}
        codes = {lab: run.wait() for lab, run in runs.items()}
        assert codes == dict.fromkeys(labs, 0), {lab: runs[lab].stderr()[-2000:] for lab in labs}
        results = {lab: run.result() for lab, run in runs.items()}
        vlans = {lab: set(faults.link_vlans(result).values()) for lab, result in results.items()}
        assert not vlans[first] & vlans[second], f"shared VLANs: {vlans}"
        for lab, (_, count, ports) in labs.items():
            faults.assert_converged(lab, results[lab], containers_expected=count, ports_expected=ports)
        destroys = {lab: faults.cli_process(server, "destroy", lab, "--json") for lab in labs}
        for process in destroys.values():
            out, err = process.communicate(timeout=faults.RUNNING_LIMIT)
            assert process.returncode == 0, err[-3000:]
            assert json.loads(out)["errors"] == []
        for lab in labs:
            assert leftovers(lab) == {}, leftovers(lab)
    finally:
        faults.tear_down(server, *labs, runs=runs.values())


def test_orphan_cleanup_while_a_lab_deploys_leaves_it_alone(server: PrefectServer, tmp_path: Path) -> None:
    deploying, orphan = faults.lab_id("busy"), faults.lab_id("orph")
    run: Deploy | None = None
    try:
        faults.deploy(server, faults.pair_lab(orphan, tmp_path))
        assert leftovers(orphan)
        run = Deploy.start(server, faults.small_lab(deploying, tmp_path, post_boot_sleep=15, mark=True))
        # In post-boot: every node and port exists, the state artifact too, the lock is held.
        marked = tmp_path / "mark" / deploying / "post-boot"
        assert faults.wait_until(lambda: (marked.exists() and len(faults.lab_ports(deploying)) == 6
                                          and {c["state"] for c in faults.containers(deploying)} == {"running"})
                                 or not run.running(), 120, 0.1)
        assert run.running(), run.stderr()[-3000:]
        assert faults.state_status(server, deploying) in ("allocated", "creating")
        assert lab_is_busy(deploying)
        before = {"containers": faults.containers(deploying), "ports": faults.lab_ports(deploying),
                  "vlans": faults.reserved_vlans(deploying)}

        # Every lab on this host is known, but the two of this test (others' labs run here too).
        # Plus one that does not exist: with no --known at all, the CLI would take the known
        # labs from the state artifacts, where both labs of this test are known.
        known = sorted(labs_with_resources() - {deploying, orphan} | {faults.lab_id("none")})
        args = [arg for lab in known for arg in ("--known", lab)]
        done = faults.cli(server, "cleanup", *args, "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert orphan in report["removed"]["labs"] and deploying not in report["removed"]["labs"], report
        assert deploying in report["busy"], report  # asked about, and left alone because it is busy
        assert leftovers(orphan) == {}

        assert run.running(), "the deploy ended during the cleanup"  # it was untouched meanwhile
        assert faults.containers(deploying) == before["containers"]
        assert faults.lab_ports(deploying) == before["ports"]
        assert faults.reserved_vlans(deploying) == before["vlans"]
        assert run.wait() == 0, run.stderr()[-3000:]
        faults.assert_converged(deploying, run.result(), containers_expected=4, ports_expected=6,
                                vlans_before=before["vlans"])
        assert faults.pings(deploying, "r1", "10.9.12.2")
        faults.destroy_and_check(server, deploying)
    finally:
        faults.tear_down(server, deploying, orphan, runs=[run])
    assert leftovers(deploying) == {} and leftovers(orphan) == {}
