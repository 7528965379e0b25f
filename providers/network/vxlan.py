"""Cross-host links: per link and end host, a kernel VXLAN device on the OVS bridge.

The device (``lab.names.vxlan_device_name``) has the link's VNI, the peer host's data-plane
address as its only remote (no learning, no multicast), our data-plane address as local,
the settings' UDP port; it carries the veth ifalias marker and joins the bridge as an
access port of the link's host-local VLAN tag, with our external_ids. TX checksum offload
is off on it, as on every interface that reaches the userspace datapath.

A segment (a LAN) on several hosts has one device per other host it reaches (head-end
replication: OVS floods a broadcast to each of them), each with the VNI of that pair of
hosts (the kernel takes one device per VNI and UDP port). Those ports are ``protected``:
what comes from one tunnel never goes out of another (split horizon: no loop through a
third host, which sent its copy itself).

MTU: the tunnel costs 50 bytes; the link's ends keep ``link_mtu`` and the underlay is
CHECKED to fit ``link_mtu + 50`` (a host whose underlay is too small fails the link with
the sizes named), so that nothing is silently fragmented or dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lab import names
from lab.errors import NetworkError
from lab.settings import get_settings
from providers.network import ovs
from providers.network.markers import parse_alias, port_ids, veth_alias
from providers.network.netlink import dump_links, tx_checksum_off

VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


@dataclass(frozen=True)
class Tunnel:
    """One end of a cross-host link, on this host."""

    link_id: str
    node: str  # the local end's node
    vni: int
    remote: str  # the peer host's data-plane address
    vlan: int  # the link's host-local tag
    peer: str = ""  # a segment's tunnel: the other host's name (one device per peer host)

    def device(self, lab_id: str) -> str:
        return names.vxlan_device_name(lab_id, f"{self.link_id}@{self.peer}" if self.peer else self.link_id)


def underlay_mtu(address: str) -> int | None:
    """MTU of the interface holding ``address`` in this namespace (None: no such address)."""
    with IPRoute() as ipr:
        for addr in ipr.get_addr():
            if addr.get_attr("IFA_ADDRESS") == address:
                (link,) = ipr.get_links(addr["index"])
                return link.get_attr("IFLA_MTU")
    return None


def ensure_tunnels(lab_id: str, tunnels: list[Tunnel], *, local: str) -> list[str]:
    """Make every tunnel of the lab on this host as described (idempotent: a device with the
    right VNI, remote and port is kept; a wrong one is replaced). Returns the device names."""
    settings = get_settings()
    if not tunnels:
        return []
    mtu = underlay_mtu(local)
    if mtu is None:
        raise NetworkError(f"lab {lab_id}: this host has no data-plane address {local}")
    if mtu < settings.link_mtu + VXLAN_OVERHEAD:
        raise NetworkError(
            f"lab {lab_id}: the underlay MTU {mtu} of {local} is below {settings.link_mtu} + {VXLAN_OVERHEAD} "
            f"(VXLAN): raise it to {settings.link_mtu + VXLAN_OVERHEAD}, or lower ARCHETYPE_LINK_MTU"
        )
    state = ovs.read_state()
    stale_rows: list[str] = []
    commands: list[ovs.Command] = ovs.bridge_commands()
    with IPRoute() as ipr:
        links = dump_links(ipr)
        # every wrong device goes before any is made: a VNI is unique per host and UDP port, so
        # one that another of these devices held until now is free only once that one went
        for tunnel in tunnels:
            existing = links.get(tunnel.device(lab_id))
            if existing is not None and not _matches(ipr, existing.index, tunnel, local, settings.vxlan_port):
                ipr.link("del", index=existing.index)
                stale_rows.append(existing.name)
        for tunnel in tunnels:
            name = tunnel.device(lab_id)
            existing = None if name in stale_rows else links.get(name)
            if existing is None:
                _create(ipr, lab_id, name, tunnel, local, settings.vxlan_port, settings.link_mtu)
            port = state.everywhere.get(name)
            if existing is None or port is None or port.tag != tunnel.vlan or port.lab_id != lab_id:
                commands += ovs.port_commands(name, tunnel.vlan, port_ids(lab_id, tunnel.node, tunnel.link_id))
                if tunnel.peer:  # split horizon between a segment's tunnels
                    commands.append(["set", "Port", name, "protected=true"])
    if stale_rows:  # a recreated device is reopened only if its row went first (ovs.port_commands)
        ovs.transaction(ovs.del_port_commands(stale_rows), what=f"lab {lab_id}: replacing tunnels")
    if len(commands) > 2:
        ovs.transaction(commands, what=f"lab {lab_id}: tunnels {', '.join(t.device(lab_id) for t in tunnels)}")
    return [t.device(lab_id) for t in tunnels]


def _matches(ipr: IPRoute, index: int, tunnel: Tunnel, local: str, port: int) -> bool:
    (msg,) = ipr.get_links(index)
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        raise NetworkError(f"interface {msg.get_attr('IFLA_IFNAME')} exists and is not our VXLAN device")
    data = info.get_attr("IFLA_INFO_DATA")
    return (
        data.get_attr("IFLA_VXLAN_ID") == tunnel.vni
        and data.get_attr("IFLA_VXLAN_GROUP") == tunnel.remote
        and data.get_attr("IFLA_VXLAN_LOCAL") == local
        and data.get_attr("IFLA_VXLAN_PORT") == port
    )


def _create(ipr: IPRoute, lab_id: str, name: str, tunnel: Tunnel, local: str, port: int, mtu: int) -> None:
    try:
        ipr.link(
            "add", ifname=name, kind="vxlan", vxlan_id=tunnel.vni, vxlan_group=tunnel.remote,
            vxlan_local=local, vxlan_port=port, vxlan_learning=0, mtu=mtu,
        )
        (index,) = ipr.link_lookup(ifname=name)
        ipr.link("set", index=index, ifalias=veth_alias(lab_id, tunnel.node, tunnel.link_id))
        tx_checksum_off(name)
        ipr.link("set", index=index, state="up")
    except (NetlinkError, OSError) as err:
        raise NetworkError(f"lab {lab_id}: cannot create VXLAN device {name} (VNI {tunnel.vni} to {tunnel.remote}): {err}") from err


def remove_tunnels_not_in(lab_id: str, keep: Iterable[str]) -> list[str]:
    """The lab's VXLAN devices on this host but those named in ``keep``, with their OVS ports:
    a converge's tunnels to hosts where a link or segment of the lab no longer has an end
    (a node moved, a lost host's nodes re-placed). Found by their markers (the device's
    ifalias, the port's external_ids), never another lab's. Returns the names removed."""
    from providers.network.cleanup import remove_ports

    keep = set(keep)
    with IPRoute() as ipr:
        devices = {link.name for link in dump_links(ipr).values()
                   if link.kind == "vxlan" and (owner := parse_alias(link.alias)) is not None and owner[0] == lab_id}
    rows = {name for name, port in ovs.read_state().everywhere.items()  # a row whose device went already
            if port.lab_id == lab_id and name.startswith(names.VXLAN_PREFIX)}
    stale = sorted((devices | rows) - keep)
    if stale:
        remove_ports(stale, lab_id=lab_id)
    return stale
