"""The link impairment relay: one process per impaired link, standard library only.

This host's kernel has no ``sch_netem`` (``CONFIG_NET_SCH_NETEM`` is not set; only tbf,
htb, pfifo and ingress/clsact exist), and nothing else in the kernel delays packets. So
an impaired link leaves the OVS bridge and this process carries its frames between the
two host-side ports (a container's host veth, a VM's tap), with AF_PACKET sockets, applying
in each direction: a delay with a uniform jitter, a random loss, a rate (serialisation
at ``rate`` kbit/s, queue of ``QUEUE_LIMIT`` frames, tail drop) -- netem's model.

Run as ``python relay.py --a PORT --b PORT [--delay-ms D] [--jitter-ms J] [--loss P]
[--rate-kbit R] --key KEY``; it runs until SIGTERM, or until one of its ports is deleted
(the node stopped: its veth or tap went with it). A port taken down (link state down)
only pauses it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import heapq
import os
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # our own sends are not read back
QUEUE_LIMIT = 1000  # frames waiting per direction (netem's default limit)
FRAME_MAX = 65536
READS_PER_WAKE = 64


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} relay[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def open_port(name: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.bind((name, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def ifindex(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/ifindex") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


class Direction:
    """Frames read on one port, waiting for their time to leave by the other."""

    def __init__(self, out: socket.socket, args: argparse.Namespace) -> None:
        self.out = out
        self.delay = args.delay_ms / 1000
        self.jitter = args.jitter_ms / 1000
        self.loss = args.loss / 100
        self.bits_per_second = args.rate_kbit * 1000
        self.queue: list[tuple[float, int, bytes]] = []
        self.line_free = 0.0  # when the rate-limited "line" finishes its last frame
        self.seq = 0

    def take(self, frame: bytes, now: float) -> None:
        if self.loss and random.random() < self.loss:
            return
        if len(self.queue) >= QUEUE_LIMIT:
            return
        due = now + max(0.0, self.delay + (random.uniform(-self.jitter, self.jitter) if self.jitter else 0.0))
        if self.bits_per_second:
            start = max(due, self.line_free)
            self.line_free = start + len(frame) * 8 / self.bits_per_second
            due = self.line_free
        self.seq += 1
        heapq.heappush(self.queue, (due, self.seq, frame))

    def send_due(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            _, _, frame = heapq.heappop(self.queue)
            with contextlib.suppress(OSError):  # port down (link state down), too big: the frame is lost
                self.out.send(frame)

    def next_due(self) -> float | None:
        return self.queue[0][0] if self.queue else None


def run(args: argparse.Namespace) -> int:
    names = (args.a, args.b)
    indexes = {name: ifindex(name) for name in names}
    socks = {name: open_port(name) for name in names}
    towards = {args.a: Direction(socks[args.b], args), args.b: Direction(socks[args.a], args)}
    by_fd = {socks[name].fileno(): name for name in names}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    log(f"carrying {args.a} <-> {args.b}: delay {args.delay_ms} ms, jitter {args.jitter_ms} ms, "
        f"loss {args.loss} %, rate {args.rate_kbit or 'unlimited'} kbit/s")
    while True:
        dues = [d for d in (towards[n].next_due() for n in names) if d is not None]
        wait = None if not dues else max(0, int((min(dues) - time.monotonic()) * 1000) + 1)
        for fd, _event in poller.poll(wait):
            name = by_fd[fd]
            for _ in range(READS_PER_WAKE):
                try:
                    frame = socks[name].recv(FRAME_MAX)
                except BlockingIOError:
                    break
                except OSError as err:
                    if ifindex(name) != indexes[name]:
                        log(f"port {name} is gone ({err.strerror}): the link's node stopped; exiting")
                        return 0
                    if err.errno not in (errno.ENETDOWN, errno.EINTR):
                        log(f"reading {name}: {err}")
                    break
                towards[name].take(frame, time.monotonic())
        now = time.monotonic()
        for name in names:
            towards[name].send_due(now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True)
    parser.add_argument("--b", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--rate-kbit", type=int, default=0)
    parser.add_argument("--key", required=True, help="the link's relay key (how Archetype recognises this process)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    try:
        return run(args)
    except OSError as err:
        log(f"cannot carry {args.a} <-> {args.b}: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
