"""Test endpoints: processes sleeping in fresh network namespaces, standing in for containers.

Everything a test does inside a namespace (addresses, ICMP, TCP) runs in this process
through sockets created in that namespace (``providers.network.netlink.socket_in_netns``).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

from providers.network.netlink import iproute_in_netns, socket_in_netns, tx_checksum


@dataclass
class Endpoint:
    """A process in its own network namespace (like a container's PID 1)."""

    name: str
    proc: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(cls, name: str) -> Endpoint:
        proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "900"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # unshare has exec'd sleep once the netns differs
            try:
                if os.stat(f"/proc/{proc.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
                    return cls(name, proc)
            except FileNotFoundError:
                pass
            time.sleep(0.005)
        proc.kill()
        raise RuntimeError(f"endpoint {name}: no new network namespace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def links(self) -> dict[str, dict]:
        with iproute_in_netns(self.pid) as ipr:
            return {
                m.get_attr("IFLA_IFNAME"): {"index": m["index"], "up": bool(m["flags"] & 1), "mtu": m.get_attr("IFLA_MTU"),
                                            "carrier": bool(m.get_attr("IFLA_CARRIER"))}
                for m in ipr.link("dump")
            }

    def address(self, ifname: str, ip: str, prefix: int = 24) -> None:
        with iproute_in_netns(self.pid) as ipr:
            (lo,) = ipr.link_lookup(ifname="lo")
            ipr.link("set", index=lo, state="up")
            (index,) = ipr.link_lookup(ifname=ifname)
            ipr.addr("add", index=index, address=ip, prefixlen=prefix)

    def tx_checksum(self, ifname: str) -> bool:
        sock = socket_in_netns(self.pid, socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            return tx_checksum(ifname, sock)

    def socket(self, kind: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        return socket_in_netns(self.pid, socket.AF_INET, kind, proto)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(src: Endpoint, dst_ip: str, *, attempts: int = 5, timeout: float = 0.4) -> bool:
    """ICMP echo from ``src`` to ``dst_ip``: True at the first reply."""
    ident = os.getpid() & 0xFFFF
    with src.socket(socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(timeout)
        for seq in range(attempts):
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            payload = b"archetype-ping"
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
            try:
                sock.sendto(packet, (dst_ip, 0))
            except OSError:
                time.sleep(timeout)
                continue
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    data, (addr, _) = sock.recvfrom(2048)
                except TimeoutError:
                    break
                ihl = (data[0] & 0x0F) * 4
                kind, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if kind == 0 and rid == ident and addr == dst_ip:
                    return True
    return False


def tcp_transfer(client: Endpoint, server: Endpoint, server_ip: str, nbytes: int = 1 << 20, port: int = 5701) -> int:
    """Server sends ``nbytes`` over TCP to the client; returns the bytes the client got."""
    payload = os.urandom(1024) * (nbytes // 1024)
    listener = server.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((server_ip, port))
    listener.listen(1)
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(payload)
        except OSError:
            pass
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    received = bytearray()
    with client.socket() as sock:
        sock.settimeout(5)
        try:
            sock.connect((server_ip, port))
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    thread.join(timeout=10)
    return len(received) if bytes(received) == payload[: len(received)] else -1


def allocate_in_child(lab_id: str, link_ids: list[str], barrier, results) -> None:
    """multiprocessing target: wait for every racer, then allocate (a separate process)."""
    from providers import network

    barrier.wait(timeout=30)
    try:
        results.put((lab_id, network.allocate_vlans(lab_id, link_ids)))
    except Exception as err:  # noqa: BLE001 - reported to the parent
        results.put((lab_id, repr(err)))
