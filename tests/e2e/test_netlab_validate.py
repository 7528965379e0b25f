"""netlab's own tests pass on a lab Archetype deployed: `netlab create` (a topology with a
`validate:` section using netlab's FRR plugins ospf_neighbor and ospf_prefix), `archetype
deploy clab.yml`, `netlab initial`, `netlab validate` exits 0.

netlab reaches the nodes the way it reaches containerlab's: `docker exec` into the container
its inventory names (`clab-<lab>-<node>`, from clab.yml's `prefix: clab`, which Archetype
honours); nothing else of the lab is asked for."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]
BIN = Path(sys.executable).parent

TOPOLOGY = """\
name: {lab}
provider: clab
defaults.device: frr
defaults.devices.frr.clab.image: archetype/frr:latest
module: [ospf]
nodes: [r1, r2, r3]
links: [r1-r2, r2-r3]

validate:
  adj:
    description: r1 and r3 have r2 as a Full neighbour
    wait: 60
    wait_msg: Waiting for OSPF adjacencies
    nodes: [r1, r3]
    plugin: ospf_neighbor(nodes.r2.ospf.router_id)
  adj_r2:
    description: r2 has r1 and r3 as Full neighbours
    wait: 30
    nodes: [r2]
    plugin: ospf_neighbor(nodes.r1.ospf.router_id)
  prefix:
    description: r1 has r3's loopback from OSPF
    wait: 30
    nodes: [r1]
    plugin: ospf_prefix(nodes.r3.loopback.ipv4)
"""


def run(*argv: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_netlab_validate_passes_with_its_frr_plugins(prefect_server: PrefectServer, tmp_path: Path) -> None:
    lab = f"nlv-{secrets.token_hex(2)}"
    (tmp_path / "topology.yml").write_text(TOPOLOGY.format(lab=lab))
    created = run(str(BIN / "netlab"), "create", cwd=tmp_path)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    try:
        deployed = run(str(BIN / "archetype"), "deploy", "clab.yml", cwd=tmp_path, env=prefect_server.env())
        assert deployed.returncode == 0, deployed.stderr[-4000:]
        initial = run(str(BIN / "netlab"), "initial", cwd=tmp_path)
        assert initial.returncode == 0 and "Failed" not in initial.stdout, initial.stdout[-3000:] + initial.stderr[-3000:]
        validated = run(str(BIN / "netlab"), "validate", cwd=tmp_path)
        report = validated.stdout[-4000:] + validated.stderr[-2000:]
        assert validated.returncode == 0, report
        # one result per test and node (adj on r1 and r3, adj_r2 on r2, prefix on r1); none skipped
        assert "Tests passed: 4" in validated.stdout and "skipped" not in validated.stdout, report
    finally:
        destroyed = run(str(BIN / "archetype"), "destroy", lab, cwd=tmp_path, env=prefect_server.env())
        assert destroyed.returncode == 0, destroyed.stderr[-3000:]
        assert leftovers(lab) == {}
