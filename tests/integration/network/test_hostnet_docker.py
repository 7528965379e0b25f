"""Real containers (image archetype/linux, busybox): wired by PID, ping and TCP (HTTP)
across the bridge, isolation between VLANs, and a restarted container re-wired."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from lab import names
from providers import network
from providers.base import LinkEnd

pytestmark = [pytest.mark.ovs, pytest.mark.docker]

IMAGE = os.environ.get("ARCHETYPE_TEST_LINUX_IMAGE", "archetype/linux:latest")


@pytest.fixture
def containers(docker_client, root):
    import docker

    try:
        docker_client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        message = f"image {IMAGE} is missing: build it with scripts/setup-host.sh"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    made = []

    def run(lab: str, node: str):
        # No archetype labels: nobody else's orphan cleanup may take it; we remove it below.
        container = docker_client.containers.run(
            IMAGE, name=names.container_name(lab, node), network_mode="none", detach=True,
            cap_add=["NET_ADMIN", "NET_RAW"],
        )
        made.append(container)
        container.reload()
        return container

    yield run
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def _sh(container, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["sh", "-c", script])
    return code, out.decode(errors="replace")


def _wire(lab, container, node, link, vlan, ip):
    end = LinkEnd(link, "eth1", 1, vlan, names.host_port_name(lab, node, "eth1"))
    network.attach_container_ends(lab, node, container.attrs["State"]["Pid"], [end], ["eth1"])
    assert _sh(container, f"ip addr add {ip}/24 dev eth1")[0] == 0


def test_containers_ping_and_talk_tcp_on_their_vlan_only(lab_ids, containers):
    lab = lab_ids()
    ab, cd = "a:eth1--b:eth1", "c:eth1--d:eth1"
    vlans = network.allocate_vlans(lab, [ab, cd])
    boxes = {n: containers(lab, n) for n in "abcd"}
    for i, (node, link) in enumerate([("a", ab), ("b", ab), ("c", cd), ("d", cd)], start=1):
        _wire(lab, boxes[node], node, link, vlans[link], f"10.79.0.{i}")

    assert _sh(boxes["a"], "ping -c 1 -W 2 10.79.0.2")[0] == 0
    assert _sh(boxes["a"], "ping -c 1 -W 1 10.79.0.3")[0] != 0  # other VLAN
    # TCP: 2 MiB over HTTP (ping alone passes even with broken checksums).
    code, _ = _sh(boxes["b"], "mkdir -p /www && dd if=/dev/urandom of=/www/big bs=1024 count=2048 2>/dev/null"
                              " && httpd -p 8080 -h /www")
    assert code == 0
    code, out = _sh(boxes["a"], "timeout 10 wget -q -O - http://10.79.0.2:8080/big | wc -c")
    assert code == 0 and out.strip() == str(2048 * 1024)


def test_a_restarted_container_is_rewired(lab_ids, containers):
    lab = lab_ids()
    link = "a:eth1--b:eth1"
    vlan = network.allocate_vlans(lab, [link])[link]
    a, b = containers(lab, "a"), containers(lab, "b")
    _wire(lab, a, "a", link, vlan, "10.80.0.1")
    _wire(lab, b, "b", link, vlan, "10.80.0.2")
    assert _sh(a, "ping -c 1 -W 2 10.80.0.2")[0] == 0

    b.restart(timeout=1)  # new PID, new namespace: its eth1 is gone
    b.reload()
    deadline = time.monotonic() + 10
    while not b.attrs["State"]["Running"] and time.monotonic() < deadline:
        time.sleep(0.1)
        b.reload()
    _wire(lab, b, "b", link, vlan, "10.80.0.2")
    # b's eth1 is a new device with a new MAC: a forgets the old one (as ARP would, later).
    assert _sh(a, "ip neigh flush dev eth1")[0] == 0
    assert _sh(a, "ping -c 1 -W 2 10.80.0.2")[0] == 0
    # Wiring again is a no-op.
    _wire_again = LinkEnd(link, "eth1", 1, vlan, names.host_port_name(lab, "b", "eth1"))
    network.attach_container_ends(lab, "b", b.attrs["State"]["Pid"], [_wire_again], ["eth1"])
    assert _sh(a, "ping -c 1 -W 2 10.80.0.2")[0] == 0
