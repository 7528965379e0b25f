"""The docker provider: one container per node, a management network per lab, data
interfaces wired onto the OVS bridge by ``providers.network``.

Identity (DESIGN.md): container ``archetype-{lab}-{node}`` with the ``archetype.*`` labels;
the management network ``archetype-{lab}-mgmt`` labelled with the lab id. Discovery and
cleanup trust the labels only: a container merely *named* like ours is never touched.

Speed: one client per provider with a connection pool sized for parallel use, the
low-level API (the high-level one inspects every container it creates or lists), and
removals in a thread pool. Creates, starts and execs (readiness probes included) go through
dockerd's bound (``providers.limits``): never more than it at once, whatever the lab's size.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import shlex
import shutil
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any, ClassVar, TypeVar

import docker
import docker.errors
from docker import APIClient

import providers.network as network
from lab import config_errors, names
from lab.config_errors import ConfigError
from lab.errors import CommandError, ConflictError, ImageNotFoundError, ProviderError
from lab.settings import get_settings
from providers import workspace
from providers.base import (
    CleanupReport,
    CommandResult,
    DiscoveredLab,
    LinkEnd,
    NodeProvider,
    NodeState,
    NodeStatus,
)
from providers.docker import labs as docker_labs
from providers.docker import mgmt as docker_mgmt
from providers.docker.exec import (
    DOCKER_ENGINE,
    ContainerMissingError,
    ContainerNotRunningError,
    device_config_errors,
    run_exec,
    wait_until_ready,
)
from providers.docker.spec import ContainerSpec, build_container_spec
from providers.limits import EngineBound, Turn, engine_bound
from providers.network import mgmt as mgmt_bridges
from topology import Node, NodeRef
from topology.mgmt import MgmtNetwork, MgmtPlan
from vendors.model import ConfigSaveMethod, ExtractionMethod, Provider

log = logging.getLogger("archetype.docker")

POOL_SIZE = 32  # HTTP connections to dockerd: enough for a thread per node


_explain = docker_labs.explain
F = TypeVar("F", bound=Callable[..., Any])


def _docker_errors_named(func: F) -> F:
    """A docker error that escapes a step (daemon down, socket timeout, an unexpected
    answer) becomes a ``ProviderError`` naming the lab, the node and the step."""

    @functools.wraps(func)
    def wrapper(self: DockerProvider, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(self, *args, **kwargs)
        except docker_labs.DOCKER_ERRORS as err:
            where = " ".join(
                f"node {a.name}" if isinstance(a, NodeRef) else f"lab {a}" if i == 0 else f"node {a}"
                for i, a in enumerate(args[:2])
                if isinstance(a, NodeRef | str)
            )
            step = func.__name__.replace("_", " ")
            raise ProviderError(
                f"{where + ': ' if where else ''}docker {step} failed: {_explain(err)}"
            ) from err

    return wrapper  # type: ignore[return-value]


def _is_ours(labels: dict[str, str] | None, lab_id: str, node: str) -> bool:
    labels = labels or {}
    return labels.get(names.LABEL_LAB) == lab_id and labels.get(names.LABEL_NODE) == node


class DockerProvider(NodeProvider):
    name: ClassVar[Provider] = Provider.DOCKER

    def __init__(self, base_url: str | None = None) -> None:
        self._base_url = base_url or get_settings().docker_url
        self._lock = threading.Lock()  # guards the caches and management-network creation
        self._images: set[str] = set()  # images seen on this host (checked once per provider)
        self._mgmt_networks: dict[str, MgmtPlan] = {}  # lab -> its management network, known to exist
        self._client: docker.DockerClient | None = None

    # -- the client ------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        """The provider's one client (made on first use, so importing needs no daemon)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # A socket read outlives the longest exec we wait for (exec output is
                    # streamed; a command silent for longer than this would be cut off).
                    timeout = int(max(60, get_settings().command_timeout + 30))
                    try:
                        self._client = docker.DockerClient(
                            base_url=self._base_url, max_pool_size=POOL_SIZE, timeout=timeout
                        )
                    except docker.errors.DockerException as err:
                        raise ProviderError(f"cannot reach dockerd at {self._base_url}: {err}") from err
        return self._client

    @property
    def api(self) -> APIClient:
        return self.client.api

    @property
    def _engine(self) -> EngineBound:
        """dockerd's bound: every create, start and exec holds one of its slots."""
        return engine_bound(DOCKER_ENGINE)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- names -----------------------------------------------------------------------

    def runtime_name(self, lab_id: str, node: str) -> str:
        return names.container_name(lab_id, node)

    def node_runtime_name(self, lab_id: str, node: NodeRef) -> str:
        """A resolved node knows its name (the topology's containerlab ``prefix``); a mere
        reference (discovery, readiness, extraction) finds its container by the labels."""
        if isinstance(node, Node):
            return names.container_name(lab_id, node.name, node.name_prefix)
        info = self._find(lab_id, node.name)
        return (info or {}).get("Name", "").lstrip("/") or self.runtime_name(lab_id, node.name)

    def connect_command(self, lab_id: str, node: NodeRef) -> list[str]:
        assert node.vendor.container is not None
        return ["docker", "exec", "-it", self.node_runtime_name(lab_id, node), *node.vendor.container.shell]

    # -- one node --------------------------------------------------------------------

    def _inspect(self, name: str) -> dict[str, Any] | None:
        try:
            return self.api.inspect_container(name)
        except docker.errors.NotFound:
            return None

    def _find(self, lab_id: str, node: str) -> dict[str, Any] | None:
        """The node's container when only its name is known: by our default name first, then
        by the labels (a topology with a containerlab ``prefix`` names it otherwise)."""
        info = self._inspect(self.runtime_name(lab_id, node))
        if info is not None and _is_ours(info.get("Config", {}).get("Labels"), lab_id, node):
            return info
        rows = self.api.containers(
            all=True, filters={"label": [f"{names.LABEL_LAB}={lab_id}", f"{names.LABEL_NODE}={node}"]}
        )
        for row in rows:
            found = self._inspect(row["Id"])
            if found is not None and _is_ours(found.get("Config", {}).get("Labels"), lab_id, node):
                return found
        return info

    def _status(self, lab_id: str, node: str, info: dict[str, Any] | None) -> NodeStatus:
        name = (info or {}).get("Name", "").lstrip("/") or self.runtime_name(lab_id, node)
        labels = (info or {}).get("Config", {}).get("Labels") or {}
        if info is None or not _is_ours(labels, lab_id, node):
            return NodeStatus(
                lab_id, node, labels.get(names.LABEL_KIND, ""), self.name, NodeState.MISSING, name
            )
        state = NodeState.RUNNING if info["State"].get("Running") else NodeState.STOPPED
        return NodeStatus(lab_id, node, labels.get(names.LABEL_KIND, ""), self.name, state, name,
                          mgmt_ipv4=docker_labs.mgmt_address(info, names.LABEL_MGMT_IPV4),
                          mgmt_ipv6=docker_labs.mgmt_address(info, names.LABEL_MGMT_IPV6))

    @_docker_errors_named
    def node_status(self, lab_id: str, node_name: str) -> NodeStatus:
        return self._status(lab_id, node_name, self._find(lab_id, node_name))

    @_docker_errors_named
    def create_node(self, lab_id: str, node: Node, ends: list[LinkEnd]) -> NodeStatus:
        name = self.node_runtime_name(lab_id, node)
        existing = self._inspect(name)
        if (
            existing is not None
            and _is_ours(existing.get("Config", {}).get("Labels"), lab_id, node.name)
            and existing.get("State", {}).get("Status") == "created"
        ):
            # Created but never started: a create interrupted (deploy killed) before its
            # startup config was copied in and it started. It never ran: make it again.
            log.info("%s was never started (an interrupted create): made again", name)
            self._force_remove(existing["Id"])
            existing = self._inspect(name)
        if existing is None:
            existing = self._renamed(lab_id, node, name)
        if existing is not None:
            return self._reuse(lab_id, node, existing)
        self._check_image(node)
        self._ensure_mgmt_network(lab_id)
        spec = build_container_spec(lab_id, node, len(ends))
        made_dir = not spec.node_dir.exists()
        started = time.monotonic()
        try:
            self._prepare_files(node, spec)
            container_id = self._create(lab_id, node, spec)
        except Exception:
            if made_dir:
                shutil.rmtree(spec.node_dir, ignore_errors=True)
            raise
        if container_id is None:  # made meanwhile by a concurrent create of the same node
            return self._reuse(lab_id, node, self._inspect(name) or {})
        try:
            with self._engine.slot(measured=True, turn=Turn.FINISH):
                if spec.startup_config is not None and not spec.startup_config.in_bind:
                    self._put_file(container_id, spec.startup_config.container_path, node.startup_config or "")
                self.api.start(container_id)
        except Exception as err:
            self._force_remove(container_id)
            if made_dir:
                shutil.rmtree(spec.node_dir, ignore_errors=True)
            raise ProviderError(f"node {node.name}: cannot start container {name}: {_explain(err)}") from err
        log.info("created %s (%s) in %.2f s", name, node.image, time.monotonic() - started)
        return NodeStatus(lab_id, node.name, node.kind, self.name, NodeState.RUNNING, name)

    def _renamed(self, lab_id: str, node: Node, name: str) -> dict[str, Any] | None:
        """The node's container under another name (the topology's ``prefix`` changed since
        it was made), renamed to ``name``; None when the node has no container."""
        rows = self.api.containers(
            all=True, filters={"label": [f"{names.LABEL_LAB}={lab_id}", f"{names.LABEL_NODE}={node.name}"]}
        )
        if not rows:
            return None
        self.api.rename(rows[0]["Id"], name)
        log.info("%s: container renamed to %s (the topology's prefix changed)", node.name, name)
        return self._inspect(name)

    def _reuse(self, lab_id: str, node: Node, info: dict[str, Any]) -> NodeStatus:
        name = self.node_runtime_name(lab_id, node)
        labels = info.get("Config", {}).get("Labels") or {}
        if not _is_ours(labels, lab_id, node.name):
            raise ConflictError(
                f"node {node.name}: a container named {name} exists but is not Archetype's node "
                f"{node.name} of lab {lab_id} (labels {labels}); it is left alone: remove or rename it"
            )
        state = info.get("State", {})
        if not state.get("Running"):
            try:
                with self._engine.slot(measured=True, turn=Turn.FINISH):
                    self.api.start(name)
            except docker.errors.APIError as err:
                raise ProviderError(
                    f"node {node.name}: cannot start the existing container {name}: {_explain(err)}"
                ) from err
            log.info("started the existing container %s", name)
        elif state.get("Paused"):
            self.api.unpause(name)
        return NodeStatus(lab_id, node.name, node.kind, self.name, NodeState.RUNNING, name)

    def _check_image(self, node: Node) -> None:
        if node.image in self._images:
            return
        try:
            self.api.inspect_image(node.image)
        except docker.errors.NotFound:
            self._pull(node)
        with self._lock:
            self._images.add(node.image)

    def _pull(self, node: Node) -> None:
        """An image that is not on the host is pulled, as containerlab does; a registry that
        cannot be reached (or does not have it) is an error naming the image."""
        repository, tag = docker.utils.parse_repository_tag(node.image)
        log.info("node %s: image %s is not on this host: pulling it", node.name, node.image)
        try:
            self.api.pull(repository, tag=tag or "latest")
        except docker_labs.DOCKER_ERRORS as err:
            raise ImageNotFoundError(
                f"node {node.name}: image {node.image!r} is not on this host and cannot be pulled "
                f"({_explain(err)}); build or load it here (`docker load`, `docker import`, scripts/setup-host.sh "
                "for Archetype's own images)"
            ) from None
        log.info("node %s: pulled %s", node.name, node.image)

    def _ensure_mgmt_network(self, lab_id: str) -> MgmtPlan:
        """The lab's management network (made with a subnet of its own if the flow has not
        made it already: a node created on its own)."""
        with self._lock:
            if lab_id in self._mgmt_networks:
                return self._mgmt_networks[lab_id]
        return self.ensure_mgmt_network(lab_id, MgmtNetwork(), 1)

    @_docker_errors_named
    def ensure_mgmt_network(self, lab_id: str, wanted: MgmtNetwork, node_count: int) -> MgmtPlan:
        """The lab's management network (containers and VMs join it), made if missing."""
        plan = docker_mgmt.ensure_network(self.api, lab_id, wanted, node_count)
        with self._lock:
            self._mgmt_networks[lab_id] = plan
        return plan

    def _prepare_files(self, node: Node, spec: ContainerSpec) -> None:
        for folder in spec.host_dirs:
            folder.mkdir(parents=True, exist_ok=True)
        placement = spec.startup_config
        if placement is not None and placement.host_path is not None:
            placement.host_path.parent.mkdir(parents=True, exist_ok=True)
            placement.host_path.write_text(node.startup_config or "")

    def _create(self, lab_id: str, node: Node, spec: ContainerSpec) -> str | None:
        """Create the container; None if another caller created it first."""
        try:
            host_config = self.api.create_host_config(**spec.host)
            host_config.update(spec.host_extra)
            with self._engine.slot(measured=True, turn=Turn.CREATE):
                return self.api.create_container(host_config=host_config, **spec.create)["Id"]
        except docker.errors.ImageNotFound:
            with self._lock:
                self._images.discard(node.image)
            raise ImageNotFoundError(f"node {node.name}: image {node.image!r} is not on this host") from None
        except docker.errors.APIError as err:
            if err.status_code == 409:
                return None
            raise ProviderError(f"node {node.name}: cannot create {spec.name}: {_explain(err)}") from err

    def _put_file(self, container_id: str, path: str, text: str) -> None:
        target = PurePosixPath(path)
        data = text.encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(target.name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        self.api.put_archive(container_id, str(target.parent), buffer.getvalue())

    @_docker_errors_named
    def wire_node(self, lab_id: str, node: Node, ends: list[LinkEnd], *, carrier: bool = True,
                  macs: dict[str, str] | None = None) -> None:
        """The management NIC and the link ends (``network.attach_container_ends``: ``carrier``
        and ``macs`` as there)."""
        name = self.node_runtime_name(lab_id, node)
        info = self._inspect(name)
        if info is not None and _is_ours(info.get("Config", {}).get("Labels"), lab_id, node.name) \
                and not info["State"].get("Running"):
            # Stopped since its create (dockerd was restarted meanwhile): started again, as
            # create does with an existing container; the retry of this step then wires it.
            log.info("%s stopped after it was created (%s): starting it again", name, info["State"].get("Status"))
            self._reuse(lab_id, node, info)
            info = self._inspect(name)
        if info is None or not _is_ours(info.get("Config", {}).get("Labels"), lab_id, node.name):
            raise ProviderError(f"node {node.name}: no container {name} of lab {lab_id} to wire")
        pid = info["State"].get("Pid") or 0
        if not info["State"].get("Running") or pid <= 0:
            raise ProviderError(
                f"node {node.name}: container {name} is not running ({info['State'].get('Status')})"
            )
        self._attach_mgmt(lab_id, node.name, info)
        if not ends:
            return
        runtime_names = [node.vendor.interfaces.runtime_name(end.port) for end in ends]
        # No separate ensure_bridge: the ports' transaction makes the bridge if it is missing.
        network.attach_container_ends(lab_id, node.name, pid, ends, runtime_names, carrier=carrier, macs=macs)

    @_docker_errors_named
    def interface_macs(self, lab_id: str, node_name: str) -> dict[str, str]:
        """The running container's interface addresses (runtime name -> MAC)."""
        info = self._ours(lab_id, node_name)
        pid = info["State"].get("Pid") or 0
        if pid <= 0:
            raise ProviderError(f"node {node_name}: container {info['Name'].lstrip('/')} is not running")
        return {name: mac for name, mac in network.inside_macs(pid, None).items() if name != "lo"}

    @_docker_errors_named
    def remove_node(self, lab_id: str, node_name: str) -> CleanupReport:
        report = CleanupReport()
        info = self._find(lab_id, node_name)
        if info is not None and _is_ours(info.get("Config", {}).get("Labels"), lab_id, node_name):
            name = info.get("Name", "").lstrip("/") or info["Id"][:12]
            docker_labs.remove_container(self.api, lab_id, info["Id"], name, report)
        self._remove_ports_of(lab_id, [node_name], report)
        workspace.remove_tree(
            names.node_dir(lab_id, node_name), report, f"node {node_name} of lab {lab_id}"
        )
        return report

    # -- a running lab's controls ------------------------------------------------------

    def _ours(self, lab_id: str, node_name: str) -> dict[str, Any]:
        """The node's container, by our name or by its labels (a containerlab ``prefix`` names
        it otherwise: netlab's ``clab-<lab>-<node>``)."""
        info = self._find(lab_id, node_name)
        if info is None or not _is_ours(info.get("Config", {}).get("Labels"), lab_id, node_name):
            raise ProviderError(f"node {node_name}: no container of lab {lab_id} (none named "
                                f"{self.runtime_name(lab_id, node_name)}, none labelled so)")
        return info

    @_docker_errors_named
    def stop_node(self, lab_id: str, node_name: str) -> None:
        """``docker stop`` (the image's stop signal, then SIGKILL after the kind's
        ``stop_timeout``): the container, its files and its config stay; its veths go with
        its network namespace and are made again by ``wire_node`` after ``start_node``."""
        info = self._ours(lab_id, node_name)
        if info["State"].get("Running"):
            kind = (info.get("Config", {}).get("Labels") or {}).get(names.LABEL_KIND, "")
            self.api.stop(info["Id"], timeout=self._stop_timeout(kind))
            log.info("stopped %s", info["Name"].lstrip("/"))

    @staticmethod
    def _stop_timeout(kind: str) -> int:
        from vendors import get_vendor

        try:
            vendor = get_vendor(kind)
        except Exception:  # noqa: BLE001 - a kind no longer in the catalog: docker's default
            return 10
        return vendor.container.stop_timeout if vendor.container else 10

    @_docker_errors_named
    def start_node(self, lab_id: str, node_name: str) -> None:
        info = self._ours(lab_id, node_name)
        if info["State"].get("Paused"):
            self.api.unpause(info["Id"])
        elif not info["State"].get("Running"):
            with self._engine.slot(measured=True, turn=Turn.FINISH):
                self.api.start(info["Id"])
            log.info("started %s", info["Name"].lstrip("/"))
            self._attach_mgmt(lab_id, node_name, self._ours(lab_id, node_name))

    def _attach_mgmt(self, lab_id: str, node_name: str, info: dict[str, Any]) -> None:
        """The container's management NIC (eth0 on the lab's bridge) with the addresses its
        labels keep; made again after a restart (a new network namespace)."""
        labels = info.get("Config", {}).get("Labels") or {}
        ipv4, ipv6 = labels.get(names.LABEL_MGMT_IPV4), labels.get(names.LABEL_MGMT_IPV6)
        pid = info["State"].get("Pid") or 0
        if not (ipv4 or ipv6) or pid <= 0:
            return
        plan = self._ensure_mgmt_network(lab_id)
        bridge = mgmt_bridges.Bridge(lab_id, plan.bridge, plan.network, plan.ipv4_subnet, plan.ipv4_gateway,
                                     plan.ipv6_subnet, plan.ipv6_gateway)
        mgmt_bridges.attach(lab_id, node_name, pid, bridge, ipv4, ipv6)

    def set_link_state(self, lab_id: str, node_name: str, port_name: str, up: bool) -> None:
        """The host veth up or down: its peer in the container loses carrier (``NO-CARRIER``)."""
        network.set_port_up(port_name, up)

    @_docker_errors_named
    def run_command(self, lab_id: str, node: NodeRef, argv: list[str], timeout: float) -> CommandResult:
        """argv through exec, no shell: the command's own exit status (None: timed out)."""
        return self._run(lab_id, node, list(argv), shlex.join(argv), timeout, output_level=logging.DEBUG)

    # -- readiness, commands, configs ------------------------------------------------

    @_docker_errors_named
    def wait_ready(self, lab_id: str, node: NodeRef, timeout: float | None = None) -> float:
        readiness = node.vendor.readiness
        seconds = wait_until_ready(
            self.api,
            node.name,
            self.node_runtime_name(lab_id, node),
            readiness,
            readiness.timeout if timeout is None else timeout,
            get_settings().command_timeout,
        )
        log.info("%s ready after %.2f s (%s)", node.name, seconds, readiness.method)
        if readiness.config_errors_file:
            # The lines the device refused while it applied the rest: the node stays ready and
            # carries them (kept on this host for `status`, as the post-boot task keeps a VM's).
            refused = self._config_errors(lab_id, node)
            for error in refused:
                log.warning("%s: startup-config line refused: %s", node.name, error.text())
            config_errors.save(lab_id, node.name, refused)
        return seconds

    def _config_errors(self, lab_id: str, node: NodeRef) -> list[ConfigError]:
        return device_config_errors(
            self.api, self.node_runtime_name(lab_id, node), node.vendor.readiness, get_settings().command_timeout
        )

    def _run(
        self,
        lab_id: str,
        node: NodeRef,
        argv: list[str],
        shown: str,
        timeout: float,
        *,
        output_level: int = logging.INFO,
    ) -> CommandResult:
        container = self.node_runtime_name(lab_id, node)
        try:
            outcome = run_exec(self.api, container, argv, timeout)
        except (ContainerMissingError, ContainerNotRunningError) as err:
            raise ProviderError(f"node {node.name}: cannot run {shown!r}: {err}") from err
        result = CommandResult(
            command=shown, exit_code=outcome.exit_code, output=outcome.output, seconds=outcome.seconds
        )
        log.info(
            "%s: %s -> %s in %.2f s",
            node.name,
            shown,
            "timed out" if result.exit_code is None else result.exit_code,
            result.seconds,
        )
        if result.output.strip():
            log.log(output_level, "%s: %s output:\n%s", node.name, shown, result.output.rstrip()[-4000:])
        return result

    @_docker_errors_named
    def run_post_boot(self, lab_id: str, node: Node, done: list[CommandResult] | None = None) -> list[CommandResult]:
        done = [] if done is None else done
        timeout = get_settings().command_timeout
        commands = node.post_boot_commands
        vendor_count = node.own_commands_from
        for index in range(len(done), len(commands)):
            shown = commands[index]
            # The vendor's commands are shell text for its image; the node's own ``exec`` is
            # split into argv (checked at validation) and never reaches a shell.
            argv = ["sh", "-c", shown] if index < vendor_count else shlex.split(shown)
            result = self._run(lab_id, node, argv, shown, timeout)
            if not result.ok:
                log.warning(
                    "%s: %s failed (%s): %s", node.name, shown, result.exit_code, result.output.strip()[-500:]
                )
                raise CommandError(node.name, shown, result.exit_code, result.output)
            done.append(result)
        if commands and len(done) == len(commands):
            # The startup-config lines the image's device refused, as refused results (the
            # post-boot task's config_errors), after the commands: a retry resumes by count.
            done.extend(
                CommandResult(command=error.line, exit_code=1, output=error.message, seconds=0.0)
                for error in self._config_errors(lab_id, node)
            )
        return done

    @_docker_errors_named
    def extract_config(self, lab_id: str, node: NodeRef) -> str:
        extraction = node.vendor.config_extraction
        if extraction.method is not ExtractionMethod.EXEC:
            raise ProviderError(
                f"node {node.name}: kind {node.kind} has no exec config extraction ({extraction.method})"
            )
        assert extraction.command is not None
        result = self._run(
            lab_id,
            node,
            ["sh", "-c", extraction.command],
            extraction.command,
            extraction.timeout,
            output_level=logging.DEBUG,
        )
        if not result.ok and extraction.fallback_command:
            fallback = extraction.fallback_command
            result = self._run(
                lab_id, node, ["sh", "-c", fallback], fallback, extraction.timeout, output_level=logging.DEBUG
            )
        if not result.ok:
            raise CommandError(node.name, result.command, result.exit_code, result.output)
        return extraction.without_preamble(result.output)

    @_docker_errors_named
    def save_config(self, lab_id: str, node: NodeRef) -> str:
        """The device keeps its running config (``write memory``...): its output."""
        save = node.vendor.config_save
        if save.method is not ConfigSaveMethod.EXEC or not save.command:
            raise ProviderError(f"node {node.name}: kind {node.kind} has no exec config save")
        result = self._run(lab_id, node, ["sh", "-c", save.command], save.command, save.timeout)
        if not result.ok or (save.success and not re.search(save.success, result.output)):
            raise CommandError(node.name, save.command, result.exit_code, result.output)
        return result.output

    # -- labs ------------------------------------------------------------------------

    @_docker_errors_named
    def discover_labs(self) -> list[DiscoveredLab]:
        return docker_labs.discover(self.api)

    def remove_lab_nodes(self, lab_id: str) -> CleanupReport:
        """The lab's containers (in parallel), their OVS ports and node files, and its
        management network. The lab's VLAN record and other ports stay (``providers.labs``)."""
        report = CleanupReport()
        with self._lock:
            self._mgmt_networks.pop(lab_id, None)
        try:
            api = self.api
        except ProviderError as err:
            report.errors.append(f"lab {lab_id}: cannot remove its containers and network: {err}")
            return report
        removed = docker_labs.remove_lab_containers(api, lab_id, report)
        docker_labs.remove_mgmt_networks(api, lab_id, report)  # a lab made before the bridge was ours
        docker_labs.remove_mgmt_bridge(lab_id, report)
        self._remove_ports_of(lab_id, removed, report)
        for node_name in removed:
            workspace.remove_tree(names.node_dir(lab_id, node_name), report, f"node {node_name} of lab {lab_id}")
        return report

    @staticmethod
    def _remove_ports_of(lab_id: str, node_names: list[str], report: CleanupReport) -> None:
        """The OVS ports of these nodes, in one transaction (their veths went with the
        containers' network namespaces)."""
        if not node_names:
            return
        try:
            ports = [
                p.name
                for p in network.bridge_ports().values()
                if p.lab_id == lab_id and p.external_ids.get(names.OVS_NODE_KEY) in node_names
            ]
            if ports:
                network.remove_ports(ports, lab_id=lab_id)
                for port in ports:
                    report.add("ovs-ports", port)
        except Exception as err:  # noqa: BLE001 - reported, the rest goes on
            report.errors.append(f"lab {lab_id}: cannot remove the OVS ports of {', '.join(node_names)}: {err!r}")

    def labs_with_resources(self) -> set[str]:
        return docker_labs.labs_with_resources(self.api)

    def _force_remove(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except docker.errors.APIError as err:
            log.warning("could not remove the failed container %s: %s", container_id[:12], _explain(err))
