"""A two-node FRR lab over an OVS VLAN link, driven through the provider (no Prefect):
allocate_vlans -> create_node -> wire_node -> wait_ready -> run_post_boot, then eBGP,
a loopback-to-loopback ping, config extraction, and a destroy that leaves nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

import providers.network as network
from lab import names
from providers import labs
from providers.base import LinkEnd
from providers.docker import DockerProvider
from tests.support.leftovers import leftovers
from topology import Lab, load_topology

pytestmark = [pytest.mark.docker, pytest.mark.ovs]

R1 = """frr defaults traditional
interface eth1
 ip address 10.0.12.1/30
interface lo
 ip address 1.1.1.1/32
router bgp 65001
 bgp router-id 1.1.1.1
 no bgp ebgp-requires-policy
 neighbor 10.0.12.2 remote-as 65002
 address-family ipv4 unicast
  network 1.1.1.1/32
 exit-address-family
"""
R2 = (
    R1.replace("10.0.12.1/30", "10.0.12.2/30")
    .replace("1.1.1.1", "2.2.2.2")
    .replace("neighbor 10.0.12.2 remote-as 65002", "neighbor 10.0.12.1 remote-as 65001")
    .replace("router bgp 65001", "router bgp 65002")
)


def _topology(lab_id: str, frr_image: str, folder: Path) -> Lab:
    (folder / "r1.conf").write_text(R1)
    (folder / "r2.conf").write_text(R2)
    text = f"""
name: {lab_id}
topology:
  kinds:
    frr: {{image: {frr_image}}}
  nodes:
    r1: {{kind: frr, startup-config: r1.conf, exec: ["ip addr add 192.0.2.1/32 dev lo"]}}
    r2: {{kind: frr, startup-config: r2.conf}}
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
"""
    return load_topology(text, base_dir=folder)


def _ends(lab: Lab, vlans: dict[str, int]) -> dict[str, list[LinkEnd]]:
    ends: dict[str, list[LinkEnd]] = {name: [] for name in lab.nodes}
    for name in lab.nodes:
        for link, end in lab.links_of(name):
            ends[name].append(
                LinkEnd(
                    link.id,
                    end.interface,
                    end.port,
                    vlans[link.id],
                    names.host_port_name(lab.id, name, end.interface),
                )
            )
    return ends


def _vtysh_json(client: docker.DockerClient, container: str, command: str) -> dict:
    code, output = client.containers.get(container).exec_run(["vtysh", "-c", command])
    assert code == 0, output
    return json.loads(output or b"{}")


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def test_two_frr_nodes_peer_over_the_ovs_vlan_link(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    frr_image: str,
    docker_client: docker.DockerClient,
    ovs: object,
    tmp_path: Path,
) -> None:
    lab = _topology(lab_factory(), frr_image, tmp_path)
    timings: dict[str, float] = {}

    vlans = network.allocate_vlans(lab.id, [link.id for link in lab.links])
    ends = _ends(lab, vlans)
    started = time.monotonic()
    for node in lab.nodes.values():
        provider.create_node(lab.id, node, ends[node.name])
    timings["create"] = time.monotonic() - started
    started = time.monotonic()
    for node in lab.nodes.values():
        provider.wire_node(lab.id, node, ends[node.name])
    timings["wire"] = time.monotonic() - started
    started = time.monotonic()
    for node in lab.nodes.values():
        provider.wait_ready(lab.id, node)
    timings["ready"] = time.monotonic() - started
    for node in lab.nodes.values():
        provider.run_post_boot(lab.id, node)

    # Wiring is idempotent, and so is a second create of running nodes.
    for node in lab.nodes.values():
        provider.create_node(lab.id, node, ends[node.name])
        provider.wire_node(lab.id, node, ends[node.name])

    r1, r2 = (names.container_name(lab.id, n) for n in ("r1", "r2"))
    code, output = docker_client.containers.get(r1).exec_run(["ip", "addr", "show", "dev", "lo"])
    assert b"192.0.2.1/32" in output  # the node's own exec took effect

    def established() -> bool:
        peers = _vtysh_json(docker_client, r1, "show bgp ipv4 unicast summary json").get("peers", {})
        return peers.get("10.0.12.2", {}).get("state") == "Established"

    timings["bgp"] = _wait_for("BGP session r1-r2 Established", established)

    def learned() -> bool:
        routes = _vtysh_json(docker_client, r1, "show ip route 2.2.2.2/32 json")
        return any(r.get("protocol") == "bgp" and r.get("selected") for r in routes.get("2.2.2.2/32", []))

    _wait_for("r1 learns 2.2.2.2/32 by BGP", learned, timeout=30)
    code, output = docker_client.containers.get(r1).exec_run(
        ["ping", "-c", "3", "-W", "2", "-I", "1.1.1.1", "2.2.2.2"]
    )
    assert code == 0, output.decode()

    for node, neighbour in (
        ("r1", "neighbor 10.0.12.2 remote-as 65002"),
        ("r2", "neighbor 10.0.12.1 remote-as 65001"),
    ):
        config = provider.extract_config(lab.id, lab.nodes[node])
        assert neighbour in config and "router bgp" in config
        # vtysh's preamble dropped: the text is an frr.conf again
        assert config.startswith("!\nfrr version") or config.startswith("frr version"), config[:200]

    volumes = [
        m["Name"]
        for c in (r1, r2)
        for m in docker_client.containers.get(c).attrs["Mounts"]
        if m["Type"] == "volume"
    ]
    started = time.monotonic()
    report = labs.destroy_lab(lab.id)
    timings["destroy"] = time.monotonic() - started
    assert report.ok, report.errors
    assert leftovers(lab.id) == {}
    remaining = {v.name for v in docker_client.volumes.list()}
    assert not remaining & set(volumes)
    print("\n2-node FRR lab: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
