"""A running lab's controls, end to end, on real daemons, a real Prefect server and worker:
node stop/start/restart, link state and impairment, exec and capture -- from the command
line (on that server) and from flow runs created over REST, as the UI does.

The lab: r1 (FRR) -- r2 (FRR) -- v1 (mini-ios VM), eBGP between r1 and r2 (test_mixed_lab's).
The tests run in order on one lab.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lab import names
from providers.network import ovs
from tests.e2e import test_mixed_lab
from tests.e2e.test_mixed_lab import exec_in, run_and_wait, wait_until
from tests.support.leftovers import leftovers
from tests.support.prefect_server import ARCHETYPE, REPO, PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt]

BGP_WAIT = 120  # seconds for a session to come back (a loaded host)


def mixed_topology(lab_id: str) -> str:
    """test_mixed_lab's lab, with BGP retrying its connection every 5 s (FRR's default,
    120 s, would make each link-up wait for it)."""
    document = yaml.safe_load(test_mixed_lab.mixed_topology(lab_id))
    nodes = document["topology"]["nodes"]
    for node, (peer, asn) in (("r1", ("10.1.12.2", 65002)), ("r2", ("10.1.12.1", 65001))):
        remote_as = f" neighbor {peer} remote-as {asn}\n"
        config = nodes[node]["startup-config"]
        nodes[node]["startup-config"] = config.replace(remote_as, f"{remote_as} neighbor {peer} timers connect 5\n")
        assert "timers connect 5" in nodes[node]["startup-config"]
    return yaml.safe_dump(document, sort_keys=False)
R1_R2 = "r1:eth1--r2:eth1"
R2_V1 = "r2:eth2--v1:GigabitEthernet0/1"


def cli(host: PrefectServer, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = host.env(PYTHONPATH=str(REPO))
    return subprocess.run([ARCHETYPE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def bgp_established(lab: str) -> bool:
    code, out = exec_in(lab, "r1", "vtysh", "-c", "show bgp summary")
    # State/PfxRcd (third from the end) is a prefix count only once Established
    return code == 0 and any(line.startswith("10.1.12.2") and line.split()[-3].isdigit() for line in out.splitlines())


def min_rtt(lab: str, node: str, address: str) -> float:
    code, out = exec_in(lab, node, "ping", "-c", "3", "-i", "0.3", "-W", "3", address)
    assert code == 0, out
    return float(re.search(r"= ([\d.]+)/", out).group(1))


def tags(lab: str) -> dict[str, int | None]:
    """Each of the lab's host ports on the bridge with its VLAN tag."""
    return {p.name: p.tag for p in ovs.bridge_ports().values() if p.lab_id == lab}


def tcp_reaches_v1(lab: str) -> bool:
    """A TCP SYN to v1 answered by its kernel's RST ("refused"): TCP passes both ways with
    good checksums (a partial checksum would be dropped: a timeout, not a refusal)."""
    code, out = exec_in(lab, "r2", "bash", "-c", "timeout 5 bash -c 'exec 3<>/dev/tcp/10.1.23.3/179' 2>&1; true")
    return "Connection refused" in out


def _has_child(pid: int, name: str) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            comm, ppid = fields[0].split("(", 1)[1], int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and comm == name:
            return True
    return False


def pcap_packets(path: Path) -> list[str]:
    result = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def lab(lab_host: PrefectServer):
    lab_id = f"ops-{secrets.token_hex(3)}"
    try:
        run_and_wait(lab_host, "deploy-lab", {"topology": mixed_topology(lab_id)})
        assert wait_until(lambda: bgp_established(lab_id), BGP_WAIT)
        yield lab_id
    finally:
        if leftovers(lab_id):
            lab_host.wait_flow_run(lab_host.run_deployment("destroy-lab", {"lab": lab_id}), 300)


def test_exec_on_a_container_gives_output_and_exit_status(lab_host: PrefectServer, lab: str) -> None:
    out = ok(cli(lab_host, "exec", lab, "r1", "--", "vtysh", "-c", "show bgp summary"))
    assert "10.1.12.2" in out
    assert cli(lab_host, "exec", lab, "r1", "--", "sh", "-c", "echo to-stdout; exit 3").returncode == 3
    result = cli(lab_host, "exec", "--json", lab, "r1", "--", "sh", "-c", "echo hello; exit 4")
    assert result.returncode == 4 and '"exit_code": 4' in result.stdout and "hello" in result.stdout


def test_exec_on_a_vm_gives_its_cli_answer(lab_host: PrefectServer, lab: str) -> None:
    out = ok(cli(lab_host, "exec", lab, "v1", "--", "show ip interface brief", "show version"))
    assert "10.1.23.3" in out and "IOS" in out
    bad = cli(lab_host, "exec", lab, "v1", "--", "show no-such-thing")
    assert bad.returncode == 1 and "Invalid input" in bad.stdout


def test_bad_input_is_refused_and_changes_nothing(lab_host: PrefectServer, lab: str) -> None:
    before = tags(lab)
    cases = [
        ("link", lab, "r1:eth1", "--delay", "-5"),
        ("link", lab, "r1:eth1", "--loss", "150"),
        ("link", lab, "r1:eth9", "--delay", "5"),
        ("link", lab, "r7:eth1", "--state", "down"),
        ("link", lab, "r1:eth1", "--state", "sideways"),
        ("link", "ops-nosuch", "r1:eth1", "--state", "down"),
        ("node", "stop", lab, "r7"),
        ("node", "stop", "Bad_Lab", "r1"),
        ("exec", lab, "r7", "--", "true"),
        ("capture", lab, "r1:eth9", "--count", "1", "--write", "/tmp/x.pcap"),
    ]
    for args in cases:
        result = cli(lab_host, *args)
        assert result.returncode == 2, (args, result.stderr[-1000:])
        assert "error: " in result.stderr, args
    assert tags(lab) == before and bgp_established(lab)
    assert not list((names.lab_dir(lab) / "relays").glob("*.json"))


def test_link_down_takes_bgp_down_and_up_restores_it(lab_host: PrefectServer, lab: str) -> None:
    ok(cli(lab_host, "link", lab, "r1:eth1", "--state", "down"))
    code, out = exec_in(lab, "r1", "ip", "link", "show", "eth1")
    assert "NO-CARRIER" in out  # r1 sees the link go
    code, out = exec_in(lab, "r2", "ip", "link", "show", "eth1")
    assert "NO-CARRIER" in out  # and so does r2
    assert wait_until(lambda: not bgp_established(lab), 60)
    ok(cli(lab_host, "link", lab, "r1:eth1", "--state", "up"))
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)


def test_link_down_on_a_vm_end_takes_carrier_from_both_devices(lab_host: PrefectServer, lab: str) -> None:
    ok(cli(lab_host, "link", lab, "v1:GigabitEthernet0/1", "--state", "down"))
    assert "NO-CARRIER" in exec_in(lab, "r2", "ip", "link", "show", "eth2")[1]  # the container end
    # The guest lost carrier (libvirt <link state='down'/>): its NIC tells it by an interrupt,
    # a moment after the host's change (a command served at once by the executor can ask first).
    assert wait_until(lambda: "line protocol is down" in ok(cli(lab_host, "exec", lab, "v1", "--",
                                                                "show interfaces GigabitEthernet0/1")), 30)
    assert exec_in(lab, "r2", "ping", "-c", "2", "-W", "1", "10.1.23.3")[0] != 0
    assert "down" in ok(cli(lab_host, "link", lab, "--json"))
    ok(cli(lab_host, "link", lab, "r2:eth2", "--state", "up"))
    assert wait_until(lambda: exec_in(lab, "r2", "ping", "-c", "1", "-W", "2", "10.1.23.3")[0] == 0, 60)
    shown = ok(cli(lab_host, "exec", lab, "v1", "--", "show interfaces GigabitEthernet0/1"))
    assert "line protocol is up" in shown


def test_delay_makes_rtt_and_clear_removes_it(lab_host: PrefectServer, lab: str) -> None:
    ok(cli(lab_host, "link", lab, "r2:eth2", "--delay", "100"))
    assert min_rtt(lab, "r2", "10.1.23.3") >= 200  # 100 ms each way (container -> VM link)
    ok(cli(lab_host, "link", lab, "r1:eth1", "--delay", "100", "--jitter", "1"))
    assert min_rtt(lab, "r1", "10.1.12.2") >= 198
    listed = ok(cli(lab_host, "link", lab, "--json"))
    assert '"delay_ms": 100.0' in listed and '"state": "up"' in listed
    ok(cli(lab_host, "link", lab, "v1:Gi0/1", "--clear"))  # the same link, from its other end
    assert min_rtt(lab, "r2", "10.1.23.3") < 100
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)  # BGP over the relay (r1-r2 still delayed)


def test_stopping_a_container_takes_bgp_down_and_starting_it_brings_it_back(lab_host: PrefectServer, lab: str) -> None:
    before = tags(lab)
    ok(cli(lab_host, "node", "stop", lab, "r2"))
    status = ok(cli(lab_host, "status", lab, "--json"))
    assert re.search(r'"name": "r2",\s*"kind": "frr",\s*"provider": "docker",\s*"state": "stopped"', status), status
    assert wait_until(lambda: not bgp_established(lab), 60)
    ok(cli(lab_host, "node", "start", lab, "r2"))
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)  # no redeploy
    after = tags(lab)
    assert {p: t for p, t in after.items() if p in before} == before  # same VLANs
    assert min_rtt(lab, "r1", "10.1.12.2") >= 198  # the impairment survived the restart


def test_restarting_the_vm_brings_its_links_back(lab_host: PrefectServer, lab: str) -> None:
    before = tags(lab)
    ok(cli(lab_host, "node", "restart", lab, "v1"))
    assert wait_until(lambda: exec_in(lab, "r2", "ping", "-c", "1", "-W", "2", "10.1.23.3")[0] == 0, 60)
    assert wait_until(lambda: tcp_reaches_v1(lab), 30)
    assert tags(lab) == before


def test_capture_writes_a_pcap_of_the_links_packets(lab_host: PrefectServer, lab: str, tmp_path: Path) -> None:
    for endpoint, (node, address) in (("r1:eth1", ("r2", "10.1.12.1")), ("v1:GigabitEthernet0/1", ("r2", "10.1.23.3"))):
        pinger = subprocess.Popen(["docker", "exec", names.container_name(lab, node), "ping", "-c", "40", "-i", "0.3",
                                   address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            target = tmp_path / f"{node}-{address}.pcap"
            result = cli(lab_host, "capture", lab, endpoint, "--count", "5", "--write", str(target), "--json")
            ok(result)
            assert '"packets": 5' in result.stdout
        finally:
            pinger.kill()
            pinger.wait()
        packets = pcap_packets(target)
        assert len(packets) == 5, packets
        assert sum(address in line and "ICMP" in line for line in packets) >= 3, packets


def test_capture_to_stdout_ends_cleanly_on_ctrl_c(lab_host: PrefectServer, lab: str, tmp_path: Path) -> None:
    target = tmp_path / "stream.pcap"
    with open(target, "wb") as out:
        process = subprocess.Popen([ARCHETYPE, "capture", lab, "r2:eth1"], stdout=out, stderr=subprocess.PIPE,
                                   env=lab_host.env(PYTHONPATH=str(REPO)), start_new_session=True)
        assert wait_until(lambda: _has_child(process.pid, "tcpdump"), 60, 0.2)
        time.sleep(1)  # tcpdump opens its socket
        exec_in(lab, "r2", "ping", "-c", "3", "-i", "0.3", "10.1.12.1")
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: the whole group
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    assert len(pcap_packets(target)) >= 6


def test_rest_runs_work_like_the_cli(lab_host: PrefectServer, lab: str) -> None:
    run = run_and_wait(lab_host, "set-link", {"lab": lab, "endpoint": "r2:eth1", "state": "down"})
    assert wait_until(lambda: not bgp_established(lab), 60)
    run_and_wait(lab_host, "set-link", {"lab": lab, "endpoint": "r2:eth1", "state": "up", "clear": True})
    assert min_rtt(lab, "r1", "10.1.12.2") < 100
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)

    run_and_wait(lab_host, "control-node", {"lab": lab, "node": "r2", "action": "restart"})
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)

    run = run_and_wait(lab_host, "exec-node", {"lab": lab, "node": "v1", "command": ["show ip interface brief"]})
    artifacts = lab_host.api("POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    assert any("10.1.23.3" in str(a["data"]) for a in artifacts), artifacts

    pinger = subprocess.Popen(["docker", "exec", names.container_name(lab, "r1"), "ping", "-c", "40", "-i", "0.3",
                               "10.1.12.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_and_wait(lab_host, "capture-link", {"lab": lab, "endpoint": "r2:eth1", "count": 5, "seconds": 60})
    finally:
        pinger.kill()
        pinger.wait()
    captures = sorted(Path(names.workspace(), "captures", lab).glob("r2-eth1-*.pcap"))
    assert captures and len(pcap_packets(captures[-1])) == 5

    failed = lab_host.wait_flow_run(lab_host.run_deployment("set-link", {"lab": lab, "endpoint": "r2:eth1",
                                                                          "delay_ms": -1}), 120)
    assert failed["state_type"] == "FAILED"


def test_redeploy_brings_stopped_nodes_back_keeps_link_controls_and_destroy_stops_relays(
    lab_host: PrefectServer, lab: str
) -> None:
    ok(cli(lab_host, "link", lab, "r1:eth1", "--delay", "100"))
    ok(cli(lab_host, "node", "stop", lab, "r2"))
    run_and_wait(lab_host, "deploy-lab", {"topology": mixed_topology(lab)})
    assert '"state": "running"' in ok(cli(lab_host, "status", lab, "--json")).split('"r2"')[1].split("}")[0]
    assert min_rtt(lab, "r1", "10.1.12.2") >= 198
    assert wait_until(lambda: bgp_established(lab), BGP_WAIT)
    run_and_wait(lab_host, "destroy-lab", {"lab": lab})
    assert leftovers(lab) == {}
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert not [line for line in ps.splitlines() if "relay.py" in line and names.host_port_name(lab, "r1", "eth1") in line]
