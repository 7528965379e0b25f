"""A link's host-side ports, one at a time: admin state (the carrier its peer sees), whether
they forward on the bridge, and whether they exist."""

from __future__ import annotations

from lab.errors import NetworkError
from providers.network import ovs
from providers.network.markers import check_ifname, parse_alias, port_ids
from providers.network.netlink import IPRoute, get_link, netlink_step


def port_exists(port_name: str) -> bool:
    with netlink_step(f"port {port_name}", "looking it up"), IPRoute() as host:
        return get_link(host, port_name) is not None


def port_is_up(port_name: str) -> bool | None:
    """Admin state of the host device; None when it does not exist."""
    with netlink_step(f"port {port_name}", "looking it up"), IPRoute() as host:
        link = get_link(host, port_name)
    return None if link is None else link.up


def set_port_up(port_name: str, up: bool) -> None:
    """Set the host device up or down. A container's host veth down takes the carrier from
    its peer inside the container (``NO-CARRIER``), and OVS never sets it up again."""
    check_ifname(port_name, "host port")
    with netlink_step(f"port {port_name}", "setting its state"), IPRoute() as host:
        link = get_link(host, port_name)
        if link is None:
            raise NetworkError(f"host port {port_name} does not exist (is its node running?)")
        if link.up != up:
            host.link("set", index=link.index, state="up" if up else "down")


def take_off_bridge(port_names: list[str]) -> None:
    """Remove the ports' OVS rows, keeping the devices (a relay carries the link instead)."""
    ovs.transaction(ovs.del_port_commands(port_names), what=f"ports {', '.join(port_names)}: leaving the bridge")


def put_on_bridge(lab_id: str, ends: list[tuple[str, str]], link_id: str, vlan: int) -> None:
    """Put back ``(node, port)`` ends of a link on the bridge with its tag and our ids (one
    transaction; a port already there is only re-tagged)."""
    commands: list[ovs.Command] = []
    for node, port in ends:
        commands += ovs.port_commands(port, vlan, port_ids(lab_id, node, link_id))
    if commands:
        ovs.transaction(ovs.bridge_commands() + commands,
                        what=f"lab {lab_id} link {link_id}: ports {', '.join(p for _, p in ends)} back on the bridge")


def on_bridge(port_names: list[str]) -> set[str]:
    ports = ovs.bridge_ports()
    return {name for name in port_names if name in ports}


def check_lab_ports(lab_id: str, port_names: list[str]) -> None:
    """Refuse (``NetworkError``, nothing changed) a name that is not an interface of this
    lab: one that exists and carries neither our marker for the lab (ifalias) nor an OVS row
    of it (a VM's tap). A name that does not exist passes (what follows finds it missing)."""
    rows = None
    with netlink_step(f"lab {lab_id} ports", "looking them up"), IPRoute() as host:
        for name in port_names:
            check_ifname(name, "port")
            link = get_link(host, name)
            if link is None or ((owner := parse_alias(link.alias)) is not None and owner[0] == lab_id):
                continue
            rows = ovs.bridge_ports() if rows is None else rows
            if name not in rows or rows[name].lab_id != lab_id:
                raise NetworkError(f"interface {name} is not a port of lab {lab_id}: left alone")
