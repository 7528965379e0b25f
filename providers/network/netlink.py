"""Netlink and ethtool in-process (pyroute2 + one ioctl): no ``ip``/``ethtool`` processes.

A socket keeps the network namespace it was created in, so a socket for a container's
namespace is made by switching the *calling thread* into it (``setns``) just long enough
to create the socket: no fork, no helper process. Other threads are not affected.
"""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lab.errors import NetworkError

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
IFF_UP = 0x1
IFF_PROMISC = 0x100
SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17

_libc = ctypes.CDLL(None, use_errno=True)

__all__ = ["IPRoute", "Link", "NetlinkError", "dump_links", "get_link", "iproute_in_netns", "netlink_step", "netns_of", "same_netns_as_us",
           "socket_in_netns", "tx_checksum", "tx_checksum_off"]


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str | None
    up: bool
    mtu: int | None
    alias: str | None
    peer_index: int | None  # IFLA_LINK: for a veth, the peer's ifindex (in the peer's namespace)
    promiscuous: bool = False  # a switch port's device: set by the datapath that reads it
    mac: str | None = None


def _link(msg) -> Link:
    kind = None
    info = msg.get_attr("IFLA_LINKINFO")
    if info is not None:
        kind = info.get_attr("IFLA_INFO_KIND")
    return Link(
        index=int(msg["index"]),
        name=msg.get_attr("IFLA_IFNAME"),
        kind=kind,
        up=bool(msg["flags"] & IFF_UP),
        mtu=msg.get_attr("IFLA_MTU"),
        alias=msg.get_attr("IFLA_IFALIAS"),
        peer_index=msg.get_attr("IFLA_LINK"),
        promiscuous=bool(msg["flags"] & IFF_PROMISC),
        mac=msg.get_attr("IFLA_ADDRESS"),
    )


def dump_links(ipr: IPRoute) -> dict[str, Link]:
    """Every interface of the socket's namespace, by name (one netlink dump)."""
    return {link.name: link for link in map(_link, ipr.link("dump"))}


def get_link(ipr: IPRoute, name: str) -> Link | None:
    """One interface by name (one netlink request; a dump of a busy host costs far more)."""
    try:
        (msg,) = ipr.link("get", ifname=name)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise
    return _link(msg)


@contextmanager
def netlink_step(what: str, step: str) -> Iterator[None]:
    """Turn a netlink/ioctl failure into a ``NetworkError`` naming the lab/node and step."""
    try:
        yield
    except (NetlinkError, OSError) as err:
        raise NetworkError(f"{what}: {step} failed: {err}") from err


def netns_of(pid: int) -> str:
    return f"/proc/{int(pid)}/ns/net"


def same_netns_as_us(pid: int) -> bool:
    """Whether ``pid`` shares our network namespace (a host-network container)."""
    theirs, ours = os.stat(netns_of(pid)), os.stat("/proc/self/ns/net")
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


@contextmanager
def _entered(pid: int) -> Iterator[None]:
    """Run the body with the calling thread inside the network namespace of ``pid``."""
    try:
        target = os.open(netns_of(pid), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetworkError(f"process {pid} is gone: no network namespace to wire into") from None
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetworkError(f"cannot enter the network namespace of pid {pid}: {os.strerror(err)}")
            try:
                yield
            finally:
                if _libc.setns(home, CLONE_NEWNET) != 0:  # this thread would stay in the container
                    os.abort()
        finally:
            os.close(home)
    finally:
        os.close(target)


def socket_in_netns(pid: int, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that lives in the network namespace of ``pid``."""
    with _entered(pid):
        return socket.socket(family, kind, proto)


def iproute_in_netns(pid: int) -> IPRoute:
    """An ``IPRoute`` whose netlink socket lives in the network namespace of ``pid``."""
    sock = socket_in_netns(pid, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    try:
        return IPRoute(fileno=sock.detach())
    except Exception:
        sock.close()
        raise


def _ethtool_value(ifname: str, cmd: int, data: int, sock: socket.socket | None) -> int:
    value = array.array("I", [cmd, data])  # struct ethtool_value {u32 cmd; u32 data;}
    address, _ = value.buffer_info()
    ifreq = struct.pack("16sP", ifname.encode(), address).ljust(40, b"\0")  # struct ifreq
    own = sock is None
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    finally:
        if own:
            sock.close()
    return value[1]


def tx_checksum_off(ifname: str, sock: socket.socket | None = None) -> None:
    """``ethtool -K IFNAME tx off`` as one ioctl (ETHTOOL_STXCSUM): the kernel turns off every
    tx-checksum feature (and the segmentation offloads that need it). ``sock``: an AF_INET
    socket of the namespace the interface lives in (default: ours)."""
    _ethtool_value(ifname, ETHTOOL_STXCSUM, 0, sock)


def tx_checksum(ifname: str, sock: socket.socket | None = None) -> bool:
    """Whether TX checksum offload is on (ETHTOOL_GTXCSUM)."""
    return bool(_ethtool_value(ifname, ETHTOOL_GTXCSUM, 0, sock))
