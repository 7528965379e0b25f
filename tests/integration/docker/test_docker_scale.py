"""Many FRR nodes at once on a real dockerd, as deploys drive them (a thread per node), from
two processes at once (two deploys on one host): the engines' bound holds for both
together, every node is ready only once the device holds its frr.conf, and a node whose
config application is broken on purpose fails with the cause, never ready."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
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
from tests.support.engine_calls import log_calls, most_at_once
from topology import Node
from topology.node_fields import Bind

pytestmark = pytest.mark.docker

NODES = 30
OTHER_PROCESS = 15  # r16..r30 are deployed by another process at the same time
LIMIT = 3
BROKEN = "r07"  # its bgpd cannot start: the image cannot apply its `router bgp`
REPO = Path(__file__).resolve().parents[3]
# The other deploy: its nodes from a thread each, every engine call's (start, end) on the
# host's monotonic clock printed as JSON.
OTHER_DEPLOY = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from providers import limits
from providers.docker import DockerProvider
from providers.docker.exec import DOCKER_ENGINE
from tests.support.engine_calls import log_calls
from topology import Node

with open(sys.argv[1]) as file:
    job = json.load(file)
spans = log_calls(limits.engine_bound(DOCKER_ENGINE))
provider = DockerProvider()

def deploy_one(spec):
    node = Node.of(spec["name"], "frr", image=job["image"], startup_config=spec["config"])
    provider.create_node(job["lab"], node, [])
    provider.wait_ready(job["lab"], node)

with ThreadPoolExecutor(max_workers=len(job["nodes"])) as pool:
    list(pool.map(deploy_one, job["nodes"]))
print(json.dumps(spans))
"""


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


def test_two_deploys_at_once_stay_within_the_bound_together_and_the_broken_node_names_its_cause(
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
    here, there = nodes[: NODES - OTHER_PROCESS], nodes[NODES - OTHER_PROCESS:]
    spans = log_calls(bound_of_three)

    def deploy_one(node: Node) -> float | BaseException:
        provider.create_node(lab, node, [])
        try:
            return provider.wait_ready(lab, node)
        except ConfigNotAppliedError as err:
            return err

    job = tmp_path / "other-deploy.json"
    job.write_text(json.dumps(
        {"lab": lab, "image": frr_image, "nodes": [{"name": n.name, "config": n.startup_config} for n in there]}
    ))
    started = time.monotonic()
    other = subprocess.Popen(  # the second deploy: another process, same host, same bound setting
        [sys.executable, "-c", OTHER_DEPLOY, str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "ARCHETYPE_MAX_WORKERS": str(LIMIT)},
    )
    with ThreadPoolExecutor(max_workers=len(here)) as pool:  # as the flow: every node at once
        outcomes = dict(zip((n.name for n in here), pool.map(deploy_one, here), strict=True))
    out, err = other.communicate(timeout=600)
    elapsed = time.monotonic() - started
    assert other.returncode == 0, err[-3000:]
    spans_there = [tuple(span) for span in json.loads(out)]

    # The bound held for both deploys together, and was the limit that mattered.
    assert most_at_once(spans + spans_there) == LIMIT, (most_at_once(spans), most_at_once(spans_there))
    assert min(b for _, b in spans) < max(a for a, _ in spans_there)  # the two ran at the same time
    assert min(b for _, b in spans_there) < max(a for a, _ in spans)
    assert len(spans) >= 2 * len(here) and len(spans_there) >= 2 * len(there)
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
    print(f"{NODES} nodes from 2 processes, bound {LIMIT}: {elapsed:.1f} s, "  # noqa: T201
          f"{len(spans) + len(spans_there)} engine calls")


def watchfrr_dying_once(client: docker.DockerClient, image: str, folder: Path) -> tuple[Bind, Bind]:
    """Binds that make watchfrr's first start die at once (as under load at N=200: FRR's
    daemons up, "watchfrr is not running"); later starts run the image's own watchfrr."""
    made = client.containers.create(image, entrypoint=["true"])
    try:
        chunks, _ = made.get_archive("/usr/lib/frr/watchfrr")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            tar.extract("watchfrr", folder, filter="data")
    finally:
        made.remove(force=True)
    wrapper = folder / "watchfrr-once"
    wrapper.write_text("#!/bin/sh\nif [ ! -e /run/watchfrr-died-once ]; then : >/run/watchfrr-died-once; exit 1; fi\n"
                       "exec /opt/watchfrr.real \"$@\"\n")
    wrapper.chmod(0o755)
    (folder / "watchfrr").chmod(0o755)
    return (Bind(host=wrapper, container="/usr/lib/frr/watchfrr", mode="ro"),
            Bind(host=folder / "watchfrr", container="/opt/watchfrr.real", mode="ro"))


def test_a_watchfrr_that_died_is_restarted_and_the_node_configured(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    frr_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    # Applying frr.conf again cannot bring watchfrr back: the image restarts FRR, and the node
    # is ready with its config (it failed after 240 s with "watchfrr is not running").
    lab = lab_factory()
    node = Node.of("r1", "frr", image=frr_image, startup_config=frr_conf(1),
                   binds=watchfrr_dying_once(docker_client, frr_image, tmp_path))
    provider.create_node(lab, node, [])
    assert provider.wait_ready(lab, node, timeout=120) < 120
    container = docker_client.containers.get(provider.node_runtime_name(lab, node))
    assert container.exec_run(["test", "-e", "/run/watchfrr-died-once"]).exit_code == 0  # it did die once
    config = running_config(docker_client, container.name)
    assert "ip prefix-list SCALE1 seq 5" in config and "neighbor 10.0.1.2 remote-as 65101" in config, config
    code, status = container.exec_run(["vtysh", "-c", "show watchfrr"])
    assert code == 0 and "bgpd" in status.decode(), status


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
