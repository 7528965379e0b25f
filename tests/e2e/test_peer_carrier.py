"""A stopped node's peers lose carrier and get it back when it starts (issue 26), on one
host: the lab of test_lab_controls (r1 -- r2 -- v1, FRR, FRR, mini-ios VM).

Read from the peers themselves: r1's ``/sys/class/net/eth1/carrier`` (a container end: its
host veth is taken down), v1's ``show interfaces`` (a VM end: ``<link state='down'/>``).
"""

from __future__ import annotations

import pytest

from tests.e2e.test_lab_controls import BGP_WAIT, bgp_established, cli, mixed_topology, ok
from tests.e2e.test_lab_controls import lab as controls_lab
from tests.e2e.test_mixed_lab import exec_in, run_and_wait, wait_until
from tests.support.prefect_server import PrefectServer

lab = controls_lab  # the module's lab, deployed once (its fixture)

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt]


def carrier(lab_id: str, node: str, interface: str) -> str:
    """``1`` or ``0`` (the kernel's answer for an interface that is up)."""
    code, out = exec_in(lab_id, node, "cat", f"/sys/class/net/{interface}/carrier")
    assert code == 0, out
    return out.strip()


def v1_line_protocol(host: PrefectServer, lab_id: str) -> str:
    shown = ok(cli(host, "exec", lab_id, "v1", "--", "show interfaces GigabitEthernet0/1"))
    return "up" if "line protocol is up" in shown else "down"


def test_stopping_a_node_takes_its_peers_carrier_and_starting_it_gives_it_back(lab_host: PrefectServer, lab: str) -> None:
    assert carrier(lab, "r1", "eth1") == "1"
    ok(cli(lab_host, "node", "stop", lab, "r2"))
    assert carrier(lab, "r1", "eth1") == "0"  # a container peer
    assert wait_until(lambda: v1_line_protocol(lab_host, lab) == "down", 30)  # a VM peer
    ok(cli(lab_host, "node", "start", lab, "r2"))
    assert carrier(lab, "r1", "eth1") == "1"
    assert wait_until(lambda: v1_line_protocol(lab_host, lab) == "up", 30)
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)


def test_a_stopped_vm_takes_its_peers_carrier_too(lab_host: PrefectServer, lab: str) -> None:
    ok(cli(lab_host, "node", "stop", lab, "v1"))
    assert carrier(lab, "r2", "eth2") == "0"
    assert carrier(lab, "r1", "eth1") == "1"  # not a peer of v1
    ok(cli(lab_host, "node", "start", lab, "v1"))
    assert carrier(lab, "r2", "eth2") == "1"


def test_a_redeploy_starts_the_stopped_node_and_gives_its_peers_carrier_back(lab_host: PrefectServer, lab: str) -> None:
    ok(cli(lab_host, "node", "stop", lab, "r2"))
    assert carrier(lab, "r1", "eth1") == "0"
    run_and_wait(lab_host, "deploy-lab", {"topology": mixed_topology(lab)})
    assert carrier(lab, "r1", "eth1") == "1"
    assert wait_until(lambda: v1_line_protocol(lab_host, lab) == "up", 30)
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)
