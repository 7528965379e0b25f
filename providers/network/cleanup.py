"""Removing a lab's network: OVS ports and host veths by marker, and its VLAN record.

Only what carries the lab's marker, or a port name the lab recorded for itself (and no
other lab's marker), is ever removed: another lab's ports are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from lab import names
from lab.errors import NetworkError
from providers.base import CleanupReport
from providers.network import ovs, relays, vlans
from providers.network.markers import parse_alias
from providers.network.netlink import IPRoute, dump_links, netlink_step
from providers.network.veth import OUR_HOST_DEVICE_KINDS, delete_host_veths

log = logging.getLogger(__name__)


def remove_ports(port_names: list[str], *, lab_id: str | None = None) -> None:
    """See ``providers.network.remove_ports``."""
    wanted = list(dict.fromkeys(port_names))
    if not wanted:
        return
    what = f"lab {lab_id}" if lab_id else "ports"
    if lab_id is not None:
        state = ovs.read_state()
        foreign = [n for n in wanted if (p := state.everywhere.get(n)) is not None and p.lab_id not in (None, lab_id)]
        if foreign:
            log.warning("%s: not removing ports of other labs: %s", what, ", ".join(foreign))
        wanted = [n for n in wanted if n not in foreign]
        present = [n for n in wanted if n in state.everywhere]
    else:
        present = wanted
    ovs.transaction(ovs.del_port_commands(present), what=f"{what}: removing ports {', '.join(present)}", wait=False)
    veths = {n: what for n in wanted}
    with netlink_step(what, "removing host veths"):
        if lab_id is not None:  # never a veth marked for another lab
            with IPRoute() as host:
                for link in dump_links(host).values():
                    owner = parse_alias(link.alias)
                    if link.name in veths and owner is not None and owner[0] != lab_id:
                        del veths[link.name]
        _, errors = delete_host_veths(veths)
    if errors:
        raise NetworkError("; ".join(errors))


def network_inventory() -> dict[str, dict[str, list[str]]]:
    """lab id -> {"ovs-ports": [...], "veths": [...], "vlan-records": [...]}: everything on
    this host that carries one of our markers (any bridge), and every VLAN record."""
    found: dict[str, dict[str, list[str]]] = {}

    def add(lab: str, kind: str, name: str) -> None:
        found.setdefault(lab, {}).setdefault(kind, []).append(name)

    for port in ovs.read_state().everywhere.values():
        if port.lab_id:
            add(port.lab_id, "ovs-ports", port.name)
    with netlink_step("network inventory", "listing host veths"), IPRoute() as host:
        for link in dump_links(host).values():
            owner = parse_alias(link.alias)
            if owner is not None:
                add(owner[0], "veths", link.name)
    for lab in vlans.reservation_labs():
        add(lab, "vlan-records", str(names.vlan_record_path(lab)))
    return found


def network_labs() -> set[str]:
    """See ``providers.network.network_labs``."""
    return set(network_inventory())


def release_lab(lab_id: str) -> CleanupReport:
    """See ``providers.network.release_lab``.

    Ports and veths go first (outside the VLAN lock: other labs keep allocating); the record
    goes last, under the lock, and only when the ports could be removed (otherwise it stays,
    so the lab is still listed by ``network_labs`` and its recorded names stay known)."""
    report = CleanupReport()
    vlans.check_lab_id(lab_id)
    for link in relays.stop_lab_relays(lab_id):  # impairment relays carry links between ports
        report.add("relays", link)
    own = vlans.load_reservation(lab_id)
    recorded = set(own.port_owners()) if own else set()
    ports_ok = True
    try:
        state = ovs.read_state()
        ports = sorted(
            name for name, port in state.everywhere.items()
            if port.lab_id == lab_id or (port.lab_id is None and name in recorded)
        )
        if ports:
            ovs.transaction(ovs.del_port_commands(ports), what=f"lab {lab_id}: removing ports {', '.join(ports)}")
            for name in ports:
                report.add("ovs-ports", name)
    except NetworkError as err:
        ports_ok = False
        report.errors.append(f"lab {lab_id}: OVS ports: {err}")
    try:
        with IPRoute() as host:
            candidates = {
                link.name: f"lab {lab_id}"
                for link in dump_links(host).values()
                if link.kind in OUR_HOST_DEVICE_KINDS and (
                    (owner := parse_alias(link.alias)) is not None and owner[0] == lab_id
                    or (owner is None and link.name in recorded)
                )
            }
        deleted, errors = delete_host_veths(candidates)
        for name in deleted:
            report.add("veths", name)
        report.errors.extend(errors)
    except Exception as err:  # noqa: BLE001 - reported, the rest still goes
        report.errors.append(f"lab {lab_id}: host veths: {err}")
    if not ports_ok:
        if own is not None:
            report.errors.append(f"lab {lab_id}: VLAN record kept until its OVS ports are removed")
        return report
    try:
        with vlans.vlan_lock():
            if vlans.delete_reservation(lab_id):
                report.add("vlan-records", str(names.vlan_record_path(lab_id)))
    except (OSError, NetworkError) as err:
        report.errors.append(f"lab {lab_id}: cannot remove VLAN record: {err}")
    return report


def release_links_not_in(lab_id: str, wanted_links: Iterable[str]) -> list[str]:
    """See ``providers.network.release_links_not_in``."""
    vlans.check_lab_id(lab_id)
    wanted = set(wanted_links)
    own = vlans.load_reservation(lab_id)
    recorded = {port: link for port, (link, _node) in (own.port_owners() if own else {}).items()}
    state = ovs.read_state()
    stale = {
        name for name, port in state.everywhere.items()
        if port.lab_id == lab_id and port.link_id is not None and port.link_id not in wanted
    }
    stale |= {port for port, link in recorded.items() if link not in wanted}
    if stale:
        remove_ports(sorted(stale), lab_id=lab_id)
    if own is not None and set(own.links) - wanted:
        with vlans.vlan_lock():  # the record is shared with allocation: reread under the lock
            own = vlans.load_reservation(lab_id)
            if own is not None:
                own.links = {link: entry for link, entry in own.links.items() if link in wanted}
                vlans.save_reservation(own)
    return sorted(stale)
