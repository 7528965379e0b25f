"""One node at a time on a real dockerd: create, reuse, post-boot, readiness, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import docker
import pytest

import vendors
from lab import names
from lab.errors import CommandError, ImageNotFoundError, ProviderError
from providers import labs
from providers.base import NodeState
from providers.docker import DockerProvider
from providers.network import mgmt as mgmt_bridges
from topology import Node
from vendors.model import Readiness, VendorConfig

pytestmark = pytest.mark.docker


def _sh(client: docker.DockerClient, container: str, command: str) -> str:
    code, output = client.containers.get(container).exec_run(["sh", "-c", command])
    assert code == 0, output
    return output.decode()


@pytest.fixture
def patched_kind() -> Callable[..., VendorConfig]:
    """A test-only variant of the linux kind (post-boot commands, readiness...), given to
    the nodes that use it; the catalog itself is not changed."""

    def make(**update: object) -> VendorConfig:
        base = vendors.get_vendor("linux")
        container_update = update.pop("container", None)
        container = base.container.model_copy(update=container_update) if container_update else base.container
        return base.model_copy(update={"kind": "linux-test", "container": container, **update})

    return make


def test_post_boot_runs_vendor_then_node_commands_with_effect(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
    patched_kind: Callable[..., VendorConfig],
) -> None:
    lab = lab_factory()
    vendor = patched_kind(post_boot_commands=["echo vendor-ran > /tmp/order && echo from-vendor"])
    node = Node(
        name="h1",
        vendor=vendor,
        image=linux_image,
        exec=("ip addr add 192.0.2.10/32 dev lo", "sh -c 'echo node-ran >> /tmp/order'"),
    )
    provider.create_node(lab, node, [])
    results = provider.run_post_boot(lab, node)

    assert [r.command for r in results] == [
        "echo vendor-ran > /tmp/order && echo from-vendor",
        "ip addr add 192.0.2.10/32 dev lo",
        "sh -c 'echo node-ran >> /tmp/order'",
    ]
    assert all(r.ok for r in results) and "from-vendor" in results[0].output
    container = names.container_name(lab, "h1")
    assert "192.0.2.10/32" in _sh(docker_client, container, "ip addr show dev lo")
    assert _sh(docker_client, container, "cat /tmp/order").split() == ["vendor-ran", "node-ran"]


def test_failing_post_boot_command_is_a_clear_error(
    provider: DockerProvider, lab_factory: Callable[[], str], linux_image: str
) -> None:
    lab = lab_factory()
    node = Node.of(
        name="h1", kind="linux", image=linux_image, exec=("sh -c 'echo boom >&2; exit 3'", "true")
    )
    provider.create_node(lab, node, [])
    with pytest.raises(CommandError) as caught:
        provider.run_post_boot(lab, node)
    err = caught.value
    assert (err.node, err.exit_code) == ("h1", 3)
    assert "boom" in err.output and "h1" in str(err) and "exit 3" in str(err) and "exit code 3" in str(err)


def test_post_boot_command_timeout_kills_it(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lab.settings import get_settings

    lab = lab_factory()
    node = Node.of(name="h1", kind="linux", image=linux_image, exec=("sh -c 'echo started; sleep 300'",))
    provider.create_node(lab, node, [])
    monkeypatch.setattr(get_settings(), "command_timeout", 1.0)
    started = time.monotonic()
    with pytest.raises(CommandError, match="timed out") as caught:
        provider.run_post_boot(lab, node)
    assert time.monotonic() - started < 5
    assert caught.value.exit_code is None and "started" in caught.value.output
    assert "sleep 300" not in _sh(docker_client, names.container_name(lab, "h1"), "ps")


def test_missing_image_is_a_clear_error_and_leaves_nothing(
    provider: DockerProvider, lab_factory: Callable[[], str], docker_client: docker.DockerClient
) -> None:
    lab = lab_factory()
    image = "archetype/does-not-exist:never"
    with pytest.raises(ImageNotFoundError, match=image):
        provider.create_node(lab, Node.of(name="r1", kind="linux", image=image, startup_config="x\n"), [])
    label = f"{names.LABEL_LAB}={lab}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert docker_client.networks.list(filters={"label": label}) == []
    assert docker_client.networks.list(names=[names.mgmt_network_name(lab)]) == []
    assert mgmt_bridges.find_bridge(lab) is None
    assert not names.lab_dir(lab).exists()


def test_create_is_idempotent_and_starts_a_stopped_node(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
) -> None:
    lab = lab_factory()
    node = Node.of(name="h1", kind="linux", image=linux_image, labels={"team": "blue"})
    assert provider.node_status(lab, "h1").state is NodeState.MISSING
    first = provider.create_node(lab, node, [])
    container = docker_client.containers.get(first.runtime_name)
    assert first.state is NodeState.RUNNING and container.status == "running"
    expected = {"team": "blue", **names.container_labels(lab, "h1", "linux")}
    assert {k: container.labels.get(k) for k in expected} == expected  # (the image may add its own)
    assert container.attrs["Config"]["Hostname"] == "h1"
    assert container.attrs["HostConfig"]["Privileged"] is False
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"  # management: our veth on the lab's bridge
    assert mgmt_bridges.find_bridge(lab) is not None

    provider.create_node(lab, node, [])  # running: reused as it is
    assert docker_client.containers.get(first.runtime_name).id == container.id

    container.stop(timeout=1)
    assert provider.node_status(lab, "h1").state is NodeState.STOPPED
    again = provider.create_node(lab, node, [])  # stopped: started, not recreated
    container.reload()
    assert again.state is NodeState.RUNNING and container.status == "running"
    assert docker_client.containers.get(first.runtime_name).id == container.id


def test_a_container_with_our_name_but_not_our_labels_is_never_touched(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
) -> None:
    lab = lab_factory()
    name = names.container_name(lab, "r1")
    stranger = docker_client.containers.run(
        linux_image, name=name, detach=True, labels={"owner": "someone-else"}
    )
    try:
        with pytest.raises(ProviderError, match="not Archetype's"):
            provider.create_node(lab, Node.of(name="r1", kind="linux", image=linux_image), [])
        assert provider.node_status(lab, "r1").state is NodeState.MISSING
        labs.destroy_lab(lab)
        provider.remove_node(lab, "r1")
        stranger.reload()
        assert stranger.status == "running"
    finally:
        stranger.remove(force=True)


def test_startup_config_lands_where_the_vendor_reads_it(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    frr_image: str,
    docker_client: docker.DockerClient,
) -> None:
    lab = lab_factory()
    config = (
        "frr defaults traditional\ninterface lo\n ip address 10.255.0.1/32\n"
        "ip prefix-list FROM-STARTUP seq 5 permit 10.0.0.0/8\n"
    )
    node = Node.of(name="r1", kind="frr", image=frr_image, startup_config=config)
    provider.create_node(lab, node, [])
    provider.wait_ready(lab, node)
    container = names.container_name(lab, "r1")
    assert _sh(docker_client, container, "cat /etc/frr/frr.conf") == config
    running = provider.extract_config(lab, node)
    assert "FROM-STARTUP seq 5 permit 10.0.0.0/8" in running and "ip address 10.255.0.1/32" in running


def test_linux_config_extraction(
    provider: DockerProvider, lab_factory: Callable[[], str], linux_image: str
) -> None:
    lab = lab_factory()
    node = Node.of(name="h1", kind="linux", image=linux_image)
    provider.create_node(lab, node, [])
    text = provider.extract_config(lab, node)
    assert "lo" in text and "127.0.0.1" in text


# A starting marker that stays while its container's process is gone: the probe decides.
@pytest.mark.parametrize("readiness", [
    Readiness(method="log_pattern", pattern="never-printed", timeout=60, interval=0.2),
    Readiness(method="cli_probe", command=["sh", "-c", "exit 1"], starting_marker="/run/starting", timeout=60,
              interval=0.2),
], ids=["log-pattern", "starting-marker"])
def test_readiness_fails_at_once_when_the_container_exits(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    patched_kind: Callable[..., VendorConfig],
    readiness: Readiness,
) -> None:
    lab = lab_factory()
    vendor = patched_kind(
        container={"cmd": ["sh", "-c", "touch /run/starting; echo dying-now; sleep 1; exit 4"]}, readiness=readiness
    )
    node = Node(name="h1", vendor=vendor, image=linux_image)
    provider.create_node(lab, node, [])
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        provider.wait_ready(lab, node)
    assert time.monotonic() - started < 10
    assert (
        "h1" in str(caught.value) and "dying-now" in str(caught.value) and "exit code 4" in str(caught.value)
    )


def test_readiness_log_pattern_and_timeout(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    patched_kind: Callable[..., VendorConfig],
) -> None:
    lab = lab_factory()
    vendor = patched_kind(
        container={"cmd": ["sh", "-c", "sleep 1; echo System ready; sleep 3600"]},
        readiness=Readiness(method="log_pattern", pattern="System ready", timeout=20, interval=0.1),
    )
    node = Node(name="h1", vendor=vendor, image=linux_image)
    provider.create_node(lab, node, [])
    seconds = provider.wait_ready(lab, node)
    assert 0.5 < seconds < 10

    slow = Node(name="h2", vendor=vendor, image=linux_image)
    provider.create_node(lab, slow, [])
    with pytest.raises(ProviderError, match=r"node h2: not ready after 0 s"):
        provider.wait_ready(lab, slow, timeout=0.3)


def test_readiness_cli_probe_times_out_naming_the_last_output(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    patched_kind: Callable[..., VendorConfig],
) -> None:
    lab = lab_factory()
    vendor = patched_kind(
        readiness=Readiness(
            method="cli_probe", command=["sh", "-c", "echo not-yet; exit 1"], timeout=1, interval=0.2
        )
    )
    node = Node(name="h1", vendor=vendor, image=linux_image)
    provider.create_node(lab, node, [])
    with pytest.raises(ProviderError, match="not-yet") as caught:
        provider.wait_ready(lab, node)
    assert "node h1" in str(caught.value)


def test_remove_node(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
) -> None:
    lab = lab_factory()
    for name in ("h1", "h2"):
        provider.create_node(lab, Node.of(name=name, kind="linux", image=linux_image), [])
    report = provider.remove_node(lab, "h1")
    assert report.removed["containers"] == [names.container_name(lab, "h1")]
    assert provider.node_status(lab, "h1").state is NodeState.MISSING
    assert provider.node_status(lab, "h2").state is NodeState.RUNNING
    assert provider.remove_node(lab, "h1").removed.get("containers") is None  # missing is fine


def test_commands_on_a_stopped_node_name_it(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    docker_client: docker.DockerClient,
) -> None:
    lab = lab_factory()
    node = Node.of(name="h1", kind="linux", image=linux_image, exec=("true",))
    provider.create_node(lab, node, [])
    docker_client.containers.get(names.container_name(lab, "h1")).stop(timeout=1)
    with pytest.raises(ProviderError, match=r"node h1: cannot run 'true': .*not running"):
        provider.run_post_boot(lab, node)
    with pytest.raises(ProviderError, match=r"node h1: cannot run .*not running"):
        provider.extract_config(lab, node)


def test_readiness_runs_no_probe_while_the_starting_marker_is_there(
    provider: DockerProvider,
    lab_factory: Callable[[], str],
    linux_image: str,
    patched_kind: Callable[..., VendorConfig],
    docker_client: docker.DockerClient,
) -> None:
    # A probe is an exec (~0.1 CPU-second); while the marker is there, the host looks it up
    # in the container's root instead, and the probe runs once, when it is gone.
    lab = lab_factory()
    vendor = patched_kind(
        container={"cmd": ["sh", "-c", "touch /run/starting; exec sleep 3600"]},
        readiness=Readiness(
            method="cli_probe", command=["sh", "-c", "echo probe >> /tmp/probes; test ! -e /run/starting"],
            starting_marker="/run/starting", timeout=30, interval=0.1,
        ),
    )
    node = Node(name="h1", vendor=vendor, image=linux_image)
    provider.create_node(lab, node, [])
    container = provider.node_runtime_name(lab, node)
    _sh(docker_client, container, "for i in $(seq 50); do test -e /run/starting && exit 0; sleep 0.1; done; exit 1")
    remover = threading.Timer(2.0, _sh, (docker_client, container, "rm /run/starting"))
    remover.start()
    try:
        seconds = provider.wait_ready(lab, node)
    finally:
        remover.join()
    assert seconds >= 1.5
    assert _sh(docker_client, container, "cat /tmp/probes").split() == ["probe"]
