"""Benchmark topologies: an N-node FRR lab shaped as a ring plus chords.

Ring links ``r{i} <-> r{i+1}`` (mod N) and chords ``r{i} <-> r{i+N//2}`` for
``i < N//2``: N + N//2 links, so about 1.5 links per node and three interfaces per node
for even N (20 nodes / 30 links, 40 nodes / 60 links). Node names start at 1 (``r1``).
Every node gets a startup config (``frr_config``): its own AS, a loopback address and a
BGP-unnumbered session on each of its links (IPv6 link-local, so no link addressing), so
that the routers have real work when they start, as in a lab people use.
"""

from __future__ import annotations

import yaml

FRR_IMAGE = "archetype/frr:latest"


def ring_with_chords(n: int) -> list[tuple[int, int]]:
    """Undirected links between node indexes 0..n-1, with no duplicates or self-loops."""
    if n < 2:
        return []
    pairs: list[tuple[int, int]] = []
    seen: set[frozenset[int]] = set()

    def add(a: int, b: int) -> None:
        key = frozenset((a, b))
        if a != b and key not in seen:
            seen.add(key)
            pairs.append((a, b))

    for i in range(n):
        add(i, (i + 1) % n)
    if n >= 4:
        for i in range(n // 2):
            add(i, i + n // 2)
    return pairs


def node_name(index: int) -> str:
    return f"r{index + 1}"


def interface_counts(n: int) -> list[int]:
    """How many data interfaces (eth1..ethK) each node gets."""
    counts = [0] * n
    for a, b in ring_with_chords(n):
        counts[a] += 1
        counts[b] += 1
    return counts


def frr_config(index: int, interfaces: int) -> str:
    """frr.conf of node ``index``: AS 65001+index, loopback 10.255.x.y/32, an eBGP
    unnumbered neighbour on each data interface, connected routes redistributed."""
    address = f"10.255.{(index + 1) // 256}.{(index + 1) % 256}"
    lines = [
        "frr defaults datacenter",
        f"hostname {node_name(index)}",
        "!",
        "interface lo",
        f" ip address {address}/32",
        "!",
        f"router bgp {65001 + index}",
        f" bgp router-id {address}",
        *(f" neighbor eth{port} interface remote-as external" for port in range(1, interfaces + 1)),
        " address-family ipv4 unicast",
        "  redistribute connected",
        " exit-address-family",
        "!",
    ]
    return "\n".join(lines) + "\n"


def frr_lab(lab_id: str, n: int, *, image: str = FRR_IMAGE) -> dict:
    """The topology document (a dict) of an N-node FRR ring-with-chords lab, with a BGP
    startup config (inline text) per node."""
    next_port = [1] * n
    links = []
    for a, b in ring_with_chords(n):
        ends = []
        for index in (a, b):
            ends.append(f"{node_name(index)}:eth{next_port[index]}")
            next_port[index] += 1
        links.append({"endpoints": ends})
    counts = interface_counts(n)
    return {
        "name": lab_id,
        "topology": {
            "kinds": {"frr": {"image": image}},
            "nodes": {
                node_name(i): {"kind": "frr", "startup-config": frr_config(i, counts[i])} for i in range(n)
            },
            "links": links,
        },
    }


def frr_lab_yaml(lab_id: str, n: int, *, image: str = FRR_IMAGE) -> str:
    """The same as YAML text (what ``deploy-lab`` takes as its ``topology`` parameter)."""
    return yaml.safe_dump(frr_lab(lab_id, n, image=image), sort_keys=False)


if __name__ == "__main__":  # print one: python -m benchmarks.topologies LAB N
    import sys

    print(frr_lab_yaml(sys.argv[1] if len(sys.argv) > 1 else "bench", int(sys.argv[2]) if len(sys.argv) > 2 else 20))
