"""Live migration of a VM node to another host: libvirt peer-to-peer, non-shared storage.

The steps run on two hosts, each with its own libvirtd and files (HOST-FACTS, "Several
hosts on one machine"):

- source: ``describe`` the running domain (its migratable XML, disks, the vendor files it
  needs) into a ``MigrationPlan``, plain data that travels to the destination;
- destination: ``prepare`` it (memory there, vendor files present, the overlay and data
  disks pre-created with the same path, format and size, the serial log seeded so that it
  goes on, the bridge); ``destination_xml`` gives the links the destination's VLAN tags;
- source: ``migrate`` (``VIR_MIGRATE_PEER2PEER | LIVE | NON_SHARED_INC``: the source
  daemon copies the disks over NBD and the memory, then switches; the source domain is
  undefined, the destination one persistent), cancellable;
- destination on failure: ``clean`` removes what ``prepare`` made, never a domain that
  runs there.

Every function here is plain Python over a libvirt connection; which host runs which step
is the flow's business. Paths in a plan are checked to lie in the lab's own folders and
the image folder before anything is made from them: a plan is a flow parameter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import libvirt

from lab import names
from lab.errors import ImageNotFoundError, ProviderError
from lab.settings import get_settings
from providers.libvirt.conn import VIR_ERR_NO_DOMAIN, error_code
from providers.libvirt.disks import remove_files
from providers.libvirt.domain_xml import NodeMarker, parse_marker
from providers.libvirt.domains import UNDEFINE_FLAGS, lookup_domain

log = logging.getLogger("archetype.libvirt")

MIGRATE_FLAGS = (
    libvirt.VIR_MIGRATE_PEER2PEER  # the source daemon drives it: it survives our process
    | libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_NON_SHARED_INC  # the top images over NBD; base images are there
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)
POLL_SECONDS = 0.2
QEMU_IMG_TIMEOUT = 60.0
SERIAL_LOG_SEED_BYTES = 1 << 20  # the tail of the source's serial log the destination starts from


class MigrationError(ProviderError):
    """The migration did not happen; the VM runs on the source as before."""

    transient = False


class DestinationError(MigrationError):
    """The destination cannot take the VM (memory, files, a domain of that name)."""


class MigrationCancelled(MigrationError):
    """The migration was aborted on request; the VM runs on the source as before."""


@dataclass(frozen=True)
class DiskCopy:
    target: str  # vda, vdb...
    path: str
    format: str
    virtual_size: int  # bytes
    backing: str | None = None
    backing_format: str | None = None


@dataclass(frozen=True)
class MigrationPlan:
    """What the destination must know of the running VM (JSON-able: a flow parameter)."""

    lab_id: str
    node: str
    kind: str
    domain: str
    uuid: str
    memory_mb: int
    xml: str  # the source's migratable live XML
    disks: tuple[DiskCopy, ...]
    files: tuple[str, ...]  # vendor files that must be on the destination (kernel, initrd, base images)
    serial_log: str | None
    link_ports: tuple[str, ...] = field(default=())  # taps on a link (OVS ports), NIC order

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> MigrationPlan:
        values = dict(data)
        values["disks"] = tuple(DiskCopy(**d) for d in values.get("disks", ()))
        values["files"] = tuple(values.get("files", ()))
        values["link_ports"] = tuple(values.get("link_ports", ()))
        return cls(**values)


# Source: describe ---------------------------------------------------------------------


def _qemu_img_info(path: str) -> dict:
    # -U: the image is in use by the running VM (read without taking its lock).
    argv = ["qemu-img", "info", "-U", "--output=json", path]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ProviderError(f"{' '.join(argv)}: {err}") from err
    if result.returncode != 0:
        raise ProviderError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _disks(root: ET.Element) -> list[DiskCopy]:
    disks = []
    for disk in root.iter("disk"):
        source, target, driver = disk.find("source"), disk.find("target"), disk.find("driver")
        if disk.get("device") != "disk" or disk.get("type") != "file" or source is None or target is None:
            continue
        if disk.find("readonly") is not None or disk.find("shareable") is not None:
            continue
        path = source.get("file", "")
        info = _qemu_img_info(path)
        disks.append(
            DiskCopy(
                target=target.get("dev", ""),
                path=path,
                format=(driver.get("type") if driver is not None else None) or info.get("format", "qcow2"),
                virtual_size=int(info["virtual-size"]),
                backing=info.get("full-backing-filename") or info.get("backing-filename"),
                backing_format=info.get("backing-filename-format"),
            )
        )
    return disks


def _link_ports(root: ET.Element) -> list[str]:
    ports = []
    for iface in root.iter("interface"):
        target = iface.find("target")
        if iface.get("type") == "bridge" and target is not None and target.get("dev"):
            ports.append(target.get("dev", ""))
    return ports


def _serial_log(root: ET.Element) -> str | None:
    for serial in root.iter("serial"):
        log_element = serial.find("log")
        if log_element is not None and log_element.get("file"):
            return log_element.get("file")
    return None


def describe(conn: libvirt.virConnect, lab_id: str, node: str) -> MigrationPlan:
    """The plan of the node's running VM on this (the source) host."""
    name = names.domain_name(lab_id, node)
    dom = lookup_domain(conn, name)
    if dom is None:
        raise MigrationError(f"node {node} of lab {lab_id}: no domain {name} on this host")
    marker = _marker_of(dom)
    if marker is None or (marker.lab_id, marker.node_name) != (lab_id, node):
        raise MigrationError(f"domain {name} is not node {node} of lab {lab_id}: left alone")
    if dom.state()[0] not in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
        raise MigrationError(f"node {node} of lab {lab_id} is not running: only a running VM migrates live")
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
    root = ET.fromstring(xml)
    disks = _disks(root)
    os_element = root.find("os")
    files = [e.text for e in (os_element.find("kernel"), os_element.find("initrd")) if e is not None and e.text] if os_element is not None else []
    files += [d.backing for d in disks if d.backing]
    return MigrationPlan(
        lab_id=lab_id,
        node=node,
        kind=marker.kind,
        domain=name,
        uuid=dom.UUIDString(),
        memory_mb=int(dom.info()[1]) // 1024,
        xml=xml,
        disks=tuple(disks),
        files=tuple(files),
        serial_log=_serial_log(root),
        link_ports=tuple(_link_ports(root)),
    )


def _marker_of(dom: libvirt.virDomain) -> NodeMarker | None:
    try:
        return parse_marker(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, names.METADATA_NS, 0))
    except libvirt.libvirtError:
        return None


def serial_log_tail(plan: MigrationPlan, limit: int = SERIAL_LOG_SEED_BYTES) -> bytes:
    """The end of the source's serial log, to seed the destination's with."""
    if not plan.serial_log:
        return b""
    try:
        with open(plan.serial_log, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - limit))
            return handle.read()
    except FileNotFoundError:
        return b""


# The destination's XML ------------------------------------------------------------------


def destination_xml(plan: MigrationPlan, tags: Mapping[str, int]) -> str:
    """The plan's XML with each link NIC on the destination's VLAN tag (libvirt puts the
    tap on OVS with the tag from the XML, not from OVS state) and the serial log appended
    to, not truncated, when the destination's QEMU starts. ``tags``: OVS port -> tag."""
    missing = [port for port in plan.link_ports if port not in tags]
    if missing:
        raise MigrationError(f"node {plan.node}: no destination VLAN for its port(s) {', '.join(missing)}")
    return retagged_xml(plan.xml, tags)


def retagged_xml(xml: str, tags: Mapping[str, int]) -> str:
    """A domain's XML with each link NIC (tap ``port`` in ``tags``) on its tag here and its
    serial log appended to: a VM that goes on running elsewhere (a move, a snapshot's restore)."""
    root = ET.fromstring(xml)
    for iface in root.iter("interface"):
        target = iface.find("target")
        port = target.get("dev") if target is not None else None
        if iface.get("type") != "bridge" or port not in tags:
            continue
        vlan = iface.find("vlan")
        if vlan is None:
            vlan = ET.SubElement(iface, "vlan")
        for tag in list(vlan):
            vlan.remove(tag)
        ET.SubElement(vlan, "tag", id=str(int(tags[port])))
    for serial in root.iter("serial"):
        log_element = serial.find("log")
        if log_element is not None:
            log_element.set("append", "on")
    return ET.tostring(root, encoding="unicode")


# Destination: prepare, clean ------------------------------------------------------------


def _inside(path: str, roots: list[Path], what: str) -> Path:
    resolved = Path(os.path.normpath(path))
    if not resolved.is_absolute() or not any(resolved.is_relative_to(root) for root in roots):
        raise DestinationError(f"{what} {path} is outside {', '.join(map(str, roots))}: refused")
    return resolved


def check_plan_paths(plan: MigrationPlan) -> None:
    """Every path of the plan lies in the lab's own folders or the image folder."""
    if not names.is_valid_lab_id(plan.lab_id) or not names.is_valid_node_name(plan.node):
        raise DestinationError(f"lab {plan.lab_id!r} / node {plan.node!r}: not valid names")
    if plan.domain != names.domain_name(plan.lab_id, plan.node):
        raise DestinationError(f"domain {plan.domain!r} is not node {plan.node}'s")
    lab_roots = [names.disks_dir(plan.lab_id), names.data_dir(plan.lab_id)]
    image_roots = [get_settings().image_dir]
    for disk in plan.disks:
        _inside(disk.path, lab_roots, "disk")
        if disk.backing:
            _inside(disk.backing, image_roots, "base image")
        if disk.format not in ("qcow2", "raw") or (disk.backing_format or "qcow2") not in ("qcow2", "raw"):
            raise DestinationError(f"disk {disk.path}: format {disk.format!r} is not one we make")
    for path in plan.files:
        _inside(path, image_roots, "vendor file")
    if plan.serial_log:
        _inside(plan.serial_log, [names.logs_dir(plan.lab_id)], "serial log")
    root = ET.fromstring(plan.xml)
    marker_element = root.find("metadata")
    marker = parse_marker(ET.tostring(marker_element[0], encoding="unicode")) if marker_element is not None and len(marker_element) else None
    if marker is None or (marker.lab_id, marker.node_name) != (plan.lab_id, plan.node) or root.findtext("name") != plan.domain:
        raise DestinationError(f"the plan's XML is not node {plan.node} of lab {plan.lab_id}")


def free_memory_mb(conn: libvirt.virConnect) -> int:
    """What the host can still give a VM: free memory plus page cache (the kernel drops
    it when asked), as libvirt reports them."""
    stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
    return int(stats.get("free", 0) + stats.get("cached", 0) + stats.get("buffers", 0)) // 1024


def _create_disk(disk: DiskCopy) -> None:
    argv = ["qemu-img", "create", "-q", "-f", disk.format]
    if disk.backing:
        argv += ["-F", disk.backing_format or "qcow2", "-b", disk.backing]
    argv += [disk.path + ".partial", str(disk.virtual_size)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DestinationError(f"{' '.join(argv)}: {err}") from err
    if result.returncode != 0:
        raise DestinationError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    os.rename(disk.path + ".partial", disk.path)  # never a half-made disk under the real name


def prepare(conn: libvirt.virConnect, plan: MigrationPlan, *, serial_log_seed: bytes = b"") -> list[str]:
    """Make this (the destination) host ready to receive the VM; the files made, which
    ``clean`` removes if the migration does not happen. Raises ``DestinationError`` (and
    makes nothing) when it cannot take the VM."""
    check_plan_paths(plan)
    existing = lookup_domain(conn, plan.domain)
    if existing is not None:
        raise DestinationError(
            f"node {plan.node}: a domain {plan.domain} already exists on this host "
            f"({'running' if existing.isActive() else 'stopped'}): it would be replaced"
        )
    reserve = get_settings().host_memory_reserve_mb
    free = free_memory_mb(conn)
    if free - reserve < plan.memory_mb:
        raise DestinationError(
            f"node {plan.node} needs {plan.memory_mb} MiB; this host has {free} MiB free and keeps "
            f"{reserve} MiB for itself (host_memory_reserve_mb)"
        )
    missing = [path for path in plan.files if not Path(path).is_file()]
    if missing:
        raise ImageNotFoundError(f"node {plan.node} ({plan.kind}): {', '.join(missing)} not on this host")
    # The node does not run here (checked above): files of it here are what an earlier
    # attempt left (a run killed between its steps); they go, and the move starts afresh.
    leftovers = [p for p in [d.path for d in plan.disks] + [plan.serial_log or ""] if p and Path(p).exists()]
    if leftovers:
        log.warning("node %s: removing what an earlier move left here: %s", plan.node, ", ".join(leftovers))
        errors = clean_files(leftovers)
        if errors:
            raise DestinationError("; ".join(errors))
    made: list[str] = []
    try:
        for disk in plan.disks:
            Path(disk.path).parent.mkdir(parents=True, exist_ok=True)
            _create_disk(disk)
            made.append(disk.path)
        if plan.serial_log and not Path(plan.serial_log).exists():
            Path(plan.serial_log).parent.mkdir(parents=True, exist_ok=True)
            with open(plan.serial_log, "xb") as handle:
                handle.write(serial_log_seed)
            os.chmod(plan.serial_log, 0o600)
            made.append(plan.serial_log)
    except BaseException:
        clean_files(made)
        raise
    return made


def clean_files(paths: list[str]) -> list[str]:
    """Remove the files a preparation made, and the ``.partial`` a copy may have left."""
    return remove_files([Path(candidate) for path in paths for candidate in (path, path + ".partial")])


def clean(conn: libvirt.virConnect, plan: MigrationPlan, made: list[str] | None = None) -> list[str]:
    """After a migration that did not happen: the destination holds nothing of the node.
    An inactive leftover domain of the node is undefined; a RUNNING one is the node itself
    (the migration did switch) and nothing is removed. ``made``: the files ``prepare``
    made (default: every file of the plan, for a run that lost its list). Returns the
    files removed."""
    dom = lookup_domain(conn, plan.domain)
    if dom is not None:
        marker = _marker_of(dom)
        if marker is None or (marker.lab_id, marker.node_name) != (plan.lab_id, plan.node):
            raise DestinationError(f"domain {plan.domain} here is not node {plan.node}'s: left alone")
        if dom.isActive():
            raise DestinationError(f"node {plan.node} runs on this host: its files stay")
        try:
            dom.undefineFlags(UNDEFINE_FLAGS)
        except libvirt.libvirtError as err:
            if error_code(err) != VIR_ERR_NO_DOMAIN:
                raise
    check_plan_paths(plan)
    paths = made if made is not None else [d.path for d in plan.disks] + ([plan.serial_log] if plan.serial_log else [])
    existing = [p for p in paths if Path(p).exists()]
    errors = clean_files(existing)
    if errors:
        raise DestinationError("; ".join(errors))
    return existing


# Source: migrate -------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationResult:
    seconds: float
    downtime_ms: int | None  # the pause between the last copy and the switch
    data_mb: float | None
    downtime_source: str = "qemu"  # "qemu": its job statistics; "measured": the source seen paused, by polling


def migrate(
    uri: str,
    plan: MigrationPlan,
    *,
    dest_uri: str,
    migration_uri: str,
    dest_xml: str,
    cancel: threading.Event | None = None,
    timeout: float = 600.0,
    progress: Callable[[dict], None] | None = None,
    bandwidth_mib: int | None = None,
) -> MigrationResult:
    """Migrate the plan's domain from this host (libvirt ``uri``) to ``dest_uri``
    (``qemu+tcp://<address>/system``), the data over ``migration_uri``
    (``tcp://<address>``). Blocks until done. ``cancel`` set, or ``timeout`` passed:
    the job is aborted and ``MigrationCancelled`` raised; the VM runs on here. Runs on its
    own connections (the call blocks one; the abort needs another). ``progress`` gets the
    job's statistics every poll; ``bandwidth_mib`` caps the copy (MiB/s)."""
    conn = _open(uri)
    watcher = _open(uri)
    try:
        dom = lookup_domain(conn, plan.domain)
        if dom is None or dom.UUIDString() != plan.uuid:
            raise MigrationError(f"node {plan.node}: domain {plan.domain} is not the one described")
        params = {
            libvirt.VIR_MIGRATE_PARAM_URI: migration_uri,
            libvirt.VIR_MIGRATE_PARAM_DEST_XML: dest_xml,
            libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: dest_xml,
        }
        if bandwidth_mib:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib)
        if plan.disks:
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [d.target for d in plan.disks]
        outcome: dict[str, BaseException | None] = {}

        def run() -> None:
            try:
                dom.migrateToURI3(dest_uri, params, MIGRATE_FLAGS)
                outcome["error"] = None
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                outcome["error"] = err

        started = time.monotonic()
        worker = threading.Thread(target=run, name=f"migrate-{plan.domain}", daemon=True)
        worker.start()
        aborted = None
        watched = watcher.lookupByUUIDString(plan.uuid)
        running_at = started  # last seen running here (not paused for the switch)
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if not worker.is_alive():
                break
            if _running(watched):
                running_at = time.monotonic()
            if aborted is None and (cancel is not None and cancel.is_set()):
                aborted = "cancelled"
            elif aborted is None and time.monotonic() - started > timeout:
                aborted = f"not done within {timeout:.0f} s"
            if aborted is not None:
                _abort(watched, plan)
            elif progress is not None:
                _report(watched, progress)
        ended = time.monotonic()
        error = outcome.get("error")
        if error is not None:
            if aborted is not None:
                raise MigrationCancelled(f"node {plan.node}: migration {aborted}: aborted, it runs on here") from error
            raise MigrationError(f"node {plan.node}: migration to {dest_uri} failed: {error}") from error
        downtime_ms, data_mb = _completed_stats(dest_uri, plan)
        if downtime_ms is None:  # QEMU's figure is missing: from the last sight of it running here to the end
            return MigrationResult(ended - started, round((ended - running_at) * 1000), data_mb, "measured")
        return MigrationResult(ended - started, downtime_ms, data_mb)
    finally:
        for c in (conn, watcher):
            with contextlib.suppress(libvirt.libvirtError):
                c.close()


def _open(uri: str) -> libvirt.virConnect:
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as err:
        raise MigrationError(f"cannot connect to libvirt at {uri}: {err}") from err


def _abort(dom: libvirt.virDomain, plan: MigrationPlan) -> None:
    try:
        dom.abortJob()
    except libvirt.libvirtError as err:  # no job (already over), or it cannot be aborted now
        log.warning("node %s: abort of the migration: %s", plan.node, err)


def _running(dom: libvirt.virDomain) -> bool:
    """The domain runs here (a migration's switch pauses it first)."""
    try:
        return dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    except libvirt.libvirtError:
        return False


def _report(dom: libvirt.virDomain, progress: Callable[[dict], None]) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        progress(dom.jobStats(0))


def _completed_stats(dest_uri: str, plan: MigrationPlan) -> tuple[int | None, float | None]:
    """Downtime and data moved of the finished job, as the destination keeps them."""
    try:
        conn = libvirt.open(dest_uri)
    except libvirt.libvirtError:
        return None, None
    try:
        return _stats_of(conn.lookupByUUIDString(plan.uuid))
    except libvirt.libvirtError:
        return None, None
    finally:
        conn.close()


def _stats_of(dom: libvirt.virDomain) -> tuple[int | None, float | None]:
    stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED)
    total = stats.get("memory_processed", 0) + stats.get("disk_processed", 0)
    return stats.get("downtime"), (total / 2**20 if total else None)


def arrived_downtime_ms(conn: libvirt.virConnect, lab_id: str, node: str) -> int | None:
    """The downtime of the migration that brought the node's domain here, as QEMU measured
    it (None: no such statistics, e.g. it was started here)."""
    dom = lookup_domain(conn, names.domain_name(lab_id, node))
    if dom is None:
        return None
    try:
        return _stats_of(dom)[0]
    except libvirt.libvirtError:
        return None


def abort(conn: libvirt.virConnect, lab_id: str, node: str) -> bool:
    """Abort the node's running migration job from any process (a cancelled flow's hook):
    True when a job was there to abort."""
    dom = lookup_domain(conn, names.domain_name(lab_id, node))
    if dom is None:
        return False
    try:
        if dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE:
            return False
        dom.abortJob()
    except libvirt.libvirtError as err:
        log.warning("node %s of lab %s: abort: %s", node, lab_id, err)
        return False
    return True


def arrival(conn: libvirt.virConnect, lab_id: str, node: str, uuid: str) -> str:
    """Destination, during a move: ``running`` (the switch is done: it runs here), ``incoming``
    (the paused domain the migration fills), or ``absent``."""
    dom = lookup_domain(conn, names.domain_name(lab_id, node))
    if dom is None or dom.UUIDString() != uuid:
        return "absent"
    try:
        state = dom.state()[0]
    except libvirt.libvirtError as err:
        if error_code(err) == VIR_ERR_NO_DOMAIN:
            return "absent"
        raise
    return "running" if state == libvirt.VIR_DOMAIN_RUNNING else "incoming"


def running_here(conn: libvirt.virConnect, lab_id: str, node: str) -> str | None:
    """The node's domain UUID when it runs on this host (by marker), else None."""
    dom = lookup_domain(conn, names.domain_name(lab_id, node))
    if dom is None or not dom.isActive():
        return None
    marker = _marker_of(dom)
    if marker is None or (marker.lab_id, marker.node_name) != (lab_id, node):
        return None
    return dom.UUIDString()
