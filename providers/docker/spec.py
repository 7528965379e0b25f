"""What a node's container looks like: docker create arguments from its vendor entry and
the node, as a pure function (no docker call, no file written), so it can be unit-tested.

The arguments are the docker SDK's low-level ones (``APIClient.create_container`` and
``APIClient.create_host_config``): the high-level ``containers.create`` inspects the
container it just made, a call we do not need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from lab import names
from lab.errors import CatalogError, ProviderError
from lab.settings import get_settings
from providers import limits
from topology import Node
from vendors.model import DEFAULT_CAP_ADD

# containerlab sets it; cEOS' entrypoint waits until that many data interfaces exist.
INTERFACE_COUNT_ENV = "CLAB_INTFS"
STARTUP_CONFIG_FILE = "startup-config"


@dataclass(frozen=True)
class StartupConfigPlacement:
    """Where a node's startup config goes: a host file inside one of the container's binds
    (written before the container starts), or a file copied into the container's own
    filesystem (``put_archive``) between create and start."""

    container_path: str
    host_path: Path | None = None  # set: write here (the path is inside a bind)

    @property
    def in_bind(self) -> bool:
        return self.host_path is not None


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    create: dict[str, Any]  # APIClient.create_container keyword arguments (but host_config)
    host: dict[str, Any]  # APIClient.create_host_config keyword arguments
    host_extra: dict[str, Any] = field(default_factory=dict)  # raw HostConfig keys added to it
    host_dirs: tuple[Path, ...] = ()  # folders the vendor binds: made before create
    startup_config: StartupConfigPlacement | None = None
    node_dir: Path = field(default_factory=Path)


def expand_placeholders(text: str, lab_id: str, node: str) -> str:
    """``{workspace}``, ``{lab}``, ``{node}`` and ``{node_dir}`` as lab.names gives them."""
    return (
        text.replace("{node_dir}", str(names.node_dir(lab_id, node)))
        .replace("{workspace}", str(names.workspace()))
        .replace("{lab}", lab_id)
        .replace("{node}", node)
    )


def _split_bind(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) == 2:
        return parts[0], parts[1], "rw"
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        return parts[0], parts[1], parts[2]
    raise CatalogError(f"bad vendor bind {spec!r}: expected 'host:container[:ro|rw]'")


def _place_startup_config(container_path: str, binds: list[tuple[str, str, str]]) -> StartupConfigPlacement:
    """Inside a writable bind: the host file; anywhere else: copied in before start."""
    target = PurePosixPath(container_path)
    for host, inside, mode in binds:
        root = PurePosixPath(inside)
        if mode == "rw" and target != root and target.is_relative_to(root):
            return StartupConfigPlacement(container_path, Path(host) / target.relative_to(root))
    return StartupConfigPlacement(container_path)


def _workspace_dirs(binds: list[tuple[str, str, str]]) -> tuple[Path, ...]:
    """Host folders of vendor binds that live in the workspace (made on demand); a host
    path outside it (``/lib/modules``) is the host's own and is never created."""
    root = names.workspace()
    return tuple(Path(h) for h, _, _ in binds if Path(h).is_relative_to(root))


# dockerd's default read-only paths (moby oci/defaults.go), /proc/sys among them.
DOCKER_READONLY_PATHS = ("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# The trees under /proc/sys. Only net.* is per network namespace: the others are the host's
# own (kernel.*, vm.*, fs.*, ...) and stay read-only whatever a kind asks.
PROC_SYS_TREES = ("abi", "crypto", "debug", "dev", "fs", "kernel", "net", "sunrpc", "user", "vm")
NAMESPACED_SYSCTL_TREES = frozenset({"net"})


def readonly_paths(writable_sysctls: list[str]) -> list[str]:
    """dockerd's read-only paths with /proc/sys replaced by its trees, less the namespaced
    trees a kind may write (``net``): ``sysctl -w net.ipv4.ip_forward=1`` then works in the
    container's own namespace, without privileged mode, and the host's sysctls stay read-only."""
    writable = set(writable_sysctls) & NAMESPACED_SYSCTL_TREES
    paths = [p for p in DOCKER_READONLY_PATHS if p != "/proc/sys"]
    return paths + [f"/proc/sys/{tree}" for tree in PROC_SYS_TREES if tree not in writable]


def cpu_limit(cpus: int | None, host_cpus: int | None = None) -> int:
    """NanoCPUs for a cpu count, capped at the host's cores (docker refuses more)."""
    wanted = max(1, cpus or 1)
    return min(wanted, host_cpus or limits.host_cpus()) * 1_000_000_000


def build_container_spec(
    lab_id: str,
    node: Node,
    interface_count: int,
    *,
    host_cpus: int | None = None,
) -> ContainerSpec:
    """The container for ``node`` of ``lab_id``, with ``interface_count`` data interfaces to come."""
    vendor = node.vendor
    options = vendor.container
    if options is None:
        raise ProviderError(f"node {node.name}: kind {vendor.kind} is not a container kind")
    name = names.container_name(lab_id, node.name, node.name_prefix)

    vendor_binds = [_split_bind(expand_placeholders(b, lab_id, node.name)) for b in options.binds]
    node_binds = [(str(b.host), b.container, b.mode) for b in node.binds]
    binds = vendor_binds + node_binds
    startup = None
    if node.startup_config is not None and options.startup_config_path:
        startup = _place_startup_config(options.startup_config_path, binds)

    labels = {**node.labels, **names.container_labels(lab_id, node.name, vendor.kind)}
    env = {**options.env, **node.env, INTERFACE_COUNT_ENV: str(interface_count)}
    create: dict[str, Any] = {
        "image": node.image,
        "name": name,
        "hostname": node.name,
        "labels": labels,
        "environment": env,
        "detach": True,
        "stop_timeout": options.stop_timeout,
    }
    # The management NIC is our veth on the lab's bridge (providers.network.mgmt), made once
    # the container runs: its addresses are ours (topology.mgmt), kept in labels for discovery.
    for label, address in ((names.LABEL_MGMT_IPV4, node.mgmt_ipv4), (names.LABEL_MGMT_IPV6, node.mgmt_ipv6)):
        if address:
            labels[label] = address
    if options.entrypoint is not None:
        create["entrypoint"] = list(options.entrypoint)
    if options.cmd is not None:
        create["command"] = list(options.cmd)

    trusted = options.trusts(node.image, get_settings().trusted_images.get(vendor.kind, []))
    host: dict[str, Any] = {
        "binds": [f"{h}:{c}:{m}" for h, c, m in binds],
        # A kind's broad capabilities only for its catalog images (DESIGN.md, Security).
        "cap_add": list(options.cap_add if trusted else DEFAULT_CAP_ADD) or None,
        "cap_drop": list(options.cap_drop) or None,
        "security_opt": (list(options.security_opt) if trusted else []) or None,
        "sysctls": dict(options.sysctls) or None,
        "tmpfs": dict(options.tmpfs) or None,
        "mem_limit": f"{node.memory_mb or vendor.memory_mb}m",
        "nano_cpus": cpu_limit(node.cpus or vendor.cpus, host_cpus),
        "restart_policy": {"Name": node.restart_policy or "no"},
        "network_mode": "none",  # no docker network: no libnetwork work per node (moby#42119)
        "privileged": False,  # never: capabilities come from the vendor entry (DESIGN, Security)
    }
    host = {k: v for k, v in host.items() if v is not None}
    if options.writable_sysctls:
        # Engine API HostConfig keys the SDK's create_host_config does not take: the provider
        # adds them to the host config it builds (like `docker run --security-opt
        # systempaths=unconfined`, but only for the sysctl trees the kind may write).
        host_extra = {"ReadonlyPaths": readonly_paths(options.writable_sysctls)}
    else:
        host_extra = {}
    return ContainerSpec(
        name=name,
        image=node.image,
        create=create,
        host=host,
        host_extra=host_extra,
        host_dirs=_workspace_dirs(vendor_binds),
        startup_config=startup,
        node_dir=names.node_dir(lab_id, node.name),
    )
