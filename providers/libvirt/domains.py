"""Domain operations, each a function of the connection run on the libvirt thread
(``LibvirtThread.run``): inspect, list ours by metadata, define+start, force-remove."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from lab import names
from lab.errors import ConflictError, ProviderError
from providers.base import NodeState
from providers.libvirt.conn import VIR_ERR_NO_DOMAIN, VIR_ERR_NO_DOMAIN_METADATA, error_code
from providers.libvirt.domain_xml import NodeMarker, parse_marker

log = logging.getLogger("archetype.libvirt")

_RUNNING = {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED}
UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", 0)
)


class DomainConflictError(ConflictError):
    """A domain of the node's name exists and is not this node's: it is left alone."""


class LinksChangedError(ProviderError):
    """A running VM has other link NICs than its node now needs: they only change when
    its domain is defined again, which needs it stopped."""

    transient = False


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    marker: NodeMarker | None
    state: NodeState


def lookup_domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as err:
        if error_code(err) == VIR_ERR_NO_DOMAIN:
            return None
        raise


def _marker(dom: libvirt.virDomain) -> NodeMarker | None:
    try:
        return parse_marker(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, names.METADATA_NS, 0))
    except libvirt.libvirtError as err:
        if error_code(err) == VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise


def _info(dom: libvirt.virDomain) -> DomainInfo:
    state = NodeState.RUNNING if dom.state()[0] in _RUNNING else NodeState.STOPPED
    return DomainInfo(dom.name(), dom.UUIDString(), _marker(dom), state)


def domain_description(name: str) -> Callable[[libvirt.virConnect], str | None]:
    """The domain's live XML, or None when there is no such domain."""

    def describe(conn: libvirt.virConnect) -> str | None:
        dom = lookup_domain(conn, name)
        return None if dom is None else dom.XMLDesc(0)

    return describe


def inspect_domain(name: str) -> Callable[[libvirt.virConnect], DomainInfo | None]:
    def inspect(conn: libvirt.virConnect) -> DomainInfo | None:
        dom = lookup_domain(conn, name)
        if dom is None:
            return None
        try:
            return _info(dom)
        except libvirt.libvirtError as err:
            if error_code(err) == VIR_ERR_NO_DOMAIN:  # went away meanwhile
                return None
            raise

    return inspect


def our_domains(conn: libvirt.virConnect) -> list[DomainInfo]:
    """Every domain that carries our metadata, running or not (one libvirt-thread call)."""
    found = []
    for dom in conn.listAllDomains(0):
        try:
            info = _info(dom)
        except libvirt.libvirtError as err:
            if error_code(err) == VIR_ERR_NO_DOMAIN:
                continue
            raise
        if info.marker is not None:
            found.append(info)
    return found


def define_and_start(xml: str, *, undo_define: bool) -> Callable[[libvirt.virConnect], None]:
    def define_and_start(conn: libvirt.virConnect) -> None:
        dom = conn.defineXML(xml)
        if dom.isActive():  # paused (counted as stopped): go on where it was
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()
            return
        try:
            dom.create()
        except libvirt.libvirtError:
            if undo_define:
                try:
                    dom.undefineFlags(UNDEFINE_FLAGS)
                except libvirt.libvirtError as err:
                    log.warning("could not undefine %s after a failed start: %s", dom.name(), err)
            raise

    return define_and_start


def start_domain(name: str) -> Callable[[libvirt.virConnect], None]:
    def start(conn: libvirt.virConnect) -> None:
        dom = conn.lookupByName(name)
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif not dom.isActive():
            dom.create()

    return start


def remove_domain(name: str, uuid: str) -> Callable[[libvirt.virConnect], None]:
    """Force-stop and undefine the domain, if it is still the one we inspected (same UUID)."""

    def remove(conn: libvirt.virConnect) -> None:
        dom = lookup_domain(conn, name)
        if dom is None or dom.UUIDString() != uuid:
            return
        try:
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                try:
                    dom.undefineFlags(UNDEFINE_FLAGS)
                except libvirt.libvirtError as err:
                    if error_code(err) == VIR_ERR_NO_DOMAIN:
                        return
                    dom.undefine()  # a driver without some of the flags
        except libvirt.libvirtError as err:
            if error_code(err) != VIR_ERR_NO_DOMAIN:
                raise

    return remove
