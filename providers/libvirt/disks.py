"""A VM node's disk files: its qcow2 overlay on the vendor image, and its data volume.

Both are made with ``qemu-img`` (argument lists, never a shell). A file that exists is
kept: the data volume must survive a restart, and a converging deploy reuses the overlay.

Before a domain is defined, ``check_qemu_access`` makes sure that QEMU, which the system
libvirtd runs as an unprivileged user (qemu.conf's ``user``, ``libvirt-qemu`` on Debian),
can reach every disk, kernel and initrd: search permission on each folder above it, read
on the file. Folders of the workspace are mended (0711, see lab/private.py); anything else
is a clear error naming the path, before anything is created (libvirt would otherwise say
"Cannot access storage file" at define time, and the task would retry it for nothing).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.errors import ImageNotFoundError, ProviderError
from providers.libvirt.domain_xml import DiskPlan, DomainPlan
from providers.workspace import is_ours, vm_folder

log = logging.getLogger("archetype.libvirt")

QEMU_IMG_TIMEOUT = 60.0
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# qemu.conf's `user` and `group` when unset: Debian builds libvirt with this account.
DEFAULT_QEMU_ACCOUNT = "libvirt-qemu"
# The URIs whose QEMU runs here under qemu.conf's account (a session daemon's QEMU runs as
# the caller; a remote URI's files are on another host; test:/// runs no QEMU).
LOCAL_SYSTEM_URI = re.compile(r"^qemu(\+unix)?:///system(\?.*)?$")
_CONF_LINE = re.compile(r"^\s*(user|group|dynamic_ownership)\s*=\s*\"?([^\"#\s]*)\"?")


class QemuAccessError(ProviderError):
    """QEMU could not open a file the domain names, and the way is not ours to mend."""

    transient = False


def check_images(plan: DomainPlan) -> None:
    """Every vendor file the domain needs is on this host, or ImageNotFoundError naming it."""
    for path in plan.required_files():
        if not path.is_file():
            raise ImageNotFoundError(
                f"node {plan.marker.node_name} ({plan.marker.kind}): image file {path} not found "
                "(see the kind's vm block in the catalog and the image_dir setting)"
            )


@dataclass(frozen=True)
class QemuAccount:
    """Who QEMU runs as, as the kernel sees it when it opens a file."""

    name: str
    uid: int
    gid: int
    gids: frozenset[int]  # its group and supplementary groups (libvirt sets them all)
    # libvirt gives each disk, kernel and initrd to QEMU (chown) before the start, and back
    # after: only the folders above them must let QEMU through (qemu.conf, on by default).
    dynamic_ownership: bool = True


def qemu_account(conf: Path = QEMU_CONF) -> QemuAccount | None:
    """The account from qemu.conf (its ``user``, ``group``, ``dynamic_ownership``; libvirt's
    defaults where unset); None when QEMU runs as root, who reaches everything."""
    values = {}
    if conf.is_file():
        for line in conf.read_text(errors="replace").splitlines():
            if match := _CONF_LINE.match(line):
                values[match[1]] = match[2]
    try:
        uid = _uid(values.get("user", DEFAULT_QEMU_ACCOUNT))
        gid = _gid(values.get("group", DEFAULT_QEMU_ACCOUNT))
    except (KeyError, ValueError) as err:
        raise ProviderError(f"{conf}: QEMU's user or group is not on this host: {err}") from err
    if uid == 0:
        return None
    try:
        name = pwd.getpwuid(uid).pw_name
        gids = frozenset({gid, *os.getgrouplist(name, gid)})
    except KeyError:
        name, gids = f"+{uid}", frozenset({gid})
    return QemuAccount(name, uid, gid, gids, values.get("dynamic_ownership", "1") != "0")


def _uid(value: str) -> int:
    return int(value[1:]) if value.startswith("+") else pwd.getpwnam(value).pw_uid


def _gid(value: str) -> int:
    return int(value[1:]) if value.startswith("+") else grp.getgrnam(value).gr_gid


def _allowed(st: os.stat_result, who: QemuAccount, want: int) -> bool:
    """The kernel's check of one permission (``want``: 4 read, 1 search) for ``who``: the
    owner's bits if it owns the file, else the group's if it is in the group, else others'."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == who.uid:
        bits = mode >> 6
    elif st.st_gid in who.gids:
        bits = mode >> 3
    else:
        bits = mode
    return bool(bits & want)


def may_search(st: os.stat_result, who: QemuAccount) -> bool:
    return _allowed(st, who, 0o1)


def may_read(st: os.stat_result, who: QemuAccount) -> bool:
    return _allowed(st, who, 0o4)


def check_qemu_access(plan: DomainPlan, uri: str, account: QemuAccount | None = None) -> None:
    """QEMU can reach every file of ``plan`` (disks, their base images, kernel, initrd):
    folders of the workspace that stop it are made 0711; anything else raises
    QemuAccessError naming the path. Files not made yet (this deploy's disks) are checked
    up to their nearest existing folder: the folders below it are made 0711."""
    if not LOCAL_SYSTEM_URI.match(uri):
        return
    who = account or qemu_account()
    if who is None:
        return
    for path in [*plan.required_files(), *(disk.path for disk in plan.disks)]:
        _reach(path, who, plan)


def _reach(path: Path, who: QemuAccount, plan: DomainPlan) -> None:
    path = path.absolute()
    for folder in reversed(path.parents):
        try:
            st = folder.stat()
        except FileNotFoundError:
            return  # made by us, 0711, when the disk is made
        if may_search(st, who):
            continue
        if not is_ours(folder):
            raise QemuAccessError(
                f"node {plan.marker.node_name}: QEMU (user {who.name}, uid {who.uid}) cannot reach {path}: "
                f"folder {folder} ({_describe(st)}) does not let it through, and it is not Archetype's to change "
                f"(outside the workspace). Give it search permission (chmod o+x {folder}), or keep the file "
                "in a folder QEMU can reach (ARCHETYPE_WORKSPACE, ARCHETYPE_IMAGE_DIR)"
            )
        log.info("workspace folder %s (%s) stopped QEMU: made 0711", folder, _describe(st))
        vm_folder(folder)
    if who.dynamic_ownership or not path.exists() or may_read(path.stat(), who):
        return
    if not is_ours(path):
        raise QemuAccessError(
            f"node {plan.marker.node_name}: QEMU (user {who.name}, uid {who.uid}) cannot read {path} "
            f"({_describe(path.stat())}) and libvirt does not give it files (dynamic_ownership = 0 in {QEMU_CONF})"
        )
    os.chown(path, who.uid, who.gid)  # what libvirt itself would do with dynamic_ownership


def _describe(st: os.stat_result) -> str:
    return f"mode {stat.S_IMODE(st.st_mode):04o}, owner {st.st_uid}:{st.st_gid}"


def _qemu_img(*args: str) -> None:
    argv = ["qemu-img", "create", "-q", *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ProviderError(f"{' '.join(argv)}: {err}") from err
    if result.returncode != 0:
        raise ProviderError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")


def ensure_disk(disk: DiskPlan) -> bool:
    """Create the disk file if it is missing; True when this call made it."""
    if disk.path.exists():
        return False
    if is_ours(disk.path.parent):
        vm_folder(disk.path.parent)  # 0711 from the workspace root down: QEMU opens the disk
    else:
        disk.path.parent.mkdir(parents=True, exist_ok=True)
    partial = disk.path.with_name(disk.path.name + ".partial")
    if disk.backing is not None:
        _qemu_img("-f", "qcow2", "-F", "qcow2", "-b", str(disk.backing), str(partial))
    else:
        _qemu_img("-f", "qcow2", str(partial), f"{disk.size_mb}M")
    partial.rename(disk.path)  # never a half-made disk under the real name
    return True


def ensure_disks(plan: DomainPlan) -> list[Path]:
    """Every disk of the plan exists; the files made by this call (to undo on failure)."""
    made: list[Path] = []
    try:
        for disk in plan.disks:
            if ensure_disk(disk):
                made.append(disk.path)
    except BaseException:
        remove_files(made)
        raise
    return made


def remove_files(paths: list[Path]) -> list[str]:
    """Remove files (missing is fine); errors as text."""
    errors = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            errors.append(f"cannot remove {path}: {err}")
    return errors
