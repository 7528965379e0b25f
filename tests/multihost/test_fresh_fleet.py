"""A fleet made from a fresh machine's state works: on a used machine, the fleet's state and
run folders are removed first (scripts/fresh-host-state.sh, what `make test` does before the
suite), then `make sim-up HOSTS=2`, then a lab with a mini-ios VM on each simulated host
deploys, its VMs ready. Before, a fresh fleet's workspaces came out 0700 (the umask of its
secrets stayed for the rest of sim-fleet.sh) and every VM on it failed with QEMU's
"Permission denied"; CI passed only because its fleet state already existed.

Runs first among the fleet's tests (conftest orders it): the fleet it brings up is the one
they share."""

from __future__ import annotations

import pytest
import yaml

from tests.multihost.conftest import HOSTS, Fleet, host_leftovers, start_fresh_fleet

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs]



def _topology(lab_id: str, folder) -> str:  # noqa: ANN001 - a pytest tmp path
    document = {
        "name": lab_id,
        "topology": {
            "nodes": {
                "v1": {"kind": "mini-ios", "host": HOSTS[0]},
                "v2": {"kind": "mini-ios", "host": HOSTS[1]},
            },
            "links": [{"endpoints": ["v1:GigabitEthernet0/1", "v2:GigabitEthernet0/1"]}],  # through VXLAN
        },
    }
    path = folder / "lab.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def _modes(fleet: Fleet, host: str, *paths: str) -> dict[str, str]:
    result = fleet.on(host, "stat", "-c", "%n %a", *paths)
    return dict(line.split() for line in result.stdout.splitlines())


def test_a_fleet_from_no_state_deploys_a_vm_on_each_host(fleet_owner: dict[str, bool], tmp_path, lab_id: str) -> None:
    seconds, fleet = start_fresh_fleet(fleet_owner)
    print(f"\n[figures] fresh fleet of {len(HOSTS)} hosts: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))

    code, deployed, err = fleet.cli_json("deploy", _topology(lab_id, tmp_path))
    try:
        assert code == 0, err[-4000:]
        nodes = {n["name"]: n for n in deployed["nodes"]}
        assert {name: (n["host"], n["state"]) for name, n in nodes.items()} == {
            "v1": (HOSTS[0], "ready"), "v2": (HOSTS[1], "ready")}
        for host in HOSTS:  # what QEMU traverses on each host: search only; the rest root's alone
            modes = _modes(fleet, host, "/var/lib/archetype", "/var/lib/archetype/data",
                           f"/var/lib/archetype/data/{lab_id}", "/var/lib/archetype/prefect")
            assert modes == {"/var/lib/archetype": "711", "/var/lib/archetype/data": "711",
                             f"/var/lib/archetype/data/{lab_id}": "711", "/var/lib/archetype/prefect": "700"}, modes
    finally:
        code, _, err = fleet.cli_json("destroy", lab_id)
    assert code == 0, err[-3000:]
    for host in HOSTS:
        assert host_leftovers(fleet, host, lab_id) == {}, host
