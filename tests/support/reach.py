"""Reaching lab nodes from the lab host over their management addresses: ICMP echo (a raw
socket: tests run as root, and the host may have no ``ping``) and a minimal telnet client."""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import time

ICMP_ECHO, ICMP_REPLY = 8, 0
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(address: str, timeout: float = 2.0, attempts: int = 3) -> bool:
    """True when ``address`` answers an ICMP echo within ``timeout`` (per attempt)."""
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        for seq in range(1, attempts + 1):
            payload = b"archetype-mgmt-probe"
            header = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", ICMP_ECHO, 0, _checksum(header + payload), ident, seq) + payload
            sock.sendto(packet, (address, 0))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                data, (source, _) = sock.recvfrom(2048)
                ihl = (data[0] & 0x0F) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if source == address and kind == ICMP_REPLY and rid == ident and rseq == seq:
                    return True
    return False


class Telnet:
    """Just enough telnet for a CLI: refuses every option, strips negotiation, waits for text."""

    def __init__(self, host: str, port: int = 23, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = ""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Telnet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send_line(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def expect(self, pattern: str, timeout: float = 15.0) -> str:
        """Read until ``pattern`` (regex) is in what arrived since the last match; return
        that text (up to and including the match)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buffer)
            if match:
                seen, self.buffer = self.buffer[:match.end()], self.buffer[match.end():]
                return seen
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{pattern!r} not seen within {timeout} s; got {self.buffer[-500:]!r}")
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                data = self.sock.recv(4096)
                if not data:
                    raise ConnectionError(f"connection closed before {pattern!r}; got {self.buffer[-500:]!r}")
                self.buffer += self._negotiate(data).decode(errors="replace")

    def _negotiate(self, data: bytes) -> bytes:
        text, i = bytearray(), 0
        while i < len(data):
            byte = data[i]
            if byte != IAC or i + 1 >= len(data):
                text.append(byte)
                i += 1
                continue
            command = data[i + 1]
            if command in (DO, DONT, WILL, WONT) and i + 2 < len(data):
                option = data[i + 2]
                if command == DO:
                    self.sock.sendall(bytes([IAC, WONT, option]))
                elif command == WILL:
                    self.sock.sendall(bytes([IAC, DONT, option]))
                i += 3
            elif command == SB:
                end = data.find(bytes([IAC, SE]), i)
                i = len(data) if end == -1 else end + 2
            else:
                i += 2
        return bytes(text)
