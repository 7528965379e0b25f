"""End to end, as a user of the Prefect UI/API would: a mixed lab of two FRR containers
and one mini-ios VM, deployed by a process worker from a flow run created over REST."""

from __future__ import annotations

import json
import secrets
import textwrap
import time

import docker
import pytest
import yaml

from lab import names
from providers.labs import labs_with_resources
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt]

R1 = """\
hostname r1
interface eth1
 ip address 10.1.12.1/30
interface lo
 ip address 10.0.0.1/32
router bgp 65001
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 neighbor 10.1.12.2 remote-as 65002
 address-family ipv4 unicast
  network 10.0.0.1/32
 exit-address-family
"""
R2 = """\
hostname r2
interface eth1
 ip address 10.1.12.2/30
interface eth2
 ip address 10.1.23.2/24
interface lo
 ip address 10.0.0.2/32
router bgp 65002
 bgp router-id 10.0.0.2
 no bgp ebgp-requires-policy
 neighbor 10.1.12.1 remote-as 65001
 address-family ipv4 unicast
  network 10.0.0.2/32
 exit-address-family
"""


def mixed_topology(lab_id: str) -> str:
    return yaml.safe_dump(
        {
            "name": lab_id,
            "topology": {
                "nodes": {
                    "r1": {"kind": "frr", "startup-config": R1},
                    "r2": {"kind": "frr", "startup-config": R2},
                    "v1": {
                        "kind": "mini-ios",
                        "exec": [
                            "configure terminal",
                            "interface GigabitEthernet0/1",
                            "ip address 10.1.23.3 255.255.255.0",
                            "no shutdown",
                            "end",
                        ],
                    },
                },
                "links": [
                    {"endpoints": ["r1:eth1", "r2:eth1"]},
                    {"endpoints": ["r2:eth2", "v1:GigabitEthernet0/1"]},
                ],
            },
        },
        sort_keys=False,
    )


def exec_in(lab_id: str, node: str, *argv: str) -> tuple[int, str]:
    client = docker.from_env()
    try:
        code, out = client.containers.get(names.container_name(lab_id, node)).exec_run(list(argv))
        return code, out.decode(errors="replace")
    finally:
        client.close()


def wait_until(check, timeout: float, interval: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def run_and_wait(host: PrefectServer, deployment: str, parameters: dict, timeout: float = 600) -> dict:
    run_id = host.run_deployment(deployment, parameters)
    run = host.wait_flow_run(run_id, timeout)
    assert run["state_type"] == "COMPLETED", host.flow_run_logs(run_id)[-4000:]
    return run


@pytest.fixture(scope="module")
def mixed_lab(lab_host: PrefectServer):
    lab_id = f"e2e-{secrets.token_hex(3)}"
    run_and_wait(lab_host, "deploy-lab", {"topology": mixed_topology(lab_id)})
    try:
        yield lab_id
    finally:
        if leftovers(lab_id):  # destroy is itself under test below; this is the safety net
            lab_host.wait_flow_run(lab_host.run_deployment("destroy-lab", {"lab": lab_id}), 300)


def bgp_state(lab_id: str, node: str, peer: str) -> str | None:
    """The BGP session state FRR reports for ``peer`` ("Established", "Active", ...), from
    its JSON summary (the text table's columns shift between FRR releases: the one read
    before was PfxSnt, a number whether the session is up or not)."""
    code, out = exec_in(lab_id, node, "vtysh", "-c", "show bgp summary json")
    if code != 0:
        return None
    try:
        return json.loads(out)["ipv4Unicast"]["peers"][peer]["state"]
    except (ValueError, KeyError, TypeError):
        return None


def test_deploy_from_the_rest_api_brings_up_a_mixed_lab(lab_host: PrefectServer, mixed_lab: str) -> None:
    assert wait_until(lambda: bgp_state(mixed_lab, "r1", "10.1.12.2") == "Established", 60), \
        exec_in(mixed_lab, "r1", "vtysh", "-c", "show bgp summary")[1]
    code, out = exec_in(mixed_lab, "r2", "ping", "-c", "3", "-W", "2", "10.1.23.3")
    assert code == 0, out  # FRR container -> VM, across the OVS VLAN

    state = lab_host.artifact(names.state_artifact_key(mixed_lab))
    assert state is not None and '"deployed"' in str(state["data"])


def test_extract_configs_saves_all_three(lab_host: PrefectServer, mixed_lab: str) -> None:
    run_and_wait(lab_host, "extract-configs", {"lab": mixed_lab})
    folder = names.configs_dir(mixed_lab)
    assert "neighbor 10.1.12.2 remote-as 65002" in (folder / "r1.cfg").read_text()
    assert "neighbor 10.1.12.1 remote-as 65001" in (folder / "r2.cfg").read_text()
    vm_config = (folder / "v1.cfg").read_text()
    assert "ip address 10.1.23.3 255.255.255.0" in vm_config and "no ip domain-lookup" in vm_config
    for node in ("r1", "r2", "v1"):
        artifact = lab_host.artifact(names.config_artifact_key(mixed_lab, node))
        assert artifact is not None and "hostname" in artifact["data"]


def test_cleanup_deployment_has_its_cron_and_removes_only_orphans(lab_host: PrefectServer, mixed_lab: str) -> None:
    deployment = lab_host.api("GET", f"/deployments/{lab_host.deployment_id('cleanup-orphans')}")
    assert any(s["schedule"].get("cron") for s in deployment["schedules"])

    orphan = f"orph-{secrets.token_hex(3)}"
    orphan_topology = textwrap.dedent(f"""\
        name: {orphan}
        topology:
          nodes: {{h1: {{kind: linux}}, h2: {{kind: linux}}}}
          links: [{{endpoints: ["h1:eth1", "h2:eth1"]}}]
        """)
    run_and_wait(lab_host, "deploy-lab", {"topology": orphan_topology})
    assert leftovers(orphan)
    # Every other lab on this host is known (other suites' labs may be running).
    known = sorted(labs_with_resources() - {orphan})
    assert mixed_lab in known
    run_and_wait(lab_host, "cleanup-orphans", {"known_lab_ids": known, "dry_run": False})
    assert leftovers(orphan) == {}
    assert leftovers(mixed_lab)  # the known lab is still there
    code, _ = exec_in(mixed_lab, "r1", "true")
    assert code == 0


def test_destroy_leaves_nothing(lab_host: PrefectServer, mixed_lab: str) -> None:
    run_and_wait(lab_host, "destroy-lab", {"lab": mixed_lab})
    assert leftovers(mixed_lab) == {}
