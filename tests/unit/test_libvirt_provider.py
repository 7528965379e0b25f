"""The libvirt provider's node lifecycle on libvirt's ``test:///default`` driver (no daemon):
define+start, reuse, restart keeps the data volume, identity by metadata only, discovery,
destroy and orphan cleanup, and every libvirt call on one thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
import pytest

from lab import names
from lab.errors import ImageNotFoundError
from lab.settings import get_settings
from providers import network
from providers.base import CleanupReport, NodeState
from providers.libvirt import LibvirtProvider
from providers.libvirt.domains import DomainConflictError
from tests.unit.test_libvirt_xml import end, fake_interface_xml
from topology import Node

libvirt.registerErrorHandler(lambda *_: None, None)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("ARCHETYPE_IMAGE_DIR", str(tmp_path / "images"))
    get_settings.cache_clear()
    images = tmp_path / "images" / "mini-ios"
    images.mkdir(parents=True)
    (images / "vmlinuz").write_bytes(b"kernel")
    (images / "initrd.img").write_bytes(b"initrd")
    released: list[str] = []
    monkeypatch.setattr(network, "release_lab", lambda lab: released.append(lab) or CleanupReport())
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def conn() -> Iterator[libvirt.virConnect]:
    connection = libvirt.open("test:///default")  # keeps the driver's state for the provider's own
    try:
        yield connection
    finally:
        for dom in connection.listAllDomains(0):
            if dom.name().startswith("arch-"):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        connection.close()


@pytest.fixture
def provider(conn: libvirt.virConnect) -> Iterator[LibvirtProvider]:
    p = LibvirtProvider("test:///default", interface_xml=fake_interface_xml)
    try:
        yield p
    finally:
        p.close()


def node(name: str) -> Node:
    return Node.of(name=name, kind="mini-ios", image="mini-ios/vmlinuz")


def test_create_reuse_restart_remove(workspace, provider: LibvirtProvider, conn) -> None:
    status = provider.create_node("ul-1", node("r1"), [end(1, 300)])
    assert status.state is NodeState.RUNNING and status.runtime_name == "arch-ul-1-r1"
    data = names.data_dir("ul-1") / "r1.qcow2"
    assert data.is_file()
    data_inode = data.stat().st_ino
    uuid = conn.lookupByName("arch-ul-1-r1").UUIDString()

    # idempotent: running => reused; stopped => started again, same domain, same data volume
    assert provider.create_node("ul-1", node("r1"), [end(1, 300)]).state is NodeState.RUNNING
    provider.stop_node("ul-1", "r1")
    assert provider.node_status("ul-1", "r1").state is NodeState.STOPPED
    provider.create_node("ul-1", node("r1"), [end(1, 300)])
    assert conn.lookupByName("arch-ul-1-r1").UUIDString() == uuid
    assert provider.node_status("ul-1", "r1").state is NodeState.RUNNING
    assert data.stat().st_ino == data_inode

    report = provider.remove_node("ul-1", "r1")
    assert report.ok and report.removed["domains"] == ["arch-ul-1-r1"]
    assert not data.exists()
    assert provider.node_status("ul-1", "r1").state is NodeState.MISSING


def test_missing_image_creates_nothing(workspace, provider: LibvirtProvider, conn) -> None:
    (workspace / "images" / "mini-ios" / "initrd.img").unlink()
    with pytest.raises(ImageNotFoundError, match="initrd.img"):
        provider.create_node("ul-2", node("r1"), [])
    assert provider.node_status("ul-2", "r1").state is NodeState.MISSING
    assert not names.data_dir("ul-2").exists()


def test_unmarked_and_foreign_domains_are_left_alone(workspace, provider: LibvirtProvider, conn) -> None:
    # `arch-ul-3-r1` without metadata: not ours
    conn.defineXML(
        "<domain type='test'><name>arch-ul-3-r1</name><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>"
    )
    with pytest.raises(DomainConflictError, match="without Archetype's metadata"):
        provider.create_node("ul-3", node("r1"), [])
    with pytest.raises(DomainConflictError):
        provider.node_status("ul-3", "r1")
    assert provider.remove_node("ul-3", "r1").removed == {}
    assert provider.remove_lab_nodes("ul-3").removed.get("domains") is None
    assert conn.lookupByName("arch-ul-3-r1")  # still there

    # lab "ul" node "4-r1" and lab "ul-4" node "r1" share a domain name: never confused
    provider.create_node("ul", node("4-r1"), [])
    with pytest.raises(DomainConflictError, match="belongs to node 4-r1 of lab ul"):
        provider.create_node("ul-4", node("r1"), [])
    assert [lab.lab_id for lab in provider.discover_labs()] == ["ul"]
    assert provider.remove_lab_nodes("ul-4").removed.get("domains") is None
    assert provider.node_status("ul", "4-r1").state is NodeState.RUNNING


def test_discovery_and_removal_by_lab(workspace, provider: LibvirtProvider, conn) -> None:
    for lab, nodes in (("ul-5", ["a", "b"]), ("ul-6", ["c"])):
        for name in nodes:
            provider.create_node(lab, node(name), [])
    provider.stop_node("ul-5", "b")
    labs = {lab.lab_id: {n.name: n.state for n in lab.nodes} for lab in provider.discover_labs()}
    assert labs == {"ul-5": {"a": NodeState.RUNNING, "b": NodeState.STOPPED}, "ul-6": {"c": NodeState.RUNNING}}

    report = provider.remove_lab_nodes("ul-5")
    assert report.ok, report.errors
    assert sorted(report.removed["domains"]) == ["arch-ul-5-a", "arch-ul-5-b"]
    assert not list(names.data_dir("ul-5").glob("*.qcow2"))
    assert [lab.lab_id for lab in provider.discover_labs()] == ["ul-6"]

    report = provider.remove_lab_nodes("ul-6")
    assert report.ok and report.removed["domains"] == ["arch-ul-6-c"]
    assert provider.discover_labs() == []


def test_every_libvirt_call_runs_on_one_thread(workspace, provider: LibvirtProvider, monkeypatch) -> None:
    threads: set[int] = set()
    real_open = libvirt.open

    def spy_open(uri: str):  # noqa: ANN202
        threads.add(threading.get_ident())
        return real_open(uri)

    monkeypatch.setattr(libvirt, "open", spy_open)
    seen: set[int] = set()
    original = provider._libvirt.run  # noqa: SLF001

    def run(fn, **kw):  # noqa: ANN001, ANN202
        return original(lambda c: (seen.add(threading.get_ident()), fn(c))[1], **kw)

    monkeypatch.setattr(provider._libvirt, "run", run)  # noqa: SLF001
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: provider.create_node("ul-7", node(f"n{i}"), []), range(8)))
        list(pool.map(lambda i: provider.node_status("ul-7", f"n{i}"), range(8)))
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert threads <= seen
    assert provider.remove_lab_nodes("ul-7").ok


def test_a_domain_that_fails_to_go_does_not_stop_the_rest(workspace, provider: LibvirtProvider, monkeypatch) -> None:
    import providers.libvirt.provider as module

    for name in ("a", "b", "c"):
        provider.create_node("ul-8", node(name), [])
    real = module.remove_domain

    def flaky(name: str, uuid: str):  # noqa: ANN202
        if name == "arch-ul-8-b":
            def fail(_conn):  # noqa: ANN001, ANN202
                raise libvirt.libvirtError("stuck in D state")
            return fail
        return real(name, uuid)

    monkeypatch.setattr(module, "remove_domain", flaky)
    report = provider.remove_lab_nodes("ul-8")
    assert sorted(report.removed["domains"]) == ["arch-ul-8-a", "arch-ul-8-c"]
    assert any("arch-ul-8-b" in e and "stuck in D state" in e for e in report.errors)
    assert names.data_dir("ul-8").joinpath("b.qcow2").exists()  # still in use: kept
    assert not names.data_dir("ul-8").joinpath("a.qcow2").exists()
    assert [n.name for lab in provider.discover_labs() for n in lab.nodes] == ["b"]

    monkeypatch.setattr(module, "remove_domain", real)
    assert provider.remove_lab_nodes("ul-8").ok
    assert not list(names.data_dir("ul-8").glob("*.qcow2"))


def test_connect_command(provider: LibvirtProvider) -> None:
    assert provider.connect_command("lab-1", node("r1")) == [
        "virsh", "-c", "test:///default", "console", "--force", "arch-lab-1-r1",
    ]


def test_a_paused_node_counts_as_stopped_and_is_resumed(workspace, provider: LibvirtProvider, conn) -> None:
    provider.create_node("ul-9", node("r1"), [])
    conn.lookupByName("arch-ul-9-r1").suspend()
    assert provider.node_status("ul-9", "r1").state is NodeState.STOPPED
    provider.create_node("ul-9", node("r1"), [])
    assert provider.node_status("ul-9", "r1").state is NodeState.RUNNING
    conn.lookupByName("arch-ul-9-r1").suspend()
    provider.stop_node("ul-9", "r1")
    assert not conn.lookupByName("arch-ul-9-r1").isActive()
    assert provider.remove_lab_nodes("ul-9").ok
