"""containerlab's ``host:IF`` link ends: a veth named IF in the host's namespace.

Per end, a veth pair in the host's namespace: IF (the name the topology gives, what the
person uses: ``ip addr add ... dev IF``) and ``end.port_name`` (an OVS access port with the
link's VLAN). containerlab wires the node's interface straight to IF; going through the
bridge instead gives one model for containers and VMs, and for a host end on a segment.
Both devices carry our ifalias marker (node ``host``), so destroy and orphan cleanup remove
them as they remove any veth of the lab; a device named IF that is not ours is never touched.
"""

from __future__ import annotations

import errno
import logging

from lab import names
from lab.errors import NetworkError
from lab.settings import get_settings
from providers.base import LinkEnd
from providers.network import ovs, vlans
from providers.network.markers import check_ifname, parse_alias, port_ids, veth_alias
from providers.network.netlink import IPRoute, Link, NetlinkError, dump_links, netlink_step, tx_checksum_off
from providers.network.veth import check_foreign_ports

log = logging.getLogger(__name__)


def attach_host_ends(lab_id: str, ends: list[LinkEnd], *, mtu: int | None = None) -> None:
    """See ``providers.network.attach_host_ends``."""
    what = f"lab {lab_id} host interfaces"
    if not ends:
        return
    for end in ends:
        check_ifname(end.interface, f"{what}: host interface of link {end.link_id}")
        check_ifname(end.port_name, f"{what}: host port name of link {end.link_id}")
    mtu = mtu or get_settings().link_mtu
    vlans.note_ports(lab_id, names.HOST_NODE, {end.link_id: [end.port_name] for end in ends})
    commands: list[ovs.Command] = []
    with netlink_step(what, "netlink"), IPRoute() as host:
        links = dump_links(host)
        check_foreign_ports(what, lab_id, ends, ovs.read_state())
        for end in ends:
            alias = veth_alias(lab_id, names.HOST_NODE, end.link_id)
            if not _is_ours_and_paired(what, lab_id, end, links):
                _make(host, end, alias, mtu)
            else:
                host.link("set", ifname=end.port_name, ifalias=alias, mtu=mtu, state="up")
                host.link("set", ifname=end.interface, ifalias=alias, mtu=mtu, state="up")
            tx_checksum_off(end.port_name)
            tx_checksum_off(end.interface)
            commands += ovs.port_commands(end.port_name, end.vlan, port_ids(lab_id, names.HOST_NODE, end.link_id))
    ovs.transaction(ovs.bridge_commands() + commands,
                    what=f"{what}: adding ports {', '.join(e.port_name for e in ends)}")
    log.info("lab %s: host interfaces %s on the bridge", lab_id, ", ".join(e.interface for e in ends))


def _is_ours_and_paired(what: str, lab_id: str, end: LinkEnd, links: dict[str, Link]) -> bool:
    """True when IF and its port are already our pair; raises when IF (or the port name) is
    a device that is not ours; False when they are to be made (stale halves deleted)."""
    mine, theirs = links.get(end.port_name), links.get(end.interface)
    for device in (mine, theirs):
        if device is None:
            continue
        owner = parse_alias(device.alias)
        if owner is None or owner[0] != lab_id or device.kind != "veth":
            raise NetworkError(f"{what}: host interface {device.name} exists and is not this lab's "
                               f"({device.kind or 'device'}{', lab ' + owner[0] if owner else ''}): not touching it")
    if mine is not None and theirs is not None and mine.peer_index == theirs.index:
        return True
    with IPRoute() as host:
        for device in (mine, theirs):
            if device is not None:
                try:
                    host.link("del", index=device.index)
                except NetlinkError as err:
                    if err.code != errno.ENODEV:  # went with its peer: fine
                        raise
    return False


def _make(host: IPRoute, end: LinkEnd, alias: str, mtu: int) -> None:
    host.link("add", ifname=end.port_name, kind="veth", mtu=mtu, peer={"ifname": end.interface, "mtu": mtu})
    try:
        for name in (end.port_name, end.interface):
            host.link("set", ifname=name, ifalias=alias, state="up")
    except Exception:
        host.link("del", ifname=end.port_name)
        raise
