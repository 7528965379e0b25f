"""How a host-side network resource says whose it is: OVS external_ids and veth ifalias.

Discovery and cleanup trust these markers (DESIGN.md, Identity), never a name alone;
a port *name* is trusted only when it is one of the names a lab recorded for itself.
"""

from __future__ import annotations

import re

from lab import names
from lab.errors import NetworkError

IFNAMSIZ = 15  # longest interface name Linux accepts
_IFNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$")
_ALIAS_PREFIX = "archetype "
_ALIAS_RE = re.compile(r"^archetype lab=(?P<lab>\S+) node=(?P<node>\S+) link=(?P<link>.+)$")


def port_ids(lab_id: str, node: str, link_id: str) -> dict[str, str]:
    """The external_ids every OVS port we add (or adopt) carries."""
    return {names.OVS_LAB_KEY: lab_id, names.OVS_NODE_KEY: node, names.OVS_LINK_KEY: link_id}


def veth_alias(lab_id: str, node: str, link_id: str) -> str:
    """The ifalias of a host-side veth: ``archetype lab=<lab> node=<node> link=<link>``."""
    return f"{_ALIAS_PREFIX}lab={lab_id} node={node} link={link_id}"


def parse_alias(alias: str | None) -> tuple[str, str, str] | None:
    """``(lab, node, link)`` of one of our ifalias markers, or None for anything else."""
    if not alias or not alias.startswith(_ALIAS_PREFIX):
        return None
    match = _ALIAS_RE.match(alias)
    if match is None or not names.is_valid_lab_id(match["lab"]):
        return None
    return match["lab"], match["node"], match["link"]


def check_ifname(name: str, what: str) -> None:
    """Refuse an interface name Linux would refuse (or truncate): at most 15 characters."""
    if not _IFNAME_RE.match(name or ""):
        raise NetworkError(f"{what} {name!r} is not a valid interface name (1-15 characters, no '/' or spaces)")


def endpoint_node(endpoint: str) -> str:
    """The node of a ``node:interface`` endpoint (node names never contain ':')."""
    return endpoint.split(":", 1)[0]


def endpoint_port_names(lab_id: str, endpoint: str) -> list[str]:
    """The host-side port names ``lab.names.host_port_name`` gives a ``node:interface``
    endpoint (veth prefix and tap prefix)."""
    node, sep, interface = endpoint.partition(":")
    if not sep or not node or not interface:
        return []
    return [names.host_port_name(lab_id, node, interface, prefix=p) for p in (names.VETH_PREFIX, names.TAP_PREFIX)]
