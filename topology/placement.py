"""Placement: which host of a fleet runs each node. Pure logic over the hosts' published facts.

A node with ``host:`` goes there (the host must be alive and able to run it); the others go,
biggest first, to the alive host that can run them (its images, its VM images) with the
most memory left after what this lab already put there. A lab that cannot be placed is
invalid input: one ``TopologyError`` naming every node that has nowhere to go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from lab.errors import TopologyError
from topology.document import Lab, Node
from vendors.model import Provider

CONTAINER_MEMORY_MB = 64  # what a container without `memory:` is counted as


@dataclass(frozen=True)
class HostFacts:
    """What a host publishes about itself (``archetype hosts``)."""

    name: str
    address: str | None = None
    alive: bool = True
    cpus: int = 0
    memory_free_mb: int = 0
    providers: tuple[str, ...] = ()  # runtimes that answer there: docker, libvirt
    images: tuple[str, ...] = ()  # container images present
    vm_images: tuple[str, ...] = ()  # files under the image dir (kernels, disks)
    underlay_mtu: int | None = None
    access: tuple[str, ...] = ()
    docker_url: str | None = None  # its dockerd as other hosts reach it (docker -H)
    updated_at: str = ""
    labs: dict[str, Any] = field(default_factory=dict)
    drained: bool = False  # unschedulable: nothing new is placed there (`archetype hosts drain`)
    lost: bool = False  # not heard from for ``host_lost_seconds``: its nodes are re-placed (not alive either)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, alive: bool = True, drained: bool = False,
                  lost: bool = False) -> HostFacts:
        return cls(
            name=str(data["name"]), address=data.get("address"), alive=alive, cpus=int(data.get("cpus") or 0),
            memory_free_mb=int(data.get("memory_free_mb") or 0), providers=tuple(data.get("providers") or ()),
            images=tuple(data.get("images") or ()), vm_images=tuple(data.get("vm_images") or ()),
            underlay_mtu=data.get("underlay_mtu"), access=tuple(data.get("access") or ()),
            docker_url=data.get("docker_url"),
            updated_at=str(data.get("updated_at") or ""), labs=dict(data.get("labs") or {}), drained=drained,
            lost=lost,
        )

    def runs(self, lab_id: str, node_name: str) -> bool:
        """The host's facts list the node of that lab among what it runs."""
        return any(entry and entry[0] == node_name for entry in self.labs.get(lab_id) or [])

    def why_not(self, node: Node, lab_id: str | None = None) -> str | None:
        """Why this host cannot run the node, or None when it can. A drained host keeps only
        the nodes it runs already (``lab_id`` given), until they move."""
        if self.lost:
            return f"host {self.name} is lost (its worker not heard from)"
        if not self.alive:
            return f"host {self.name} is not alive (no facts published recently)"
        if self.drained and not (lab_id and self.runs(lab_id, node.name)):
            return f"host {self.name} is drained (archetype hosts undrain {self.name})"
        vendor = node.vendor
        if vendor.provider.value not in self.providers:
            return f"host {self.name} has no {vendor.provider.value}"
        if vendor.provider is Provider.DOCKER:
            wanted = node.image if ":" in node.image.rsplit("/", 1)[-1] else f"{node.image}:latest"
            if wanted not in self.images and node.image not in self.images:
                return f"host {self.name} has no image {node.image}"
        else:
            files = [f for f in (vendor.vm.disk_image, vendor.vm.kernel, vendor.vm.initrd) if f]
            missing = [f for f in files if f not in self.vm_images]
            if missing:
                return f"host {self.name} has no VM image {', '.join(missing)}"
        return None


def node_memory(node: Node) -> int:
    if node.memory_mb is not None:
        return node.memory_mb
    return node.vendor.memory_mb if node.vendor.provider is Provider.LIBVIRT else CONTAINER_MEMORY_MB


def place(lab: Lab, hosts: list[HostFacts]) -> dict[str, str]:
    """node name -> host name, or TopologyError naming each node that cannot be placed."""
    by_name = {h.name: h for h in hosts}
    left = {h.name: h.memory_free_mb for h in hosts}
    placement: dict[str, str] = {}
    problems: list[str] = []
    for node in lab.nodes.values():  # named hosts first: they take their memory
        if node.host is None:
            continue
        host = by_name.get(node.host)
        reason = f"unknown host {node.host!r} (known: {', '.join(sorted(by_name)) or 'none'})" if host is None \
            else host.why_not(node, lab.id)
        if reason:
            problems.append(f"topology.nodes.{node.name}.host: {reason}")
            continue
        placement[node.name] = node.host
        left[node.host] -= node_memory(node)
    unplaced = sorted((n for n in lab.nodes.values() if n.host is None), key=lambda n: (-node_memory(n), n.name))
    for node in unplaced:
        able = [h for h in hosts if h.why_not(node) is None and left[h.name] >= node_memory(node)]
        if not able:
            reasons = "; ".join(h.why_not(node) or f"host {h.name} has {left[h.name]} MiB free" for h in hosts)
            problems.append(f"topology.nodes.{node.name}: no host can run it ({reasons or 'no hosts'})")
            continue
        best = max(able, key=lambda h: (left[h.name], -sorted(by_name).index(h.name)))
        placement[node.name] = best.name
        left[best.name] -= node_memory(node)
    if problems:
        raise TopologyError(problems)
    return placement


def place_away(leaving: list[tuple[str, Node]], hosts: list[HostFacts], source: str) -> dict[tuple[str, str], str]:
    """(lab, node) -> host for each node that leaves ``source`` (a drain), biggest first, to
    the schedulable host with the most memory left; or TopologyError naming each node that
    has nowhere to go, and why (nothing is moved then)."""
    targets = [h for h in hosts if h.name != source]
    left = {h.name: h.memory_free_mb for h in targets}
    moves: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for lab_id, node in sorted(leaving, key=lambda item: (-node_memory(item[1]), item[0], item[1].name)):
        able = [h for h in targets if h.why_not(node) is None and left[h.name] >= node_memory(node)]
        if not able:
            reasons = "; ".join(h.why_not(node) or f"host {h.name} has {left[h.name]} MiB free, it needs "
                                f"{node_memory(node)}" for h in targets)
            problems.append(f"lab {lab_id} node {node.name}: no other host can run it ({reasons or 'no other host'})")
            continue
        best = max(sorted(able, key=lambda h: h.name), key=lambda h: left[h.name])  # a tie: the first by name
        moves[(lab_id, node.name)] = best.name
        left[best.name] -= node_memory(node)
    if problems:
        raise TopologyError(problems)
    return moves


def cross_host_links(lab: Lab, placement: dict[str, str]) -> list[Any]:
    """The point-to-point links whose two nodes are on different hosts (a ``host:IF`` end is
    made on its node's host: such a link never crosses)."""
    return [link for link in lab.links if link.segment is None and not link.host_ends
            and placement[link.a.node] != placement[link.b.node]]


@dataclass(frozen=True)
class Crossing:
    """One tunnel between two hosts: a point-to-point link across hosts, or a segment's
    stretch between two of the hosts its ends are on (head-end replication: a segment on N
    hosts has a tunnel per pair, so a host sends a broadcast to each other host itself).
    ``key`` names its VNI: the link id, or ``<segment link id>@<host>+<host>``."""

    key: str
    link_id: str
    ends: dict[str, str]  # host -> the node whose end is there (a segment: its first end there)
    segment: bool = False

    def peer_of(self, host: str) -> str:
        (peer,) = set(self.ends) - {host}
        return peer


def crossings(lab: Lab, placement: dict[str, str]) -> list[Crossing]:
    """Every tunnel the placed lab needs: a point-to-point link across hosts, and for each
    segment whose ends are on several hosts, one per pair of those hosts."""
    found = [Crossing(link.id, link.id, {placement[link.a.node]: link.a.node, placement[link.b.node]: link.b.node})
             for link in cross_host_links(lab, placement)]
    for link in lab.segments:
        first: dict[str, str] = {}
        for end in link.node_ends:
            first.setdefault(placement[end.node], end.node)
        for a, b in combinations(sorted(first), 2):
            found.append(Crossing(f"{link.id}@{a}+{b}", link.id, {a: first[a], b: first[b]}, segment=True))
    return found


def segment_home(link: Any, placement: dict[str, str]) -> str | None:
    """The host that makes a segment's ``host:IF`` ends: its first node's (None: no node end)."""
    return placement[link.node_ends[0].node] if link.node_ends else None
