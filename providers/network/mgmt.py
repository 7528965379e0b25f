"""A lab's management network made by us: a Linux bridge per lab holding the gateway
address(es), and one veth per container, made the way data links are made (netlink from
this process, the peer created directly in the container's namespace as ``eth0``, with
its address and default route). No docker network, so no libnetwork work per node and
nothing of dockerd's to leak (its endpoint count goes stale after large removals on 20.10,
moby/moby#42119); a VM's management NIC joins the same bridge (libvirt, by name).

Outbound access is what docker gave its networks: masquerading for the subnet and the
forwarding it needs, as iptables rules that carry the lab in their comment (found and
removed by it). The bridge says whose it is in its ifalias
(``archetype-mgmt lab=<lab> network=<name>``); discovery and cleanup trust that marker,
never the name alone (DESIGN.md, Identity).

The per-host API takes the subnet(s) as given: ``ensure_bridge`` makes what is missing and
answers what is there; the choice of a subnet is the caller's.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass

from lab import names
from lab.errors import NetworkError
from providers.network.netlink import (
    IPRoute,
    NetlinkError,
    dump_links,
    get_link,
    iproute_in_netns,
    netlink_step,
)

log = logging.getLogger(__name__)

INSIDE_NAME = "eth0"  # containerlab's management interface name
MGMT_PORT_PREFIX = "arm"  # host ends: ``arm`` + hash (the bridge is ``arm`` + a shorter hash)
_ALIAS_RE = re.compile(r"^archetype-mgmt lab=(?P<lab>\S+) network=(?P<network>\S+)$")
_PORT_ALIAS_RE = re.compile(r"^archetype-mgmt-port lab=(?P<lab>\S+) node=(?P<node>\S+)$")
IPTABLES_TIMEOUT = 30.0


@dataclass(frozen=True)
class Bridge:
    """A lab's management bridge as it is on the host."""

    lab_id: str
    name: str
    network: str
    ipv4_subnet: str
    ipv4_gateway: str
    ipv6_subnet: str | None = None
    ipv6_gateway: str | None = None


def bridge_alias(lab_id: str, network: str) -> str:
    return f"archetype-mgmt lab={lab_id} network={network}"


def port_alias(lab_id: str, node: str) -> str:
    return f"archetype-mgmt-port lab={lab_id} node={node}"


def port_name(lab_id: str, node: str) -> str:
    """The host end of a node's management veth (15 characters, deterministic)."""
    return names.host_port_name(lab_id, node, "mgmt", prefix=MGMT_PORT_PREFIX)


def mac_of(ipv4: str) -> str:
    """``02:42`` and the four bytes of the address (as docker gives its endpoints)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ipv4).packed)


def _owner(alias: str | None) -> tuple[str, str] | None:
    match = _ALIAS_RE.match(alias or "")
    if match is None or not names.is_valid_lab_id(match["lab"]):
        return None
    return match["lab"], match["network"]


# Bridges ----------------------------------------------------------------------------------


def find_bridge(lab_id: str) -> Bridge | None:
    """The lab's management bridge (by its marker), with the subnets its addresses give."""
    with IPRoute() as ipr:
        link = get_link(ipr, names.mgmt_bridge_name(lab_id))
        if link is None or (owner := _owner(link.alias)) is None or owner[0] != lab_id:
            return None
        if not ipr.get_addr(index=link.index, family=2):  # half-made: ensure_bridge completes it
            return None
        return _described(ipr, lab_id, link.index, link.name, owner[1])


def _described(ipr: IPRoute, lab_id: str, index: int, name: str, network: str) -> Bridge:
    v4 = v6 = None
    for msg in ipr.get_addr(index=index):
        address = msg.get_attr("IFA_ADDRESS")
        if msg["family"] == 10 and address.startswith("fe80:"):
            continue
        iface = ipaddress.ip_interface(f"{address}/{msg['prefixlen']}")
        if iface.version == 4 and v4 is None:
            v4 = iface
        elif iface.version == 6 and v6 is None:
            v6 = iface
    if v4 is None:
        raise NetworkError(f"lab {lab_id}: its management bridge {name} has no IPv4 address")
    return Bridge(lab_id, name, network, str(v4.network), str(v4.ip),
                  str(v6.network) if v6 else None, str(v6.ip) if v6 else None)


def ensure_bridge(lab_id: str, network: str, ipv4_subnet: str, ipv6_subnet: str | None = None) -> Bridge:
    """The lab's management bridge with the gateway (first address) of each subnet, up, and
    its outbound rules; made if missing, completed if half-made. An existing bridge keeps
    its subnets: the caller compares them with what it asked for."""
    name = names.mgmt_bridge_name(lab_id)
    what = f"lab {lab_id}: management bridge {name}"
    with netlink_step(what, "netlink"), IPRoute() as ipr:
        link = get_link(ipr, name)
        if link is not None:
            owner = _owner(link.alias)
            if owner is None or owner[0] != lab_id or link.kind != "bridge":
                raise NetworkError(f"{what}: an interface of that name exists and is not this lab's "
                                   f"management bridge ({link.kind or 'device'}, alias {link.alias!r}): not touching it")
            if ipr.get_addr(index=link.index, family=2):
                found = _described(ipr, lab_id, link.index, name, owner[1])
                _ensure_rules(found)
                if not link.up:
                    ipr.link("set", index=link.index, state="up")
                return found
        else:
            ipr.link("add", ifname=name, kind="bridge")
            link = get_link(ipr, name)
            assert link is not None
        # IPv6 duplicate address detection would hold the gateway back for a second or so
        ipr.link("set", index=link.index, ifalias=bridge_alias(lab_id, network), state="up")
        for subnet in filter(None, (ipv4_subnet, ipv6_subnet)):
            net = ipaddress.ip_network(subnet)
            try:
                ipr.addr("add", index=link.index, address=str(net.network_address + 1), prefixlen=net.prefixlen,
                         **({"flags": 0x80} if net.version == 6 else {}))  # IFA_F_NODAD
            except NetlinkError as err:
                if err.code != errno.EEXIST:
                    raise
        made = _described(ipr, lab_id, link.index, name, network)
    _ensure_rules(made)
    log.info("management bridge %s for lab %s (%s)", name, lab_id, made.ipv4_subnet)
    return made


def remove_bridge(lab_id: str) -> list[str]:
    """The lab's management bridge (by its marker), its leftover host veths and its rules;
    what was removed."""
    removed = []
    with IPRoute() as ipr:
        for link in dump_links(ipr).values():
            owner = _owner(link.alias)
            port = _PORT_ALIAS_RE.match(link.alias or "")
            if (owner and owner[0] == lab_id and link.kind == "bridge") or (port and port["lab"] == lab_id):
                try:
                    ipr.link("del", index=link.index)
                except NetlinkError as err:
                    if err.code != errno.ENODEV:
                        raise
                removed.append(link.name)
    removed += remove_rules(lab_id)
    return removed


def bridge_labs() -> set[str]:
    """Labs that have a management bridge, a management veth or outbound rules here."""
    labs = set()
    with IPRoute() as ipr:
        for link in dump_links(ipr).values():
            owner = _owner(link.alias)
            if owner is not None and link.kind == "bridge":
                labs.add(owner[0])
            elif port := _PORT_ALIAS_RE.match(link.alias or ""):
                labs.add(port["lab"])
    return labs | set(_rule_labs())


# A node's management NIC -------------------------------------------------------------------


def attach(lab_id: str, node: str, pid: int, bridge: Bridge, ipv4: str | None, ipv6: str | None,
           *, mtu: int = 1500) -> None:
    """The node's ``eth0`` on the lab's management bridge, with its address(es) and default
    route(s) via the gateway(s). Idempotent: a right pair is kept (addresses and routes
    completed), a stale host end (its peer in a dead namespace) is made again."""
    if ipv4 is None and ipv6 is None:
        return
    host_name = port_name(lab_id, node)
    what = f"lab {lab_id} node {node}: management veth {host_name}"
    with netlink_step(what, "netlink"), IPRoute() as host, iproute_in_netns(pid) as box:
        master = get_link(host, bridge.name)
        if master is None:
            raise NetworkError(f"{what}: the lab's management bridge {bridge.name} is missing")
        mine, theirs = get_link(host, host_name), get_link(box, INSIDE_NAME)
        paired = (mine is not None and theirs is not None and mine.kind == "veth"
                  and mine.peer_index == theirs.index and theirs.peer_index == mine.index)
        if not paired:
            if theirs is not None:
                raise NetworkError(f"{what}: the container (pid {pid}) already has an {INSIDE_NAME} that is not ours")
            if mine is not None:
                port = _PORT_ALIAS_RE.match(mine.alias or "")
                if mine.kind != "veth" or not port or port["lab"] != lab_id:
                    raise NetworkError(f"{what}: a host interface of that name exists and is not ours: not touching it")
                try:
                    host.link("del", index=mine.index)
                except NetlinkError as err:
                    if err.code != errno.ENODEV:
                        raise
            peer = {"ifname": INSIDE_NAME, "net_ns_pid": pid, "mtu": mtu}
            if ipv4:  # docker's rule: the MAC follows the address, so neighbours' caches stay right across a restart
                peer["address"] = mac_of(ipv4)
            host.link("add", ifname=host_name, kind="veth", mtu=mtu, peer=peer)
        host.link("set", ifname=host_name, ifalias=port_alias(lab_id, node), master=master.index, state="up")
        inside = get_link(box, INSIDE_NAME)
        assert inside is not None
        box.link("set", index=inside.index, state="up")
        for address, subnet, gateway in ((ipv4, bridge.ipv4_subnet, bridge.ipv4_gateway),
                                         (ipv6, bridge.ipv6_subnet, bridge.ipv6_gateway)):
            if address is None or subnet is None or gateway is None:
                continue
            _add(what, box, inside.index, address, ipaddress.ip_network(subnet), gateway)


def _add(what: str, box: IPRoute, index: int, address: str, net: ipaddress._BaseNetwork, gateway: str) -> None:
    """An address on the inside end and the default route via the gateway (there already: fine)."""
    family = 2 if net.version == 4 else 10
    steps = (
        ("address", lambda: box.addr("add", index=index, address=address, prefixlen=net.prefixlen,
                                     **({"flags": 0x80} if family == 10 else {}))),  # IFA_F_NODAD: usable at once
        ("default route", lambda: box.route("add", dst="default" if family == 2 else "::/0", gateway=gateway,
                                            oif=index, family=family)),
    )
    for step, call in steps:
        try:
            call()
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise NetworkError(f"{what}: {step} ({address} via {gateway}) failed: {err}") from err


# Outbound (iptables) -----------------------------------------------------------------------


def _comment(lab_id: str) -> str:
    return f"archetype-mgmt:{lab_id}"


def _rules(bridge: Bridge) -> list[tuple[str, str, list[str]]]:
    """(table, chain, rule) for one family: masquerade what leaves the subnet by another
    interface, let the bridge's traffic through docker's FORWARD policy (DROP)."""
    tag = ["-m", "comment", "--comment", _comment(bridge.lab_id)]
    return [
        ("nat", "POSTROUTING", ["-s", bridge.ipv4_subnet, "!", "-o", bridge.name, "-j", "MASQUERADE", *tag]),
        ("filter", "FORWARD", ["-i", bridge.name, "-j", "ACCEPT", *tag]),
        ("filter", "FORWARD", ["-o", bridge.name, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                               "-j", "ACCEPT", *tag]),
    ]


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("iptables")
    if binary is None:
        raise NetworkError("iptables is not installed: the management network's outbound rules cannot be made")
    done = subprocess.run([binary, "-w", "10", *args], capture_output=True, text=True,
                          timeout=IPTABLES_TIMEOUT, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"iptables {' '.join(args)}: {done.stderr.strip()}")
    return done


def _ensure_rules(bridge: Bridge) -> None:
    for table, chain, rule in _rules(bridge):
        if _iptables("-t", table, "-C", chain, *rule, check=False).returncode != 0:
            _iptables("-t", table, "-I", chain, "1", *rule)


def _listed(table: str) -> list[str]:
    done = _iptables("-t", table, "-S", check=False)
    return done.stdout.splitlines() if done.returncode == 0 else []


def _rule_labs() -> list[str]:
    if shutil.which("iptables") is None:
        return []
    found = []
    for table in ("nat", "filter"):
        for line in _listed(table):
            match = re.search(r'--comment "?archetype-mgmt:(\S+?)"?(\s|$)', line)
            if match and names.is_valid_lab_id(match[1]):
                found.append(match[1])
    return found


def remove_rules(lab_id: str) -> list[str]:
    """The lab's outbound rules (by their comment); what was removed."""
    if shutil.which("iptables") is None:
        return []
    removed = []
    for table in ("nat", "filter"):
        for line in _listed(table):
            if not line.startswith("-A ") or not re.search(rf'--comment "?{re.escape(_comment(lab_id))}"?(\s|$)', line):
                continue
            argv = line.split()
            argv = [a.strip('"') for a in argv]
            argv[0] = "-D"
            _iptables("-t", table, *argv, check=False)
            removed.append(f"iptables {table} {argv[1]} rule")
    return removed
