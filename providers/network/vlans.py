"""VLAN allocation: host-local reservation records under one host-wide file lock.

Each lab has a record ``lab.names.vlan_record_path(lab)`` (JSON, written atomically,
only under ``lab.names.vlan_lock_path()``)::

    {"lab_id": "frr-ring",
     "links": {"r1:eth1--r2:eth1": {"vlan": 101, "ports": {"arv0123456789ab": "r1", ...}}},
     "hints": {"r3:eth1--r4:eth1": 107},
     "updated_at": "2026-11-25T21:22:09+00:00"}

``links[id].vlan`` is the reservation (``null``: ports known, no tag reserved);
``ports`` maps every host-side port name ever made for the link to its node, so
cleanup finds ports even before they carry markers; ``hints`` are the tags of links
that recovery dropped, preferred again when they are free.

A tag is *taken* for a lab when another lab's record reserves it, or a port of our bridge
that is not the lab's own holds it. A tag held by one of the lab's own ports is usable only
by that port's link.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from lab import names
from lab.errors import NetworkError
from lab.private import FILE_MODE, private_dir
from lab.settings import get_settings
from lab.state import LinkRecord
from providers.network import ovs

LOCK_TIMEOUT = 60.0  # seconds a caller waits for the host-wide VLAN lock


# Records ------------------------------------------------------------------------------


@dataclass
class LinkEntry:
    vlan: int | None = None
    ports: dict[str, str | None] = field(default_factory=dict)  # port name -> node


@dataclass
class Reservation:
    lab_id: str
    links: dict[str, LinkEntry] = field(default_factory=dict)
    hints: dict[str, int] = field(default_factory=dict)
    updated_at: str = ""

    def tags(self) -> dict[str, int]:
        """link id -> reserved tag."""
        return {link: entry.vlan for link, entry in self.links.items() if entry.vlan is not None}

    def port_owners(self) -> dict[str, tuple[str, str | None]]:
        """port name -> (link id, node) for every port the lab ever recorded."""
        return {port: (link, node) for link, entry in self.links.items() for port, node in entry.ports.items()}

    def note(self, link_id: str, port: str, node: str | None) -> bool:
        """Remember a port of a link; True when the record changed."""
        entry = self.links.setdefault(link_id, LinkEntry())
        if port in entry.ports and (node is None or entry.ports[port] == node):
            return False
        entry.ports[port] = node if node is not None else entry.ports.get(port)
        return True

    def to_json(self) -> str:
        return json.dumps(
            {
                "lab_id": self.lab_id,
                "links": {link: {"vlan": e.vlan, "ports": e.ports} for link, e in sorted(self.links.items())},
                "hints": dict(sorted(self.hints.items())),
                "updated_at": self.updated_at,
            },
            indent=1,
        )


class RecordError(ValueError):
    """A VLAN record that is not what we write."""


def _tag(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4094:
        raise RecordError(f"{where}: {value!r} is not a VLAN tag")
    return value


def parse_reservation(text: str, lab_id: str) -> Reservation:
    """Parse a record; ``ValueError`` naming the problem when it is not one of ours for ``lab_id``."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("lab_id") != lab_id:
        raise RecordError(f"not the VLAN record of lab {lab_id}")
    links: dict[str, LinkEntry] = {}
    raw_links = data.get("links", {})
    if not isinstance(raw_links, dict):
        raise RecordError("'links' is not a mapping")
    for link, raw in raw_links.items():
        if isinstance(raw, int):  # tolerate the short form link -> tag
            raw = {"vlan": raw}
        if not isinstance(raw, dict):
            raise RecordError(f"link {link}: not a mapping")
        vlan = raw.get("vlan")
        ports = raw.get("ports", {})
        if isinstance(ports, list):
            ports = dict.fromkeys(ports)
        if not isinstance(ports, dict):
            raise RecordError(f"link {link}: 'ports' is not a mapping")
        links[str(link)] = LinkEntry(
            vlan=None if vlan is None else _tag(vlan, f"link {link}"),
            ports={str(p): (None if n is None else str(n)) for p, n in ports.items()},
        )
    hints = {str(k): _tag(v, f"hint {k}") for k, v in dict(data.get("hints", {})).items()}
    return Reservation(lab_id=lab_id, links=links, hints=hints, updated_at=str(data.get("updated_at", "")))


def check_lab_id(lab_id: str) -> None:
    if not names.is_valid_lab_id(lab_id):
        raise NetworkError(f"lab id {lab_id!r} is not valid (expected {names.LAB_ID_PATTERN})")


def load_reservation(lab_id: str, *, strict: bool = False) -> Reservation | None:
    """The lab's record, or None when it has none. An unreadable record is None
    (``strict``: a ``NetworkError`` naming the file)."""
    path = names.vlan_record_path(lab_id)
    try:
        return parse_reservation(path.read_text(), lab_id)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        if strict:
            raise NetworkError(f"VLAN record {path} of lab {lab_id} is unreadable ({err}): "
                               f"fix or remove it; tags it reserves cannot be known") from err
        return None


def save_reservation(reservation: Reservation) -> None:
    """Write atomically (temp file + rename). Call with the VLAN lock held."""
    path = names.vlan_record_path(reservation.lab_id)
    private_dir(path.parent)
    reservation.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
    fd, tmp = tempfile.mkstemp(prefix=f".{reservation.lab_id}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(reservation.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def delete_reservation(lab_id: str) -> bool:
    """Remove the lab's record; True when there was one. Call with the VLAN lock held."""
    try:
        names.vlan_record_path(lab_id).unlink()
    except FileNotFoundError:
        return False
    return True


def reservation_labs() -> set[str]:
    """Lab ids that have a record on this host."""
    folder = names.vlan_records_dir()
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.json") if names.is_valid_lab_id(p.stem)}


def other_reservations(lab_id: str) -> dict[str, Reservation]:
    """Every other lab's record. An unreadable one is an error: its tags cannot be avoided."""
    found = {}
    for other in sorted(reservation_labs() - {lab_id}):
        record = load_reservation(other, strict=True)
        if record is not None:
            found[other] = record
    return found


@contextmanager
def vlan_lock(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """The host-wide VLAN lock (flock: released by the kernel if the holder dies)."""
    path = names.vlan_lock_path()
    private_dir(path.parent)
    lock = FileLock(str(path), mode=FILE_MODE, thread_local=False)
    try:
        lock.acquire(timeout=timeout, poll_interval=0.005)  # held for milliseconds: poll often
    except Timeout:
        raise NetworkError(f"the VLAN lock {path} is held by another process (waited {timeout:.0f} s)") from None
    try:
        yield
    finally:
        lock.release()


# Tag selection (pure) -------------------------------------------------------------------


class RangeExhaustedError(ValueError):
    pass


def tags_in_use(
    lab_id: str,
    bridge_ports: Mapping[str, ovs.PortInfo],
    own_ports: Mapping[str, tuple[str, str | None]],
    others: Mapping[str, Reservation],
) -> tuple[dict[int, str], dict[int, set[str]]]:
    """``(taken, held)``: tags the lab may not use (tag -> who has it), and tags held by the
    lab's own ports (tag -> their link ids; "" for a port of ours whose link is unknown)."""
    taken: dict[int, str] = {}
    held: dict[int, set[str]] = {}
    for other, record in others.items():
        for tag in record.tags().values():
            taken.setdefault(tag, f"reserved by lab {other}")
    for port in bridge_ports.values():
        if port.tag is None:
            continue
        if port.lab_id == lab_id:
            held.setdefault(port.tag, set()).add(port.link_id or own_ports.get(port.name, ("", None))[0])
        elif port.lab_id is None and port.name in own_ports:  # e.g. a VM tap libvirt made, not marked yet
            held.setdefault(port.tag, set()).add(own_ports[port.name][0])
        else:
            owner = f"lab {port.lab_id}" if port.lab_id else "no lab (unmarked)"
            taken.setdefault(port.tag, f"held by port {port.name} of {owner}")
    return taken, held


def select_tags(
    link_ids: Sequence[str],
    preferred: Mapping[str, Sequence[int | None]],
    *,
    taken: Iterable[int],
    held: Mapping[int, set[str]],
    vlan_min: int,
    vlan_max: int,
) -> dict[str, int]:
    """Pick one tag per link: first each link's preferred tags (in order) that are in range,
    not taken, not held by the lab's port of another link, and not given to an earlier link;
    then the lowest free tags for the rest. ``RangeExhaustedError`` when the range is full."""
    taken = set(taken)

    def usable(tag: int | None, link: str) -> bool:
        return (
            tag is not None and vlan_min <= tag <= vlan_max and tag not in taken
            and held.get(tag, {link}) <= {link}
        )

    chosen: dict[str, int] = {}
    order = list(dict.fromkeys(link_ids))
    for link in order:
        for tag in preferred.get(link, ()):
            if usable(tag, link):
                chosen[link] = tag
                taken.add(tag)
                break
    fresh = (t for t in range(vlan_min, vlan_max + 1) if t not in taken and t not in held)
    for link in order:
        if link not in chosen:
            tag = next(fresh, None)
            if tag is None:
                missing = len(order) - len(chosen)
                raise RangeExhaustedError(f"{missing} of {len(order)} links get no tag: none left free in "
                                          f"{vlan_min}-{vlan_max}")
            chosen[link] = tag
            taken.add(tag)
    return chosen


# Allocation ------------------------------------------------------------------------------


def _own_link(lab_id: str, port: ovs.PortInfo, owners: Mapping[str, tuple[str, str | None]]) -> str | None:
    """The link of one of the lab's own ports (marked, or unmarked with a recorded name)."""
    if port.lab_id == lab_id:
        return port.link_id or owners.get(port.name, ("", None))[0] or None
    if port.lab_id is None and port.name in owners:
        return owners[port.name][0] or None
    return None


def allocate_vlans(lab_id: str, link_ids: list[str], recovered: dict[str, int] | None = None) -> dict[str, int]:
    """Tags for the lab's links, under the host-wide VLAN lock, saved in the lab's record
    before returning. A link gets, in order of preference, the first of these that is free:
    its ``recovered`` tag, its tag in the lab's own record (same lab redeployed: same tags,
    even when the flow has no artifact), the tag recovery last dropped it from, the tag a
    port of the lab still carries for it; otherwise the lowest free tag of the settings'
    range. Free = not reserved by another lab's record, not on a bridge port that is not
    this lab's, not on this lab's port of another link. A ``recovered`` tag that is no
    longer free (another lab took it since) is replaced, not shared."""
    check_lab_id(lab_id)
    settings = get_settings()
    recovered = recovered or {}
    with vlan_lock():
        state = ovs.read_state()
        others = other_reservations(lab_id)
        own = load_reservation(lab_id) or Reservation(lab_id)
        owners = own.port_owners()
        taken, held = tags_in_use(lab_id, state.bridge, owners, others)
        port_tags: dict[str, list[int]] = {}
        for port in state.bridge.values():
            link = _own_link(lab_id, port, owners)
            if link and port.tag is not None:
                port_tags.setdefault(link, []).append(port.tag)
        own_tags = own.tags()
        preferred = {
            link: [recovered.get(link), own_tags.get(link), own.hints.get(link), *sorted(port_tags.get(link, []))]
            for link in link_ids
        }
        try:
            tags = select_tags(link_ids, preferred, taken=taken, held=held,
                               vlan_min=settings.vlan_min, vlan_max=settings.vlan_max)
        except RangeExhaustedError as err:
            raise NetworkError(f"lab {lab_id}: cannot allocate VLANs: {err}") from None
        for link, entry in own.links.items():
            if link not in tags:
                entry.vlan = None  # no longer reserved; its ports stay known for cleanup
        for link, tag in tags.items():
            own.links.setdefault(link, LinkEntry()).vlan = tag
        own.hints = {link: tag for link, tag in own.hints.items() if link not in tags}
        save_reservation(own)
    return tags


def note_ports(lab_id: str, node: str | None, ports: Mapping[str, Iterable[str]]) -> set[str]:
    """Record host-side port names (link id -> names) in the lab's record before they are
    made, so cleanup and recovery know them even if the process dies half-way. Returns the
    names the record knew already (a name never recorded was never made by us)."""
    check_lab_id(lab_id)
    with vlan_lock():
        own = load_reservation(lab_id)
        exists = own is not None
        own = own or Reservation(lab_id)
        before = set(own.port_owners())
        changed = False
        for link, port_names in ports.items():
            for port in port_names:
                changed |= own.note(link, port, node)
        if changed or not exists:
            save_reservation(own)
    return before


def reserved_links(lab_id: str) -> list[LinkRecord]:
    """The lab's host-local reservation as ``LinkRecord``s, for ``recover_allocation`` when
    the flow has no state artifact (endpoints are unknown there: ``[]``; nodes come from the
    recorded ports)."""
    own = load_reservation(lab_id)
    if own is None:
        return []
    return [
        LinkRecord(id=link, endpoints=[], vlan=entry.vlan, ports=sorted(entry.ports))
        for link, entry in sorted(own.links.items())
        if entry.vlan is not None
    ]
