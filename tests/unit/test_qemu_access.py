"""Whether QEMU (an unprivileged account) can reach a VM's files, and the 0711 folders of the
workspace: the kernel's permission rule, qemu.conf's account, the mending of our own folders
whatever made them, and the error for a folder that is not ours. No libvirt daemon."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.private import WORKSPACE_MODE, private_dir, search_only_dirs
from lab.settings import get_settings
from providers.libvirt.disks import (
    QemuAccessError,
    QemuAccount,
    check_qemu_access,
    ensure_disks,
    may_read,
    may_search,
    qemu_account,
)
from providers.libvirt.domain_xml import plan_domain
from providers.workspace import vm_folder
from tests.unit.test_libvirt_xml import fake_interface_xml
from topology import Node

QEMU = QemuAccount("libvirt-qemu", uid=64055, gid=64055, gids=frozenset({64055, 110}))
SYSTEM = "qemu:///system"


def _stat(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 2, uid, gid, 0, 0, 0, 0))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "search"),
    [
        (0o700, 0, 0, False),  # root's alone: what private_dir or `umask 077` makes
        (0o711, 0, 0, True),  # the workspace's rule: search only
        (0o755, 0, 0, True),
        (0o710, 0, 110, True),  # a group QEMU is in (kvm)
        (0o701, 0, 110, False),  # in the group: the group's bits count, not others'
        (0o070, 64055, 0, False),  # its own folder without owner bits: owner bits count
        (0o100, 64055, 0, True),
    ],
)
def test_search_follows_the_kernels_rule(mode: int, uid: int, gid: int, search: bool) -> None:
    assert may_search(_stat(mode, uid, gid), QEMU) is search


def test_read_needs_the_read_bit_of_the_class_that_applies() -> None:
    assert not may_read(_stat(0o600), QEMU)
    assert may_read(_stat(0o644), QEMU)
    assert may_read(_stat(0o600, uid=64055), QEMU)  # libvirt's dynamic ownership gives it so
    assert may_read(_stat(0o640, gid=110), QEMU)


def test_the_account_comes_from_qemu_conf(tmp_path: Path) -> None:
    conf = tmp_path / "qemu.conf"
    conf.write_text('#user = "root"\nuser = "+64055"\n  group="+110"  # kvm\ndynamic_ownership = 0\n')
    account = qemu_account(conf)
    assert account is not None
    assert (account.uid, account.gid, account.dynamic_ownership) == (64055, 110, False)
    conf.write_text('user = "root"\n')
    assert qemu_account(conf) is None  # root reaches everything: nothing to check
    default = qemu_account(tmp_path / "absent.conf")  # Debian's build default
    assert default is not None and default.name == "libvirt-qemu" and default.dynamic_ownership


def test_search_only_dirs_sets_0711_whoever_made_the_folders(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    old = os.umask(0o077)
    try:
        private_dir(root / "data")  # a folder of the workspace made 0700 first (locks/, prefect/...)
        search_only_dirs(root, root / "data" / "lab-a")
    finally:
        os.umask(old)
    assert _mode(root) == _mode(root / "data") == _mode(root / "data" / "lab-a") == WORKSPACE_MODE
    assert _mode(tmp_path) != WORKSPACE_MODE  # above the workspace: not ours, untouched
    with pytest.raises(ValueError):
        search_only_dirs(root, tmp_path / "elsewhere")


@pytest.fixture
def reachable_workspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace QEMU could reach but for our own folders: made under /var/tmp (1777), 0700
    as mkdtemp makes it, with its images inside."""
    root = Path(tempfile.mkdtemp(prefix="arch-qemu-access-", dir="/var/tmp"))
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(root))
    monkeypatch.setenv("ARCHETYPE_IMAGE_DIR", str(root / "images"))
    get_settings.cache_clear()
    old = os.umask(0o077)
    try:
        images = private_dir(root / "images" / "mini-ios")
        for name in ("vmlinuz", "initrd.img"):
            (images / name).write_bytes(b"x")
    finally:
        os.umask(old)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        get_settings.cache_clear()


def _plan(lab: str = "lab-a"):  # noqa: ANN202
    node = Node.of(name="v1", kind="mini-ios", image="mini-ios/vmlinuz")
    return plan_domain(lab, node, [], interface_xml=fake_interface_xml)


def test_our_folders_on_the_way_are_mended_before_the_disks_are_made(reachable_workspace: Path) -> None:
    root = reachable_workspace
    private_dir(root / "data" / "lab-a")  # 0700: a workspace setup never saw, made under umask 077
    check_qemu_access(_plan(), SYSTEM, QEMU)
    for folder in (root, root / "images", root / "images" / "mini-ios", root / "data", root / "data" / "lab-a"):
        assert _mode(folder) == WORKSPACE_MODE, folder
    assert not (root / "data" / "lab-a" / "v1.qcow2").exists()  # a check: nothing made


def test_disks_are_made_in_0711_folders_and_stay_private(reachable_workspace: Path) -> None:
    old = os.umask(0o077)
    try:
        made = ensure_disks(_plan("lab-b"))
    finally:
        os.umask(old)
    assert made == [reachable_workspace / "data" / "lab-b" / "v1.qcow2"]
    assert _mode(reachable_workspace / "data") == _mode(reachable_workspace / "data" / "lab-b") == WORKSPACE_MODE
    assert _mode(made[0]) & 0o077 == 0  # the disk itself: root's (libvirt gives it to QEMU while it runs)


def test_a_folder_that_is_not_ours_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(closed / "ws"))
    monkeypatch.setenv("ARCHETYPE_IMAGE_DIR", str(closed / "images"))
    get_settings.cache_clear()
    try:
        images = closed / "images" / "mini-ios"
        images.mkdir(parents=True)
        for name in ("vmlinuz", "initrd.img"):
            (images / name).write_bytes(b"x")
        with pytest.raises(QemuAccessError) as raised:
            check_qemu_access(_plan(), SYSTEM, QEMU)
        message = str(raised.value)
        assert "libvirt-qemu" in message and "not Archetype's" in message and "chmod o+x" in message
        assert not raised.value.transient  # never retried
        assert _mode(closed) == 0o700  # not ours: left as it is
        assert not (closed / "ws").exists()
    finally:
        get_settings.cache_clear()


def test_only_the_local_system_daemon_is_checked(tmp_path: Path) -> None:
    """test:///default runs no QEMU; a session daemon's QEMU is the caller; a remote URI's
    files are on another host."""
    for uri in ("test:///default", "qemu:///session", "qemu+tcp://10.213.0.2/system"):
        check_qemu_access(_plan(), uri, QEMU)  # a plan under an unreachable default: no error


def test_vm_folder_mends_the_chain_from_the_workspace_root(reachable_workspace: Path) -> None:
    os.chmod(reachable_workspace, 0o700)
    folder = vm_folder(reachable_workspace / "disks" / "lab-c")
    assert _mode(reachable_workspace) == _mode(folder.parent) == _mode(folder) == WORKSPACE_MODE
