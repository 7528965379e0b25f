"""The docker create arguments built from a vendor entry and a node (pure logic, no docker)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lab import names
from lab.errors import ProviderError
from providers.docker.spec import INTERFACE_COUNT_ENV, build_container_spec, cpu_limit, expand_placeholders
from topology import Bind, Node
from vendors import get_vendor
from vendors.model import ContainerOptions, InterfaceNaming, VendorConfig


def _vendor(**container: object) -> VendorConfig:
    return VendorConfig(
        kind="testkind",
        vendor="test",
        provider="docker",
        interfaces=InterfaceNaming(formats=[{"format": "eth{n}"}]),
        memory_mb=256,
        cpus=1,
        container=ContainerOptions(image="test/image:1", **container),
    )


def _node(**fields: object) -> Node:
    return Node(
        name=fields.pop("name", "r1"), vendor=_vendor(), image=fields.pop("image", "test/image:1"), **fields
    )


def _spec(lab_id: str, node: Node, count: int, *, vendor: VendorConfig, **options: object):
    """The spec of ``node`` as a node of ``vendor``."""
    return build_container_spec(lab_id, replace(node, vendor=vendor), count, **options)


def test_identity_name_hostname_and_labels_come_from_lab_names() -> None:
    spec = _spec("lab-a", _node(labels={"team": "blue"}), 0, vendor=_vendor())
    assert spec.name == names.container_name("lab-a", "r1") == spec.create["name"]
    assert spec.create["hostname"] == "r1"
    assert spec.create["labels"] == {"team": "blue", **names.container_labels("lab-a", "r1", "testkind")}


def test_node_labels_cannot_override_our_markers() -> None:
    node = _node(labels={names.LABEL_LAB: "other", names.LABEL_NODE: "x", "keep": "1"})
    labels = _spec("lab-a", node, 0, vendor=_vendor()).create["labels"]
    assert labels[names.LABEL_LAB] == "lab-a" and labels[names.LABEL_NODE] == "r1" and labels["keep"] == "1"


def test_env_is_vendor_then_node_then_interface_count() -> None:
    vendor = _vendor(env={"A": "vendor", "B": "vendor"})
    node = _node(env={"B": "node", "C": "node", INTERFACE_COUNT_ENV: "99"})
    env = _spec("lab", node, 3, vendor=vendor).create["environment"]
    assert env == {"A": "vendor", "B": "node", "C": "node", INTERFACE_COUNT_ENV: "3"}


def test_never_privileged_and_capabilities_from_the_vendor() -> None:
    vendor = _vendor(cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], security_opt=["seccomp=unconfined"])
    host = _spec("lab", _node(), 0, vendor=vendor).host
    assert host["privileged"] is False
    assert host["cap_add"] == ["ALL"] and host["cap_drop"] == ["SYS_RESOURCE"]
    assert host["security_opt"] == ["seccomp=unconfined"]


def test_every_catalog_container_kind_builds_unprivileged() -> None:
    from vendors import catalog

    for vendor in catalog().kinds():
        if vendor.container is None:
            continue
        node = Node(name="n1", vendor=vendor, image=vendor.default_image, startup_config="x\n")
        spec = _spec("lab", node, 2, vendor=vendor)
        assert spec.host["privileged"] is False, vendor.kind
        assert spec.host["restart_policy"] == {"Name": "no"}
        assert "{" not in " ".join(spec.host["binds"]), vendor.kind  # every placeholder expanded


def test_entrypoint_and_cmd_only_when_the_vendor_sets_them() -> None:
    plain = _spec("lab", _node(), 0, vendor=_vendor()).create
    assert "entrypoint" not in plain and "command" not in plain  # the image's own
    custom = _spec(
        "lab", _node(), 0, vendor=_vendor(entrypoint=["bash", "-c"], cmd=["run"])
    ).create
    assert custom["entrypoint"] == ["bash", "-c"] and custom["command"] == ["run"]


def test_binds_expand_placeholders_and_only_workspace_dirs_are_made() -> None:
    vendor = _vendor(
        binds=[
            "{node_dir}/flash:/mnt/flash",
            "{workspace}/shared/{lab}/{node}:/s:ro",
            "/lib/modules:/lib/modules:ro",
        ]
    )
    node = _node(binds=(Bind(host=Path("/srv/topo/files"), container="/files", mode="ro"),))
    spec = _spec("lab-b", node, 0, vendor=vendor)
    ws = names.workspace()
    assert spec.host["binds"] == [
        f"{names.node_dir('lab-b', 'r1')}/flash:/mnt/flash:rw",
        f"{ws}/shared/lab-b/r1:/s:ro",
        "/lib/modules:/lib/modules:ro",
        "/srv/topo/files:/files:ro",
    ]
    assert spec.host_dirs == (names.node_dir("lab-b", "r1") / "flash", ws / "shared" / "lab-b" / "r1")


def test_expand_placeholders() -> None:
    text = expand_placeholders("{workspace}|{lab}|{node}|{node_dir}", "l1", "n1")
    assert text == f"{names.workspace()}|l1|n1|{names.node_dir('l1', 'n1')}"


def test_startup_config_inside_a_writable_bind_is_a_host_file() -> None:
    vendor = _vendor(binds=["{node_dir}/flash:/mnt/flash"], startup_config_path="/mnt/flash/startup-config")
    spec = _spec("lab", _node(startup_config="hostname r1\n"), 0, vendor=vendor)
    assert spec.startup_config is not None and spec.startup_config.in_bind
    assert spec.startup_config.host_path == names.node_dir("lab", "r1") / "flash" / "startup-config"


def test_startup_config_elsewhere_is_copied_into_the_container() -> None:
    frr = get_vendor("frr")
    node = Node(name="r1", vendor=frr, image=frr.default_image, startup_config="hostname r1\n")
    spec = _spec("lab", node, 1, vendor=frr)
    assert spec.startup_config is not None and not spec.startup_config.in_bind
    assert spec.startup_config.container_path == "/etc/frr/frr.conf"


def test_startup_config_under_a_read_only_bind_is_not_written_to_the_host() -> None:
    vendor = _vendor(binds=["{node_dir}/cfg:/cfg:ro"], startup_config_path="/cfg/boot.conf")
    spec = _spec("lab", _node(startup_config="x\n"), 0, vendor=vendor)
    assert spec.startup_config is not None and not spec.startup_config.in_bind


def test_no_startup_config_no_placement() -> None:
    spec = _spec("lab", _node(), 0, vendor=_vendor(startup_config_path="/etc/x.conf"))
    assert spec.startup_config is None


@pytest.mark.parametrize(
    ("node_mb", "node_cpus", "mem", "nano"), [(None, None, "256m", 1e9), (1024, 2, "1024m", 2e9)]
)
def test_limits_node_overrides_vendor(
    node_mb: int | None, node_cpus: int | None, mem: str, nano: float
) -> None:
    host = _spec(
        "lab", _node(memory_mb=node_mb, cpus=node_cpus), 0, vendor=_vendor(), host_cpus=4
    ).host
    assert host["mem_limit"] == mem and host["nano_cpus"] == int(nano)


def test_cpu_limit_is_capped_at_the_host() -> None:
    assert cpu_limit(8, host_cpus=2) == 2_000_000_000
    assert cpu_limit(None, host_cpus=2) == 1_000_000_000


def test_management_network_sysctls_tmpfs() -> None:
    vendor = _vendor(sysctls={"net.ipv4.ip_forward": "1"}, tmpfs={"/run/netns": "rw"})
    host = _spec("lab", _node(), 0, vendor=vendor).host
    assert host["network_mode"] == "none"  # the management NIC is our veth (providers.network.mgmt)
    assert host["sysctls"] == {"net.ipv4.ip_forward": "1"} and host["tmpfs"] == {"/run/netns": "rw"}


def test_a_vm_kind_is_refused() -> None:
    from vendors import catalog

    vm = next(v for v in catalog().kinds() if v.container is None)
    with pytest.raises(ProviderError, match="not a container kind"):
        build_container_spec("lab", Node(name="v", vendor=vm, image="x"), 0)


@pytest.mark.parametrize("image", ["ceos:latest", "ceos:4.32.0F", "ceos"])
def test_a_kinds_broad_capabilities_go_to_its_catalog_images(image: str) -> None:
    vendor = get_vendor("ceos")
    node = Node(name="c1", vendor=vendor, image=image)
    host = build_container_spec("lab", node, 0).host
    assert host["cap_add"] == ["ALL"] and host["security_opt"] == ["seccomp=unconfined"]


@pytest.mark.parametrize("image", ["attacker/ceos:latest", "ceos-evil:1", "archetype/linux:latest", "registry.x/ceos:1"])
def test_another_image_on_a_broad_kind_gets_the_default_capabilities(image: str) -> None:
    vendor = get_vendor("ceos")
    host = build_container_spec("lab", Node(name="c1", vendor=vendor, image=image), 0).host
    assert host["cap_add"] == ["NET_ADMIN"]
    assert "security_opt" not in host and host["privileged"] is False


def test_a_setting_widens_a_kinds_images(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.settings import get_settings

    monkeypatch.setenv("ARCHETYPE_TRUSTED_IMAGES__ceos", '["registry.x/ceos:*"]')
    get_settings.cache_clear()
    try:
        node = Node(name="c1", vendor=get_vendor("ceos"), image="registry.x/ceos:4.33")
        host = build_container_spec("lab", node, 0).host
        assert host["cap_add"] == ["ALL"]
    finally:
        monkeypatch.delenv("ARCHETYPE_TRUSTED_IMAGES__ceos")
        get_settings.cache_clear()
