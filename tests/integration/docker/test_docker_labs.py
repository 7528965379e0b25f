"""Whole labs on a real dockerd: discovery, orphan cleanup, destroy, and their speed."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from lab import names
from providers import labs
from providers.base import NodeState
from providers.docker import DockerProvider
from providers.network import mgmt as mgmt_bridges
from tests.support.orphans import remove_orphan
from topology import Node
from topology.mgmt import MgmtNetwork

pytestmark = pytest.mark.docker


def _all_known_labs_now(provider: DockerProvider) -> set[str]:
    """Every lab that owns something on this host right now (other people's test labs run
    here too, and orphan cleanup must keep them)."""
    return labs.labs_with_resources() | provider.labs_with_resources()


def test_discovery_groups_labs_with_stopped_nodes(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
) -> None:
    lab_a, lab_b = lab_factory(), lab_factory()
    for lab, node_names in ((lab_a, ("h1", "h2")), (lab_b, ("x1",))):
        for name in node_names:
            provider.create_node(lab, Node.of(name=name, kind="linux", image=linux_image), [])
    docker_client.containers.get(names.container_name(lab_a, "h2")).stop(timeout=1)

    found = {lab.lab_id: lab for lab in provider.discover_labs()}
    assert {lab_a, lab_b} <= set(found)
    assert [(n.name, n.state, n.kind, n.provider) for n in found[lab_a].nodes] == [
        ("h1", NodeState.RUNNING, "linux", "docker"),
        ("h2", NodeState.STOPPED, "linux", "docker"),
    ]
    assert [(n.name, n.state, n.runtime_name) for n in found[lab_b].nodes] == [
        ("x1", NodeState.RUNNING, names.container_name(lab_b, "x1"))
    ]
    assert all(n.lab_id == lab_a for n in found[lab_a].nodes)


def test_orphan_cleanup_removes_only_the_unknown_lab(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
) -> None:
    known_lab, orphan_lab = lab_factory(), lab_factory()
    provider.create_node(known_lab, Node.of(name="k1", kind="linux", image=linux_image), [])
    for name in ("o1", "o2"):
        provider.create_node(
            orphan_lab, Node.of(name=name, kind="linux", image=linux_image, startup_config="x\n"), []
        )
    names.node_dir(orphan_lab, "o1").mkdir(parents=True, exist_ok=True)
    lookalike = docker_client.containers.run(
        linux_image, name=f"archetype-{secrets.token_hex(3)}-{secrets.token_hex(2)}", detach=True
    )
    try:
        known = _all_known_labs_now(provider) - {orphan_lab}
        assert known_lab in known
        report = remove_orphan(orphan_lab, known, keep=[known_lab])

        label = f"{names.LABEL_LAB}={orphan_lab}"
        assert docker_client.containers.list(all=True, filters={"label": label}) == []
        assert docker_client.networks.list(filters={"label": label}) == []
        assert not names.lab_dir(orphan_lab).exists()
        assert sorted(report.removed["containers"]) == sorted(
            names.container_name(orphan_lab, n) for n in ("o1", "o2")
        )
        assert report.removed["mgmt-bridge"][0] == names.mgmt_bridge_name(orphan_lab)
        assert mgmt_bridges.find_bridge(orphan_lab) is None
        assert names.container_name(known_lab, "k1") not in report.removed["containers"]

        lookalike.reload()
        assert lookalike.status == "running"
        assert docker_client.containers.get(names.container_name(known_lab, "k1")).status == "running"
        assert mgmt_bridges.find_bridge(known_lab) is not None
    finally:
        lookalike.remove(force=True)


@pytest.mark.slow
def test_discovery_of_200_containers_is_one_api_call_and_destroy_removes_them(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
) -> None:
    """200 containers (created, not started: what is listed is the same): discovery in one
    API call; destroy removes them in parallel."""
    lab = lab_factory()
    api = provider.api

    def make(i: int) -> None:
        node = f"n{i:03d}"
        api.create_container(
            linux_image,
            name=names.container_name(lab, node),
            labels=names.container_labels(lab, node, "linux"),
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(make, range(200)))

    # What keeps discovery fast whatever the host's load: one API call for every node, not
    # one per container (its time is a benchmark figure: benchmarks/, docs/performance.md).
    requests_sent = []
    send = api.send
    api.send = lambda request, **kwargs: requests_sent.append(request.path_url) or send(request, **kwargs)
    try:
        started = time.monotonic()
        discovered = provider.discover_labs()
        discover_seconds = time.monotonic() - started
    finally:
        del api.send
    mine = next(found for found in discovered if found.lab_id == lab)
    assert len(mine.nodes) == 200 and all(n.state is NodeState.STOPPED for n in mine.nodes)
    assert len(requests_sent) == 1, requests_sent

    started = time.monotonic()
    report = labs.destroy_lab(lab)
    seconds = time.monotonic() - started
    assert len(report.removed["containers"]) == 200
    assert docker_client.containers.list(all=True, filters={"label": f"{names.LABEL_LAB}={lab}"}) == []
    print(f"\ndiscover 200: {discover_seconds:.2f} s; destroy 200 (stopped): {seconds:.2f} s")


def test_a_lab_left_with_only_its_management_bridge_is_an_orphan(
    provider: DockerProvider, lab_factory: Callable[[], str]
) -> None:
    """A deploy killed between the management bridge and the first container: the lab has
    no node, yet orphan cleanup finds it and removes the bridge and its outbound rules."""
    lab_id = lab_factory()
    plan = provider.ensure_mgmt_network(lab_id, MgmtNetwork(), 2)
    try:
        assert lab_id not in {lab.lab_id for lab in labs.discover()}  # no node...
        assert lab_id in labs.labs_with_resources()  # ...yet it owns something
        known = _all_known_labs_now(provider) - {lab_id}
        report = remove_orphan(lab_id, known)
        assert report.removed.get("mgmt-bridge", [])[:1] == [plan.bridge], report
        assert mgmt_bridges.find_bridge(lab_id) is None
        assert lab_id not in labs.labs_with_resources()
    finally:
        mgmt_bridges.remove_bridge(lab_id)


def test_a_lab_left_with_only_its_management_network_is_an_orphan(
    provider: DockerProvider, lab_factory: Callable[[], str], docker_client: docker.DockerClient
) -> None:
    """A lab made before the management bridge was ours (a docker network), killed between
    the network and the first container: orphan cleanup finds it and removes the network."""
    lab_id = lab_factory()
    network = docker_client.networks.create(
        names.mgmt_network_name(lab_id), driver="bridge", labels={names.LABEL_LAB: lab_id, names.LABEL_PROVIDER: "docker"}
    )
    try:
        assert lab_id not in {lab.lab_id for lab in labs.discover()}  # no node...
        assert lab_id in labs.labs_with_resources()  # ...yet it owns something
        known = _all_known_labs_now(provider) - {lab_id}
        report = remove_orphan(lab_id, known)
        assert report.removed.get("networks") == [names.mgmt_network_name(lab_id)], report
        assert docker_client.networks.list(names=[names.mgmt_network_name(lab_id)]) == []
        assert lab_id not in labs.labs_with_resources()
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
