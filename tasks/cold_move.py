"""A container's cold move, the host steps (``migrate-node`` runs them as ``migrate-step``
child runs, as it does a VM's live move):

- ``extract`` (source): the node's running config and its interfaces' MAC addresses;
- ``stage`` (destination): the node made again from that config, BEFORE the switch, while it
  still runs on the source: its management address, its link ends on their VLANs here with
  the addresses its peers know, the tunnels of the links that will cross hosts; its ports
  stay down (the container sees NO-CARRIER, nothing crosses them) until the switch. The step
  returns once the node is configured (its readiness check), so that the switch waits for
  nothing the node does;
- ``cutover`` (every host with a part in the switch): the old node goes (source), each link's
  tunnel follows the node (replaced in place), the new node's ports come up (destination),
  and each container peer's end loses carrier for a moment, as when a cable is moved: the
  peer drops its sessions with the old node at once instead of waiting for their timers;
- ``unstage`` (destination): a move that failed before the switch leaves nothing there.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from lab import names
from lab.errors import ArchetypeError, TopologyError
from lab.locks import lab_lock
from lab.settings import get_settings
from providers import get_provider, network
from providers.base import LinkEnd
from providers.network import vlans as vlan_records
from providers.network.ports import port_is_up
from tasks.migration import release_links_not_in, tunnels_here
from topology import Node, NodeRef, load_topology
from topology.addressing import assign
from vendors.model import Provider

# A step's arguments are flow parameters (the API is the trust boundary): each is checked
# before anything is made, named or removed from it.
MAC_RE = re.compile(r"^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$")  # unicast


def _node_name(value: Any) -> str:
    if not isinstance(value, str) or not names.is_valid_node_name(value):
        raise TopologyError([f"node: invalid node name {value!r}"])
    return value


def _macs(value: Any) -> dict[str, str]:
    macs = dict(value or {})
    bad = [f"{name}={mac}" for name, mac in macs.items()
           if not isinstance(mac, str) or not MAC_RE.match(mac.lower()) or not isinstance(name, str)]
    if bad:
        raise TopologyError([f"macs: not unicast MAC addresses: {', '.join(bad)}"])
    return {name: mac.lower() for name, mac in macs.items()}


def _tunnels(value: Any) -> list[dict[str, Any]]:
    """Each tunnel's end as ``providers.network.vxlan.Tunnel`` takes it, checked."""
    tunnels = []
    for entry in value or []:
        try:
            vni, remote, peer = int(entry["vni"]), str(ipaddress.IPv4Address(entry["remote"])), entry.get("peer", "")
            checked = {"link_id": str(entry["link_id"]), "node": _node_name(entry["node"]), "vni": vni, "remote": remote}
        except (KeyError, TypeError, ValueError) as err:
            raise TopologyError([f"tunnels: {entry!r}: {err}"]) from None
        if not 1 <= vni < 1 << 24 or (peer and not names.is_valid_host_name(peer)):
            raise TopologyError([f"tunnels: {entry!r}: VNI out of range or invalid peer host"])
        if "vlan" in entry:
            checked["vlan"] = int(entry["vlan"])
        tunnels.append({**checked, **({"peer": peer} if peer else {})})
    return tunnels


def _extract(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """The container's running config (its startup config on the destination) and the MAC
    address of each of its interfaces (its new ends take them: the peers' ARP and neighbour
    caches stay right, and so do its IPv6 link-local addresses)."""
    node = NodeRef.of(_node_name(args["node"]), args["kind"])
    provider = get_provider(node.vendor.provider)
    return {"config": provider.extract_config(lab_id, node), "macs": provider.interface_macs(lab_id, node.name)}


def _moved_node(lab_id: str, topology: str, name: str, addresses: dict[str, str], links: list[str]) -> Node:
    """The node as the placed topology gives it (its extracted config as startup config),
    with the management address it had: the lab's management network made here first, as a
    deploy on this host would make it. ``links`` must be the node's, in that topology."""
    lab = load_topology(topology, base_dir=names.slice_files_dir(lab_id))
    if lab.id != lab_id or name not in lab.nodes:
        raise ArchetypeError(f"the topology is not lab {lab_id!r} with a node {name!r}")
    unknown = set(links) - {link.id for link, _ in lab.links_of(name)}
    if unknown:
        raise TopologyError([f"links: not links of node {name}: {', '.join(sorted(unknown))}"])
    plan = get_provider(Provider.DOCKER).ensure_mgmt_network(lab.id, lab.mgmt, len(lab.nodes))  # type: ignore[attr-defined]
    return assign(lab, plan, None, addresses).nodes[name]


def _stage(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """See the module. ``args``: topology (the lab placed as after the move), node,
    addresses (node -> management IPv4, as the lab's state has them), macs, links: per link
    of the node, link_id, interface and vlan (its tag here, None: a new one); tunnels: this
    host's ends of the node's new tunnels (link_id, node, vni, remote, peer for a segment's);
    new_here: the lab has nothing on this host yet. On any failure nothing of it stays here."""
    links: list[dict[str, Any]] = args["links"]
    macs, tunnels = _macs(args.get("macs")), _tunnels(args["tunnels"])
    node = _moved_node(lab_id, args["topology"], _node_name(args["node"]), args["addresses"],
                       [e["link_id"] for e in links])
    provider = get_provider(node.vendor.provider)
    before = vlan_records.load_reservation(lab_id)
    had = sorted(before.tags()) if before else []
    devices: list[str] = []
    try:
        with lab_lock(lab_id):
            tags = network.allocate_vlans(lab_id, sorted({*had, *(e["link_id"] for e in links)}),
                                          {e["link_id"]: e["vlan"] for e in links if e["vlan"] is not None})
            devices = tunnels_here(lab_id, [{**tunnel, "vlan": tags[tunnel["link_id"]]} for tunnel in tunnels])
            ends = _ends(lab_id, node, links, tags)
            provider.create_node(lab_id, node, ends)
            provider.wire_node(lab_id, node, ends, carrier=False, macs=macs)  # type: ignore[call-arg]
        seconds = provider.wait_ready(lab_id, node)
    except BaseException:
        _unstage(lab_id, {"node": node.name, "devices": devices, "had_links": had, "leave": args.get("new_here")})
        raise
    return {"vlans": {e.link_id: e.vlan for e in ends}, "ports": [e.port_name for e in ends], "devices": devices,
            "had_links": had, "new_here": bool(args.get("new_here")), "ready_seconds": round(seconds, 2)}


def _ends(lab_id: str, node: Node, links: list[dict[str, Any]], tags: dict[str, int]) -> list[LinkEnd]:
    return [LinkEnd(link_id=e["link_id"], interface=e["interface"], port=node.vendor.interfaces.port_of(e["interface"]),
                    vlan=tags[e["link_id"]], port_name=names.host_port_name(lab_id, node.name, e["interface"]))
            for e in links]


def _unstage(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """The staged node, its new tunnels and the VLAN records of links the host did not have;
    all of the lab here when it had nothing here before (``leave``)."""
    errors = []
    node = _node_name(args["node"])
    network.check_lab_ports(lab_id, list(args.get("devices", [])))
    with lab_lock(lab_id):
        if args.get("leave"):
            from tasks.labs import leave_lab_here

            return {"errors": leave_lab_here(lab_id, get_settings().host_name).errors}
        for undo in (
            lambda: get_provider(Provider.DOCKER).remove_node(lab_id, node),
            lambda: network.remove_ports(args.get("devices", []), lab_id=lab_id),
            lambda: release_links_not_in(lab_id, args.get("had_links", [])),
        ):
            try:
                undo()
            except Exception as err:  # noqa: BLE001 - every undo is tried; failures are reported
                errors.append(str(err))
    return {"errors": errors}


def _cutover(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """This host's part of the switch. ``args`` (each optional): remove_node (source: the old
    node), leave (source: the lab has nothing more here: all of it goes), keep_links (source:
    the lab's links still with an end here), tunnels (this host's ends of links that now
    reach the destination: replaced in place), old_devices (tunnels no longer needed),
    ports_up (destination: the new node's ports), peers (the host ports of the links' other
    container ends here: their carrier flickers, unless it is down already). The old node's removal is the step's only failure: after it, what fails is
    reported in ``errors`` (the node has moved)."""
    errors: list[str] = []
    leaving = _node_name(args["remove_node"]) if args.get("remove_node") else None
    tunnels = _tunnels(args.get("tunnels"))
    network.check_lab_ports(lab_id, [*args.get("old_devices", []), *args.get("ports_up", []), *args.get("peers", [])])
    with lab_lock(lab_id):
        if leaving:
            removed = get_provider(Provider.DOCKER).remove_node(lab_id, leaving)
            errors += removed.errors
        peers = [port for port in args.get("peers", []) if port_is_up(port)]  # one held down stays down
        for port in peers:
            _try(errors, f"peer port {port}: carrier off", network.set_port_up, port, False)
        if args.get("leave"):
            from tasks.labs import leave_lab_here

            errors += leave_lab_here(lab_id, get_settings().host_name).errors
        elif leaving:
            _try(errors, "releasing the links that left this host", release_links_not_in, lab_id,
                 [str(link) for link in args["keep_links"]])
        _try(errors, "tunnels", tunnels_here, lab_id, tunnels)
        _try(errors, "removing the old tunnels", network.remove_ports, args.get("old_devices", []), lab_id=lab_id)
        for port in args.get("ports_up", []):
            _try(errors, f"port {port} up", network.set_port_up, port, True)
        for port in peers:
            _try(errors, f"peer port {port}: carrier back", network.set_port_up, port, True)
    return {"errors": errors}


def _try(errors: list[str], what: str, func: Any, *args: Any, **kwargs: Any) -> None:
    try:
        func(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the node has moved; what is left over is reported
        errors.append(f"{what}: {err}")


STEP_FUNCTIONS = {"extract": _extract, "stage": _stage, "unstage": _unstage, "cutover": _cutover}
