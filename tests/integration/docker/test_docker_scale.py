"""Many FRR nodes at once on a real dockerd, as a deploy drives them (a thread per node): the
engines' bound holds, every node is ready only once the device holds its frr.conf, and a
node whose config application is broken on purpose fails with the cause, never ready."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from lab import config_errors
from lab.settings import get_settings
from providers import limits
from providers.docker import DockerProvider
from providers.docker.exec import DOCKER_ENGINE, ConfigNotAppliedError
from topology import Node
from topology.node_fields import Bind

pytestmark = pytest.mark.docker

NODES = 30
LIMIT = 3
BROKEN = "r07"  # its bgpd cannot start: the image cannot apply its `router bgp`


def frr_conf(index: int) -> str:
    """A small eBGP config with a marker line that exists nowhere else (HOST-FACTS: FRR in a
    container ignores `hostname`)."""
    return (
        f"ip prefix-list SCALE{index} seq 5 permit 10.{index}.0.0/16\n"
        f"interface lo\n ip address 10.255.0.{index}/32\nexit\n"
        f"router bgp {65000 + index}\n bgp router-id 10.255.0.{index}\n"
        f" neighbor 10.0.{index}.2 remote-as {65100 + index}\n"
        f" address-family ipv4 unicast\n  network 10.255.0.{index}/32\n exit-address-family\nexit\n"
    )


@pytest.fixture
def bound_of_three(monkeypatch: pytest.MonkeyPatch) -> Iterator[limits.EngineBound]:
    """dockerd's bound forced to ``LIMIT`` (ARCHETYPE_MAX_WORKERS), as a user sets it."""
    monkeypatch.setenv("ARCHETYPE_MAX_WORKERS", str(LIMIT))
    get_settings.cache_clear()
    limits.forget_bounds()
    try:
        yield limits.engine_bound(DOCKER_ENGINE)
    finally:
        monkeypatch.delenv("ARCHETYPE_MAX_WORKERS")
        get_settings.cache_clear()
        limits.forget_bounds()


def broken_bgpd(folder: Path) -> Bind:
    script = folder / "bgpd"
    script.write_text("#!/bin/sh\necho 'bgpd: broken on purpose by the test' >&2\nexit 1\n")
    script.chmod(0o755)
    return Bind(host=script, container="/usr/lib/frr/bgpd", mode="ro")


def running_config(client: docker.DockerClient, container: str) -> str:
    code, output = client.containers.get(container).exec_run(["vtysh", "-c", "show running-config"])
    assert code == 0, output
    return output.decode()


def test_thirty_frr_nodes_stay_within_the_bound_and_the_broken_one_names_its_cause(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    frr_image: str,
    docker_client: docker.DockerClient,
    bound_of_three: limits.EngineBound,
    tmp_path: Path,
) -> None:
    lab = lab_factory()
    nodes = [
        Node.of(
            f"r{i:02d}", "frr", image=frr_image, startup_config=frr_conf(i),
            **({"binds": (broken_bgpd(tmp_path),), "env": {"ARCHETYPE_FRR_APPLY_SECONDS": "20"}}
               if f"r{i:02d}" == BROKEN else {}),
        )
        for i in range(1, NODES + 1)
    ]

    def deploy_one(node: Node) -> float | BaseException:
        provider.create_node(lab, node, [])
        try:
            return provider.wait_ready(lab, node)
        except ConfigNotAppliedError as err:
            return err

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=NODES) as pool:  # as the flow: every node at once
        outcomes = dict(zip((n.name for n in nodes), pool.map(deploy_one, nodes), strict=True))
    elapsed = time.monotonic() - started

    stats = bound_of_three.stats()
    # The bound held and was the limit that mattered (30 nodes wanted more at once).
    assert stats.peak == LIMIT and stats.calls >= 2 * NODES, stats
    failed = outcomes.pop(BROKEN)
    assert isinstance(failed, ConfigNotAppliedError), failed
    assert BROKEN in str(failed) and "bgpd" in str(failed) and "never ready" in str(failed), str(failed)
    assert all(isinstance(seconds, float) for seconds in outcomes.values()), outcomes
    # Ready means configured: checked from each device, not from our own record.
    for index, node in enumerate(nodes, start=1):
        if node.name == BROKEN:
            continue
        config = running_config(docker_client, provider.node_runtime_name(lab, node))
        assert f"ip prefix-list SCALE{index} seq 5" in config and f"router bgp {65000 + index}" in config, config
    print(f"{NODES} nodes, bound {LIMIT}: {elapsed:.1f} s, {stats.calls} engine calls")  # noqa: T201


def test_an_frr_conf_that_cannot_be_read_fails_the_node_at_once(
    provider: DockerProvider, lab_factory: Callable[[], str], frr_image: str, tmp_path: Path
) -> None:
    # A folder where frr.conf should be: nothing can be applied, the image says so and keeps
    # its starting marker; the node fails with that reason well before its timeout.
    lab = lab_factory()
    folder = tmp_path / "frr.conf"
    folder.mkdir()
    node = Node.of("r1", "frr", image=frr_image, binds=(Bind(host=folder, container="/etc/frr/frr.conf", mode="ro"),))
    provider.create_node(lab, node, [])
    started = time.monotonic()
    with pytest.raises(ConfigNotAppliedError) as caught:
        provider.wait_ready(lab, node)
    assert time.monotonic() - started < 60
    assert "frr.conf is not a readable file" in str(caught.value), str(caught.value)


def test_lines_frr_refuses_leave_the_node_ready_and_are_listed(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    frr_image: str,
    docker_client: docker.DockerClient,
) -> None:
    lab = lab_factory()
    config = frr_conf(1).replace(" bgp router-id", " bogus refused line\n bgp router-id") + "not a command at all\n"
    node = Node.of("r1", "frr", image=frr_image, startup_config=config)
    provider.create_node(lab, node, [])
    provider.wait_ready(lab, node)
    container = docker_client.containers.get(provider.node_runtime_name(lab, node))
    code, listed = container.exec_run(["cat", "/run/archetype-frr-config-errors"])
    assert code == 0 and "bogus refused line" in listed.decode() and "not a command at all" in listed.decode()
    running = running_config(docker_client, container.name)
    assert "ip prefix-list SCALE1 seq 5" in running and "neighbor 10.0.1.2 remote-as 65101" in running
    # the node's config_errors, as `status` reads them and the post-boot task hands them on
    recorded = {error.line: error.message for error in config_errors.load(lab, "r1")}
    assert set(recorded) == {"bogus refused line", "not a command at all"}, recorded
    assert all("Unknown command" in message for message in recorded.values()), recorded
    with_exec = Node.of("r1", "frr", image=frr_image, startup_config=config, exec=("vtysh -c 'show version'",))
    results = provider.run_post_boot(lab, with_exec)
    assert [r.ok for r in results] == [True, False, False]
    assert {r.command for r in results[1:]} == set(recorded)


def test_an_frr_node_without_startup_config_is_ready_at_once(
    provider: DockerProvider, lab_factory: Callable[[], str], frr_image: str
) -> None:
    # an empty frr.conf (the image makes it) has nothing to miss: no check, no retry
    lab = lab_factory()
    node = Node.of("r1", "frr", image=frr_image)
    provider.create_node(lab, node, [])
    assert provider.wait_ready(lab, node, timeout=30) < 30
    assert config_errors.load(lab, "r1") == []
