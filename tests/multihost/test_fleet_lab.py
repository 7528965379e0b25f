"""A lab over two simulated hosts: FRR r1 on sim-1, FRR r2 and mini-ios v1 on sim-2, links
r1-r2, r2-v1, r1-v1 (two of them cross-host, through VXLAN tunnels on the underlay)."""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from tests.multihost.conftest import HOSTS, REPO, Fleet, host_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt, pytest.mark.ovs]

R1 = """\
hostname r1
interface eth1
 ip address 10.1.12.1/30
interface eth2
 ip address 10.1.13.1/24
router bgp 65001
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 neighbor 10.1.12.2 remote-as 65002
"""
R2 = """\
hostname r2
interface eth1
 ip address 10.1.12.2/30
interface eth2
 ip address 10.1.23.2/24
router bgp 65002
 bgp router-id 10.0.0.2
 no bgp ebgp-requires-policy
 neighbor 10.1.12.1 remote-as 65001
"""
V1_EXEC = [
    "configure terminal",
    "interface GigabitEthernet0/1", "ip address 10.1.23.3 255.255.255.0", "no shutdown",
    "interface GigabitEthernet0/2", "ip address 10.1.13.3 255.255.255.0", "no shutdown",
    "end",
]
# 1 MiB over TCP with what the FRR image has (perl): r2 serves, r1 counts what arrives.
SERVE_1MIB = ("use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 5701, Listen => 1, ReuseAddr => 1) "
              "or die; my $c = $s->accept; print $c 'x' x 1048576; close $c;")
FETCH = ("use IO::Socket::INET; my $c = IO::Socket::INET->new(PeerAddr => '10.1.12.2:5701', Timeout => 10) or die $!; "
         "my ($n, $b) = (0, ''); while ((my $r = sysread($c, $b, 65536)) > 0) { $n += $r } print $n;")


def topology(lab_id: str, tmp_path) -> str:
    (tmp_path / "r1.conf").write_text(R1)  # a file next to the topology: the host never sees it
    document = {
        "name": lab_id,
        "topology": {
            "kinds": {"frr": {"image": "archetype/frr:latest"}},
            "groups": {"far": {"host": "sim-2"}},  # host: inherited like any field
            "nodes": {
                "r1": {"kind": "frr", "host": "sim-1", "startup-config": "r1.conf"},
                "r2": {"kind": "frr", "group": "far", "startup-config": R2},
                "v1": {"kind": "mini-ios", "group": "far", "exec": V1_EXEC},
            },
            "links": [
                {"endpoints": ["r1:eth1", "r2:eth1"]},
                {"endpoints": ["r2:eth2", "v1:GigabitEthernet0/1"]},
                {"endpoints": ["r1:eth2", "v1:GigabitEthernet0/2"]},
            ],
        },
    }
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def lab(fleet: Fleet, tmp_path_factory) -> tuple[str, dict]:
    import secrets

    lab_id = f"mh-{secrets.token_hex(3)}"
    code, deployed, err = fleet.cli_json("deploy", topology(lab_id, tmp_path_factory.mktemp("lab")))
    try:
        assert code == 0, err[-4000:]
        yield lab_id, deployed
    finally:
        if any(host_leftovers(fleet, h, lab_id) for h in HOSTS):  # destroy is under test below; this is the net
            fleet.cli("destroy", lab_id)


def test_each_node_runs_on_its_host(lab) -> None:
    _, deployed = lab
    assert {n["name"]: (n["host"], n["state"]) for n in deployed["nodes"]} == {
        "r1": ("sim-1", "ready"), "r2": ("sim-2", "ready"), "v1": ("sim-2", "ready"),
    }
    vnis = [link["vni"] for link in deployed["links"] if link["vni"] is not None]
    assert len(vnis) == 2 and len(set(vnis)) == 2  # r1-r2 and r1-v1 cross; r2-v1 stays on sim-2


def test_bgp_is_established_across_the_tunnel(fleet: Fleet, lab) -> None:
    lab_id, _ = lab

    def established() -> tuple[bool, str]:
        code, out = fleet.docker_exec("sim-1", lab_id, "r1", "vtysh", "-c", "show bgp summary")
        rows = [line.split() for line in out.splitlines() if line.startswith("10.1.12.2")]
        return code == 0 and bool(rows) and rows[0][-3].isdigit(), out  # State/PfxRcd is a count once Established

    import time

    deadline = time.monotonic() + 90
    ok, out = established()
    while not ok and time.monotonic() < deadline:
        time.sleep(2)
        ok, out = established()
    assert ok, out


def test_tcp_crosses_every_cross_host_link(fleet: Fleet, lab) -> None:
    lab_id, _ = lab
    # r1 (sim-1) <-> r2 (sim-2), container to container: 1 MiB of TCP, and a full 1500-byte frame.
    fleet.serve_tcp("sim-2", lab_id, "r2", 5701, SERVE_1MIB)
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "perl", "-e", FETCH)
    assert code == 0 and out.strip() == str(1 << 20), out
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "ping", "-c", "2", "-W", "3", "-s", "1472", "-M", "do", "10.1.12.2")
    assert code == 0, out
    # r1 (sim-1) <-> v1 (sim-2), container to VM: mini-ios's telnet service (port 23) takes
    # the connection -- a full TCP handshake and data, which a broken checksum would stop.
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "timeout", "10", "bash", "-c", "echo > /dev/tcp/10.1.13.3/23")
    assert code == 0, out
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "ping", "-c", "2", "-W", "3", "10.1.13.3")
    assert code == 0, out


def test_status_shows_each_node_with_its_host(fleet: Fleet, lab) -> None:
    lab_id, _ = lab
    code, document, err = fleet.cli_json("status", lab_id)
    assert code == 0, err
    (found,) = document["labs"]
    assert {n["name"]: (n["host"], n["state"]) for n in found["nodes"]} == {
        "r1": ("sim-1", "running"), "r2": ("sim-2", "running"), "v1": ("sim-2", "running"),
    }
    hosts = fleet.hosts()
    assert all(hosts[h]["alive"] and lab_id in hosts[h]["labs"] for h in HOSTS)


def test_connect_reaches_a_node_on_another_host(fleet: Fleet, lab) -> None:
    """`archetype connect` from this machine: vtysh on r2, which runs on sim-2 (a terminal
    is needed: `script` gives it one)."""
    import subprocess

    lab_id, _ = lab
    keys = "sleep 8; printf 'show bgp summary\\r'; sleep 3; printf 'exit\\r'; sleep 2"
    command = f"{sys.executable} -c 'from archetype.cli import main; main()' connect {lab_id} r2"
    session = subprocess.run(["sh", "-c", f"({keys}) | script -qec \"{command}\" /dev/null"], capture_output=True,
                             text=True, timeout=120, env={**os.environ, **fleet.env, "PYTHONPATH": str(REPO)}, check=False)
    assert "r2# show bgp summary" in session.stdout and "10.1.12.1" in session.stdout, session.stdout[-2000:]


def test_exec_reaches_a_node_on_another_host(fleet: Fleet, lab) -> None:
    """`archetype exec` from this machine runs on r2's host (sim-2) and gives the command's
    output and exit status."""
    lab_id, _ = lab
    shown = fleet.cli("exec", lab_id, "r2", "--", "vtysh", "-c", "show bgp summary")
    assert shown.returncode == 0 and "10.1.12.1" in shown.stdout, shown.stderr[-2000:]
    failed = fleet.cli("exec", lab_id, "r2", "--", "sh", "-c", "exit 3")
    assert failed.returncode == 3, failed.stderr[-2000:]


def test_configs_returns_all_three(fleet: Fleet, lab) -> None:
    from pathlib import Path

    lab_id, _ = lab
    code, document, err = fleet.cli_json("configs", lab_id)
    assert code == 0, err[-3000:]
    configs = document["configs"]
    try:
        assert {n: (c["ok"], c["host"]) for n, c in configs.items()} == {
            "r1": (True, "sim-1"), "r2": (True, "sim-2"), "v1": (True, "sim-2"),
        }
        # written where the command ran (this machine's workspace), not left on the hosts
        assert "neighbor 10.1.12.2 remote-as 65002" in Path(configs["r1"]["path"]).read_text()
        assert "neighbor 10.1.12.1 remote-as 65001" in Path(configs["r2"]["path"]).read_text()
        assert "ip address 10.1.13.3 255.255.255.0" in Path(configs["v1"]["path"]).read_text()
    finally:
        import shutil

        shutil.rmtree(Path(configs["r1"]["path"]).parent, ignore_errors=True)


def test_orphan_cleanup_on_one_host_never_touches_labs_it_does_not_run(fleet: Fleet, lab) -> None:
    lab_id, _ = lab
    # sim-1's scheduled cleanup: the known labs come from the shared server, so both this
    # lab's part on sim-1 and its part on sim-2 stay.
    assert fleet.run_deployment("cleanup-orphans/sim-1", {"known_lab_ids": [], "dry_run": False}) == "COMPLETED"
    assert set(host_leftovers(fleet, "sim-1", lab_id)["containers"]) == {f"archetype-{lab_id}-r1"}
    assert set(host_leftovers(fleet, "sim-2", lab_id)["containers"]) == {f"archetype-{lab_id}-r2"}
    code, out = fleet.docker_exec("sim-1", lab_id, "r1", "ping", "-c", "1", "-W", "3", "10.1.12.2")
    assert code == 0, out


def test_destroy_leaves_nothing_on_either_host(fleet: Fleet, lab) -> None:
    lab_id, _ = lab
    code, document, err = fleet.cli_json("destroy", lab_id)
    assert code == 0, err[-3000:]
    assert {h: host_leftovers(fleet, h, lab_id) for h in HOSTS} == {h: {} for h in HOSTS}
