"""A VM's snapshot and restore: libvirt's save (memory) plus copies of its disks.

``save``: the domain is saved (``virDomainSaveFlags``: QEMU pauses, writes its memory
and device state to a file, and stops), its disks are copied while nothing writes them
(consistent with the memory), its serial log too; then it is restored from that same file
and runs on. The VM is gone for the few seconds this takes, never rebooted.

``restore``: the disks go back where they were, and the domain is restored from the saved
memory (``virDomainRestoreFlags``) with its link NICs on this host's VLAN tags (libvirt
plugs the taps with the tag of the XML); it resumes where it was: no boot, no post-boot.

Every path is checked against the lab's own folders before anything is made. QEMU never
opens a snapshot file: libvirtd (root) reads the memory file and hands QEMU a pipe, and
the disks are copied back into the lab's disk folders, which QEMU can reach (0711, as
``ensure_disk`` makes them). Plain Python over libvirt: which host runs this is the
flow's business.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import libvirt

from lab import names
from lab.errors import ProviderError
from lab.private import FILE_MODE, search_only_dirs
from lab.settings import get_settings
from lab.snapshots import SnapshotError, private_copy
from providers import network
from providers.libvirt.domain_xml import parse_marker
from providers.libvirt.domains import UNDEFINE_FLAGS, lookup_domain
from providers.libvirt.migration import retagged_xml

log = logging.getLogger("archetype.libvirt")

MEMORY_FILE = "memory.save"
SERIAL_FILE = "serial.log"


@dataclass(frozen=True)
class SavedDisk:
    target: str  # vda, vdb...
    path: str  # where it lives in the lab's folders
    file: str  # its copy in the node's snapshot folder


@dataclass(frozen=True)
class SavedVm:
    """What a VM's snapshot folder holds, besides the memory file (``vm.json``)."""

    node: str
    domain: str
    disks: tuple[SavedDisk, ...]
    serial_log: str | None
    paused_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> SavedVm:
        values = dict(data)
        values["disks"] = tuple(SavedDisk(**d) for d in values.get("disks", ()))
        return cls(**values)


def _open(uri: str) -> libvirt.virConnect:
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as err:
        raise ProviderError(f"cannot connect to libvirt at {uri}: {err}") from err


def _marker_is(xml: str, lab_id: str, node: str) -> bool:
    root = ET.fromstring(xml)
    metadata = root.find("metadata")
    if metadata is None or not len(metadata):
        return False
    marker = parse_marker(ET.tostring(metadata[0], encoding="unicode"))
    return marker is not None and (marker.lab_id, marker.node_name) == (lab_id, node) \
        and root.findtext("name") == names.domain_name(lab_id, node)


def _writable_disks(root: ET.Element) -> list[tuple[str, str]]:
    """(target, path) of the domain's file disks that it writes (overlay, data volume)."""
    found = []
    for disk in root.iter("disk"):
        source, target = disk.find("source"), disk.find("target")
        if disk.get("device") != "disk" or disk.get("type") != "file" or source is None or target is None:
            continue
        if disk.find("readonly") is not None or disk.find("shareable") is not None:
            continue
        found.append((target.get("dev", ""), source.get("file", "")))
    return found


def _serial_log(root: ET.Element) -> str | None:
    for serial in root.iter("serial"):
        element = serial.find("log")
        if element is not None and element.get("file"):
            return element.get("file")
    return None


# Save ---------------------------------------------------------------------------------------


def save(uri: str, lab_id: str, node: str, folder: Path) -> SavedVm:
    """Save the node's running VM into ``folder`` (memory, disks, serial log) and let it
    run on. Raises ProviderError (and the VM runs as before) when it cannot be saved."""
    domain = names.domain_name(lab_id, node)
    conn = _open(uri)
    try:
        dom = lookup_domain(conn, domain)
        if dom is None:
            raise ProviderError(f"node {node} of lab {lab_id}: no domain {domain} on this host")
        xml = dom.XMLDesc(0)
        if not _marker_is(xml, lab_id, node):
            raise ProviderError(f"domain {domain} is not node {node} of lab {lab_id}: left alone")
        if not dom.isActive():
            raise ProviderError(f"node {node} of lab {lab_id} is not running: start it before a snapshot")
        root = ET.fromstring(xml)
        disks = [SavedDisk(target, path, f"{target}.disk") for target, path in _writable_disks(root)]
        serial = _serial_log(root)
        memory = folder / MEMORY_FILE
        started = time.monotonic()
        dom.saveFlags(str(memory), None, libvirt.VIR_DOMAIN_SAVE_RUNNING)  # the VM stops here
        try:
            for disk in disks:  # nothing writes them now: consistent with the saved memory
                private_copy(Path(disk.path), folder / disk.file)
            if serial and Path(serial).is_file():
                private_copy(Path(serial), folder / SERIAL_FILE)
        finally:
            _resume(conn, dom, memory, node)
        paused = time.monotonic() - started
        os.chmod(memory, FILE_MODE)
        log.info("%s saved (%d disk(s)); it was paused %.1f s", domain, len(disks), paused)
        return SavedVm(node, domain, tuple(disks), serial if serial and (folder / SERIAL_FILE).exists() else None,
                       round(paused, 2))
    except libvirt.libvirtError as err:
        raise ProviderError(f"node {node} of lab {lab_id}: save: libvirt: {err}") from err
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


RESTORE_TRIES = 3  # libvirt plugs the taps with ovs-vsctl, which times out on a host under heavy load


def _restore_from(conn: libvirt.virConnect, memory: Path, xml: str | None, node: str) -> None:
    """``virDomainRestoreFlags``, tried again when it fails: a failed restore leaves no domain
    and the memory file unchanged (seen: "Unable to add port ... to OVS bridge" at load 300)."""
    for attempt in range(1, RESTORE_TRIES + 1):
        try:
            conn.restoreFlags(str(memory), xml, libvirt.VIR_DOMAIN_SAVE_RUNNING)
        except libvirt.libvirtError as err:
            if attempt == RESTORE_TRIES:
                raise
            log.warning("node %s: restore from its saved memory failed (%s): trying again", node, err)
            time.sleep(2 * attempt)
        else:
            return


def _resume(conn: libvirt.virConnect, dom: libvirt.virDomain, memory: Path, node: str) -> None:
    """The saved VM runs on from its file; if that fails, it boots (it must not stay down)."""
    try:
        _restore_from(conn, memory, None, node)
    except libvirt.libvirtError as err:
        log.error("node %s: restore after its save failed (%s): booting it", node, err)  # noqa: TRY400 - one line
        dom.create()
        raise


# Restore ------------------------------------------------------------------------------------


def check(uri: str, lab_id: str, folder: Path, saved: SavedVm) -> str:
    """Everything a restore of the VM needs, checked without making anything: the memory
    file is libvirt's and the node's, its disks go into the lab's folders, the files it
    boots from are on this host. Returns the saved domain XML."""
    node = saved.node
    if saved.domain != names.domain_name(lab_id, node):
        raise SnapshotError(f"node {node}: domain {saved.domain!r} is not its name in lab {lab_id}")
    roots = [names.disks_dir(lab_id), names.data_dir(lab_id)]
    for disk in saved.disks:
        _inside(disk.path, roots, f"node {node}: disk")
        if Path(disk.file).name != disk.file or not (folder / disk.file).is_file():
            raise SnapshotError(f"node {node}: disk copy {disk.file!r} is not in the snapshot")
    if saved.serial_log:
        _inside(saved.serial_log, [names.logs_dir(lab_id)], f"node {node}: serial log")
    conn = _open(uri)
    try:
        xml = conn.saveImageGetXMLDesc(str(folder / MEMORY_FILE), 0)
    except libvirt.libvirtError as err:
        raise SnapshotError(f"node {node}: {folder / MEMORY_FILE} is not a libvirt save image: {err}") from None
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    if not _marker_is(xml, lab_id, node):
        raise SnapshotError(f"node {node}: the saved memory is not node {node} of lab {lab_id}'s (foreign file)")
    root = ET.fromstring(xml)
    if {(t, p) for t, p in _writable_disks(root)} != {(d.target, d.path) for d in saved.disks}:
        raise SnapshotError(f"node {node}: the saved memory's disks are not the snapshot's")
    os_element = root.find("os")
    needed = [e.text for e in (os_element.find("kernel"), os_element.find("initrd"))
              if e is not None and e.text] if os_element is not None else []
    image_roots = [get_settings().image_dir]
    for path in needed:
        _inside(path, image_roots, f"node {node}: boot file")
    missing = [p for p in needed if not Path(p).is_file()]
    if missing:
        raise SnapshotError(f"node {node}: {', '.join(missing)} not on this host (its kind's image files)")
    return xml


def _inside(path: str, roots: list[Path], what: str) -> Path:
    resolved = Path(os.path.normpath(path))
    if not resolved.is_absolute() or not any(resolved.is_relative_to(root) for root in roots):
        raise SnapshotError(f"{what} {path} is outside {', '.join(map(str, roots))}: refused")
    return resolved


def with_tags(xml: str, tags: Mapping[str, int]) -> str:
    """The saved XML with each link NIC (tap ``port`` in ``tags``) on its VLAN tag here, and
    the serial log appended to (it goes on from the snapshot's), as a moved VM's."""
    return retagged_xml(xml, tags)


def link_ports(xml: str) -> list[str]:
    """The taps of the VM's NICs (what ``unplug_dead_taps`` and the tags are about)."""
    ports = []
    for iface in ET.fromstring(xml).iter("interface"):
        target = iface.find("target")
        if iface.get("type") == "bridge" and target is not None and target.get("dev"):
            ports.append(target.get("dev", ""))
    return ports


def restore(uri: str, lab_id: str, folder: Path, saved: SavedVm, tags: Mapping[str, int]) -> float:
    """Bring the VM back from ``folder`` (checked with ``check`` first), running, its link
    NICs on ``tags`` (tap -> VLAN); the seconds it took. On failure nothing of it stays."""
    xml = check(uri, lab_id, folder, saved)
    conn = _open(uri)
    started = time.monotonic()
    try:
        if lookup_domain(conn, saved.domain) is not None:  # never replaced, never undone
            raise ProviderError(f"node {saved.node}: a domain {saved.domain} already exists on this host: "
                                "destroy the lab first")
        _restore_on(conn, lab_id, folder, saved, with_tags(xml, tags))
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    seconds = time.monotonic() - started
    log.info("%s restored in %.1f s", saved.domain, seconds)
    return seconds


def _restore_on(conn: libvirt.virConnect, lab_id: str, folder: Path, saved: SavedVm, xml: str) -> None:
    made: list[Path] = []
    try:
        for disk in saved.disks:
            target = Path(disk.path)
            search_only_dirs(names.workspace(), target.parent)  # QEMU opens it: the folders let it through
            partial = target.with_name(target.name + ".partial")
            partial.unlink(missing_ok=True)
            private_copy(folder / disk.file, partial)
            os.replace(partial, target)
            made.append(target)
        if saved.serial_log and (folder / SERIAL_FILE).is_file():
            log_path = Path(saved.serial_log)
            log_path.unlink(missing_ok=True)
            private_copy(folder / SERIAL_FILE, log_path)
            made.append(log_path)
        network.unplug_dead_taps(lab_id, saved.node, link_ports(xml))
        _restore_from(conn, folder / MEMORY_FILE, xml, saved.node)
        dom = conn.lookupByName(saved.domain)
        conn.defineXML(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))  # persistent, as deployed
    except libvirt.libvirtError as err:
        _undo(conn, saved.domain, made)
        raise ProviderError(f"node {saved.node} of lab {lab_id}: restore: libvirt: {err}") from err
    except BaseException:
        _undo(conn, saved.domain, made)
        raise


def _undo(conn: libvirt.virConnect, domain: str, made: list[Path]) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        dom = lookup_domain(conn, domain)
        if dom is not None:
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefineFlags(UNDEFINE_FLAGS)
    for path in made:
        path.unlink(missing_ok=True)
