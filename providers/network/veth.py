"""Container link ends: a veth pair per end, inside end in the container's namespace.

Per end (all netlink from this process, no ``ip``/``ethtool``/``nsenter`` process):
ONE netlink request creates the pair with the host end ``end.port_name`` in the host
namespace and the peer directly in the namespace of the container's PID under its runtime
name, both with the MTU (creating the peer there avoids moving a device between
namespaces, which costs an RCU grace period: 10-70 ms per end here, against ~1 ms);
TX checksum offload off on both ends (one ioctl each, the inside one through a socket
made in the container's namespace); ifalias marker and up on the host end; up inside.
All ends' OVS ports go in ONE ``ovs-vsctl`` transaction.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from lab.errors import NetworkError
from lab.settings import get_settings
from providers.base import LinkEnd
from providers.network import ovs, vlans
from providers.network.markers import check_ifname, parse_alias, port_ids, veth_alias
from providers.network.netlink import (
    IPRoute,
    Link,
    NetlinkError,
    dump_links,
    get_link,
    iproute_in_netns,
    netlink_step,
    same_netns_as_us,
    socket_in_netns,
    tx_checksum_off,
)

log = logging.getLogger(__name__)


def check_ends(what: str, ends: Sequence[LinkEnd], inside_names: Sequence[str] | None = None) -> None:
    if inside_names is not None and len(inside_names) != len(ends):
        raise NetworkError(f"{what}: {len(ends)} link ends but {len(inside_names)} runtime interface names")
    seen: set[str] = set()
    for end in ends:
        check_ifname(end.port_name, f"{what}: host port name of link {end.link_id}")
        if not 1 <= int(end.vlan) <= 4094:
            raise NetworkError(f"{what}: link {end.link_id}: VLAN {end.vlan} is not in 1-4094")
        if end.port_name in seen:
            raise NetworkError(f"{what}: host port name {end.port_name} is used by two link ends")
        seen.add(end.port_name)
    for name in inside_names or ():
        check_ifname(name, f"{what}: runtime interface name")
    if inside_names is not None and len(set(inside_names)) != len(inside_names):
        raise NetworkError(f"{what}: a runtime interface name is used twice: {list(inside_names)}")


def _is_pair(host: Link | None, inside: Link | None) -> bool:
    return (
        host is not None and inside is not None and host.kind == "veth" and inside.kind == "veth"
        and host.peer_index == inside.index and inside.peer_index == host.index
    )


class _Container:
    """The container's namespace: a netlink handle in it, and (lazily) an AF_INET socket in
    it for ethtool ioctls."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ipr = iproute_in_netns(pid)
        self._sock: socket.socket | None = None

    def sock(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket_in_netns(self.pid, socket.AF_INET, socket.SOCK_DGRAM)
        return self._sock

    def __enter__(self) -> _Container:
        return self

    def __exit__(self, *_: object) -> None:
        if self._sock is not None:
            self._sock.close()
        self.ipr.close()


def attach_container_ends(
    lab_id: str, node: str, pid: int, ends: list[LinkEnd], runtime_names: list[str], *, mtu: int | None = None,
    carrier: bool = True, macs: dict[str, str] | None = None,
) -> None:
    """See ``providers.network.attach_container_ends``.

    Processes: one ``ovs-vsctl`` transaction when every port is new to the lab's record
    (a first wiring); one read more when some were made before (re-wire: the read only,
    when everything is right); one ``del-port`` transaction more for rows whose device
    must be recreated (a restarted container)."""
    what = f"lab {lab_id} node {node}"
    check_ends(what, ends, runtime_names)
    if not ends:
        return
    mtu = mtu or get_settings().link_mtu
    try:
        if same_netns_as_us(pid):
            raise NetworkError(f"{what}: pid {pid} shares the host's network namespace: refusing to wire it")
    except FileNotFoundError:
        raise NetworkError(f"{what}: process {pid} is gone (container not running?)") from None
    known = vlans.note_ports(lab_id, node, {end.link_id: [end.port_name] for end in ends})
    pairs = list(zip(ends, runtime_names, strict=True))
    created: list[str] = []
    try:
        commands: list[ovs.Command] = []
        with netlink_step(what, "netlink"), IPRoute() as host, _Container(pid) as box:
            inside_links = dump_links(box.ipr)  # a container has few interfaces: one dump
            host_links = {end.port_name: link for end in ends if (link := get_link(host, end.port_name))}
            right, stale = _classify(what, lab_id, pid, pairs, host_links, inside_links)
            state = None
            if right or any(end.port_name in known for end in ends):
                state = ovs.read_state()
                check_foreign_ports(what, lab_id, ends, state)
            for end, inner in right:  # already wired: repair drift in place
                with netlink_step(what, f"checking {end.port_name} / {inner}"):
                    _repair(host, box, host_links[end.port_name], inside_links[inner],
                            veth_alias(lab_id, node, end.link_id), mtu, carrier)
                commands += _port_fix(lab_id, node, end, state)
            to_make = [(end, inner) for end, inner in pairs if (end, inner) not in right]
            old_rows = [e.port_name for e, _ in to_make if state is not None and e.port_name in state.everywhere]
            if old_rows:  # ovs-vswitchd must let go of the old devices before they come back
                ovs.transaction(ovs.del_port_commands(old_rows), what=f"{what}: removing old rows {', '.join(old_rows)}")
            for end, inner in to_make:
                if end.port_name in stale:  # half-made, or its peer is in an old (dying) namespace
                    with netlink_step(what, f"deleting stale {end.port_name}"):
                        _delete_if_there(host, host_links[end.port_name].index)
                with netlink_step(what, f"creating veth {end.port_name} / {inner} in pid {pid}"):
                    _make(host, box, _Pair(end.port_name, inner, (macs or {}).get(inner)),
                          veth_alias(lab_id, node, end.link_id), mtu, carrier, created)
                commands += ovs.port_commands(end.port_name, end.vlan, port_ids(lab_id, node, end.link_id))
        if commands:
            ovs.grouped_transaction(ovs.bridge_commands() + commands,
                                    what=f"{what}: adding ports {', '.join(e.port_name for e in ends)}")
    except BaseException:
        _remove_veths(created)
        raise


@dataclass(frozen=True)
class _Pair:
    host: str  # the host end (an OVS port)
    inner: str  # the runtime interface in the container
    mac: str | None = None  # the inner end's address (a moved node keeps its own)


def _make(host: IPRoute, box: _Container, pair: _Pair, alias: str, mtu: int, carrier: bool, created: list[str]) -> None:
    """One netlink request makes the pair, the peer directly in the container under its
    runtime name; then TX checksum offload off on both ends, marker, up (the host end stays
    down without ``carrier``: the container sees NO-CARRIER and nothing crosses it)."""
    peer: dict[str, object] = {"ifname": pair.inner, "net_ns_pid": box.pid, "mtu": mtu}
    if pair.mac:
        peer["address"] = pair.mac
    host.link("add", ifname=pair.host, kind="veth", mtu=mtu, peer=peer)
    created.append(pair.host)
    tx_checksum_off(pair.host)
    tx_checksum_off(pair.inner, box.sock())
    host.link("set", ifname=pair.host, ifalias=alias, state="up" if carrier else "down")
    box.ipr.link("set", ifname=pair.inner, state="up")


def _delete_if_there(ipr: IPRoute, index: int) -> None:
    try:
        ipr.link("del", index=index)
    except NetlinkError as err:
        if err.code != errno.ENODEV:  # gone meanwhile (its namespace finished dying): fine
            raise


def _repair(host: IPRoute, box: _Container, mine: Link, theirs: Link, alias: str, mtu: int, carrier: bool) -> None:
    if mine.alias != alias or mine.up != carrier or mine.mtu != mtu:
        host.link("set", index=mine.index, ifalias=alias, mtu=mtu, state="up" if carrier else "down")
    if not theirs.up or theirs.mtu != mtu:
        box.ipr.link("set", index=theirs.index, mtu=mtu, state="up")
    tx_checksum_off(mine.name)
    tx_checksum_off(theirs.name, box.sock())


def _classify(
    what: str, lab_id: str, pid: int, pairs: Sequence[tuple[LinkEnd, str]],
    host_links: dict[str, Link], inside_links: dict[str, Link],
) -> tuple[list[tuple[LinkEnd, str]], set[str]]:
    """``(right, stale)``: ends whose veth pair is already in place, and host veths of ours
    to delete before recreating. Raises (before anything changes) on what is not ours."""
    right: list[tuple[LinkEnd, str]] = []
    stale: set[str] = set()
    for end, inner in pairs:
        mine, theirs = host_links.get(end.port_name), inside_links.get(inner)
        if mine is not None:
            owner = parse_alias(mine.alias)
            if owner is not None and owner[0] != lab_id:
                raise NetworkError(f"{what}: host interface {end.port_name} belongs to lab {owner[0]}")
            if mine.kind != "veth":
                raise NetworkError(f"{what}: host interface {end.port_name} exists and is a "
                                   f"{mine.kind or 'device'}, not a veth: not touching it")
        if _is_pair(mine, theirs):
            right.append((end, inner))
            continue
        if theirs is not None:
            raise NetworkError(f"{what}: interface {inner} already exists in the container (pid {pid}) "
                               f"and is not the peer of {end.port_name}")
        if mine is not None:
            stale.add(end.port_name)
    return right, stale


def check_foreign_ports(what: str, lab_id: str, ends: Sequence[LinkEnd], state: ovs.OvsState) -> None:
    for end in ends:
        port = state.everywhere.get(end.port_name)
        if port is not None and port.lab_id not in (None, lab_id):
            raise NetworkError(f"{what}: OVS port {end.port_name} carries lab {port.lab_id}'s marker")


def _port_fix(lab_id: str, node: str, end: LinkEnd, state: ovs.OvsState | None) -> list[ovs.Command]:
    """OVS commands for an end whose veth was already right: none when its port is right."""
    ids = port_ids(lab_id, node, end.link_id)
    port = state.bridge.get(end.port_name) if state is not None else None
    if port is not None and port.tag == end.vlan and all(port.external_ids.get(k) == v for k, v in ids.items()):
        return []
    return ovs.port_commands(end.port_name, end.vlan, ids)


def _remove_veths(port_names: Sequence[str]) -> None:
    """Best-effort rollback: delete host veths this call made (the peer goes with them)."""
    if not port_names:
        return
    try:
        with IPRoute() as host:
            for name in port_names:
                try:
                    host.link("del", ifname=name)
                except NetlinkError as err:
                    if err.code != errno.ENODEV:  # already gone: fine
                        log.warning("rollback: cannot delete veth %s: %s", name, err)
    except Exception as err:  # noqa: BLE001 - rollback must not hide the original error
        log.warning("rollback: cannot delete veths %s: %s", ", ".join(port_names), err)


OUR_HOST_DEVICE_KINDS = ("veth", "vxlan")  # host-side devices a lab owns (VM taps are libvirt's)


def delete_host_veths(candidates: dict[str, str]) -> tuple[list[str], list[str]]:
    """Delete host veths by name (name -> reason, for errors). Returns (deleted, errors);
    missing ones are fine; a device that is not a veth (or a cross-host link's VXLAN device)
    is never deleted."""
    deleted: list[str] = []
    errors: list[str] = []
    if not candidates:
        return deleted, errors
    with IPRoute() as host:
        links = dump_links(host)
        for name, owner in candidates.items():
            link = links.get(name)
            if link is None or link.kind not in OUR_HOST_DEVICE_KINDS:
                continue
            try:
                host.link("del", index=link.index)
                deleted.append(name)
            except NetlinkError as err:
                if err.code != errno.ENODEV:
                    errors.append(f"{owner}: cannot delete veth {name}: {err}")
    return deleted, errors


def inside_macs(pid: int, runtime_names: Sequence[str] | None = None) -> dict[str, str]:
    """The addresses of a container's interfaces (runtime name -> MAC; all of them without
    ``runtime_names``), read in its namespace."""
    with _Container(pid) as box:
        links = dump_links(box.ipr)
    wanted = links if runtime_names is None else runtime_names
    return {name: links[name].mac for name in wanted if name in links and links[name].mac}
