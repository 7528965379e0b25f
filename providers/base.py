"""The provider interface both runtimes implement.

Flows never ask "is this docker?": the catalog names a kind's provider (``Provider``) and
the registry in ``providers/__init__.py`` gives it. A provider removes only its own
runtime resources (nodes, and what only its nodes use); the lab's network and workspace
are released once, by the lab-wide operations of ``providers/labs.py``, after no node of
the lab remains. No Prefect import anywhere under ``providers/``.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from lab.errors import ProviderError
from topology import Node, NodeRef
from vendors.model import Provider


class NodeState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # exists, not running (created, exited, shut off, paused...)
    MISSING = "missing"  # nothing of that name


@dataclass(frozen=True)
class LinkEnd:
    """One end of a link, as the node's provider must wire it."""

    link_id: str
    interface: str  # the vendor name, as the topology wrote it
    port: int  # data port number, 1-based (vendor.interfaces maps it to runtime names / NIC order)
    vlan: int
    port_name: str  # host-side OVS port: veth host end (containers) or tap (VMs)


@dataclass(frozen=True)
class NodeStatus:
    """One node as its runtime shows it (discovery, ``node_status``)."""

    lab_id: str
    name: str
    kind: str  # from the node's marker ("" when the node is missing)
    provider: Provider
    state: NodeState
    runtime_name: str
    mgmt_ipv4: str | None = None  # the node's address on the lab's management network
    mgmt_ipv6: str | None = None

    def ref(self) -> NodeRef:
        """The node's reference, its kind looked up in the catalog (``CatalogError`` when
        the catalog no longer has it)."""
        return NodeRef.of(self.name, self.kind)


@dataclass(frozen=True)
class DiscoveredLab:
    lab_id: str
    nodes: list[NodeStatus]  # sorted by name

    def as_dict(self) -> dict[str, object]:
        """The lab as ``archetype status --json`` and the discover-labs flow give it."""
        return {
            "lab_id": self.lab_id,
            "nodes": [
                {"name": n.name, "kind": n.kind, "provider": n.provider.value, "state": n.state.value,
                 "runtime_name": n.runtime_name, "mgmt_ipv4": n.mgmt_ipv4, "mgmt_ipv6": n.mgmt_ipv6}
                for n in self.nodes
            ],
        }


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None  # None: timed out (console commands report 0 or 1)
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class CleanupReport:
    """What a destroy or orphan cleanup removed, and every failure (one does not stop the rest)."""

    removed: dict[str, list[str]] = field(default_factory=dict)  # resource type -> names
    errors: list[str] = field(default_factory=list)

    def add(self, resource: str, name: str) -> None:
        self.removed.setdefault(resource, []).append(name)

    def merge(self, other: CleanupReport) -> CleanupReport:
        for resource, names in other.removed.items():
            self.removed.setdefault(resource, []).extend(names)
        self.errors.extend(other.errors)
        return self

    @property
    def ok(self) -> bool:
        return not self.errors


class NodeProvider(abc.ABC):
    """A runtime that runs nodes: containers (docker) or VMs (libvirt)."""

    name: ClassVar[Provider]

    @abc.abstractmethod
    def runtime_name(self, lab_id: str, node: str) -> str:
        """The container or domain name of a node (from ``lab.names``)."""

    def node_runtime_name(self, lab_id: str, node: NodeRef) -> str:
        """The runtime name of a node as its topology names it (a container honours the
        topology's containerlab ``prefix``); ``runtime_name`` gives the default."""
        return self.runtime_name(lab_id, node.name)

    @abc.abstractmethod
    def create_node(self, lab_id: str, node: Node, ends: list[LinkEnd]) -> NodeStatus:
        """Create and start the node, idempotently: an existing, running node of the
        same lab is reused. VMs get their NICs here; containers are wired by ``wire_node``.
        An error leaves nothing of the node behind."""

    @abc.abstractmethod
    def wire_node(self, lab_id: str, node: Node, ends: list[LinkEnd]) -> None:
        """Make sure every link end of the node is on the bridge with its VLAN
        (idempotent: what is already right is left alone)."""

    @abc.abstractmethod
    def remove_node(self, lab_id: str, node_name: str) -> CleanupReport:
        """Remove the node and everything it owns (ports, disks); missing is fine."""

    @abc.abstractmethod
    def node_status(self, lab_id: str, node_name: str) -> NodeStatus:
        """The live state of one node (``NodeState.MISSING`` when it does not exist)."""

    @abc.abstractmethod
    def wait_ready(self, lab_id: str, node: NodeRef, timeout: float | None = None) -> float:
        """Block until the vendor's readiness check passes; return seconds waited.
        Raises ``ProviderError`` naming the node on timeout."""

    @abc.abstractmethod
    def run_post_boot(self, lab_id: str, node: Node, done: list[CommandResult] | None = None) -> list[CommandResult]:
        """Run the post-boot commands (``node.post_boot_commands``: the vendor's, then the
        node's own ``exec``) in order, appending each result to ``done`` as it succeeds, and
        return ``done``. The run starts at command ``len(done)``: a retry given the same
        list resumes at the command that failed and never runs one that succeeded again.
        Raises ``CommandError`` at the first failing command (transient only if it timed out),
        except a startup-config line the device refuses (``node.startup_config_lines``): that
        one goes into ``done`` as a failed result (the node's config error) and the run goes on."""

    @abc.abstractmethod
    def extract_config(self, lab_id: str, node: NodeRef) -> str:
        """The node's running configuration, by the vendor's extraction method."""

    def save_config(self, lab_id: str, node: NodeRef) -> str:
        """Make the device keep its running config where it reads it at boot, by the
        vendor's save method; the device's answer. ``ProviderError`` when it has none."""
        from lab.errors import ProviderError

        raise ProviderError(f"node {node.name}: {self.name} cannot save configs")

    @abc.abstractmethod
    def connect_command(self, lab_id: str, node: NodeRef) -> list[str]:
        """argv of an interactive session on the node (for ``archetype connect``)."""

    def connect_guard(self, lab_id: str, node: NodeRef) -> AbstractContextManager[None]:
        """Held while a person is connected (``archetype connect``). Where the node has one
        shared session (a serial console), Archetype's own sessions then wait for the person
        instead of taking the console over; a container's shells are independent."""
        return nullcontext()

    # A running lab's controls (`archetype node`, `link`, `exec`). Defaults refuse: a
    # runtime that has them says so by overriding.

    def stop_node(self, lab_id: str, node_name: str) -> None:
        """Stop a node, keeping it (container, or domain and disks) to start again."""
        raise ProviderError(f"the {self.name} provider cannot stop nodes")

    def start_node(self, lab_id: str, node_name: str) -> None:
        """Start a stopped node as it is (no-op when it runs); it is wired by ``wire_node`` after."""
        raise ProviderError(f"the {self.name} provider cannot start nodes")

    def set_link_state(self, lab_id: str, node_name: str, port_name: str, up: bool) -> None:
        """Carrier of one of the node's link ends (host port ``port_name``), as its device sees it."""
        raise ProviderError(f"the {self.name} provider cannot set a link's state")

    def run_command(self, lab_id: str, node: NodeRef, argv: list[str], timeout: float) -> CommandResult:
        """Run one command on the node (``archetype exec``): its output and exit status."""
        raise ProviderError(f"the {self.name} provider cannot run commands")

    @abc.abstractmethod
    def discover_labs(self) -> list[DiscoveredLab]:
        """Every lab that has nodes of this runtime on this host, from our markers only."""

    @abc.abstractmethod
    def remove_lab_nodes(self, lab_id: str) -> CleanupReport:
        """Remove every node of the lab this runtime runs, with what each owns, and the
        runtime resources only they used (a management network). Never the lab's network
        (VLAN record, other nodes' ports) nor its workspace folders: ``providers.labs``
        releases those once no node of the lab remains. One failure does not stop the rest."""

    def labs_with_resources(self) -> set[str]:
        """Every lab that owns anything of this runtime on the host (nodes, and whatever
        else a lab can be left with, such as a network without its containers)."""
        return {lab.lab_id for lab in self.discover_labs()}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
