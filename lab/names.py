"""Every name, label, marker and path Archetype gives to what it creates: one place.

Discovery and cleanup trust these markers, never a name prefix alone, and never split a
runtime name to recover a lab id (lab ids contain dashes).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lab.settings import get_settings

LAB_ID_PATTERN = r"^[a-z][a-z0-9-]{0,19}$"
NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,29}$"
LAB_ID_RE = re.compile(LAB_ID_PATTERN)
NODE_NAME_RE = re.compile(NODE_NAME_PATTERN)

# Docker
LABEL_LAB = "archetype.lab_id"
LABEL_NODE = "archetype.node_name"
LABEL_KIND = "archetype.kind"
LABEL_PROVIDER = "archetype.provider"
# A container's management addresses (its eth0 is our veth on the lab's management bridge, not
# a docker network: discovery reads them here).
LABEL_MGMT_IPV4 = "archetype.mgmt_ipv4"
LABEL_MGMT_IPV6 = "archetype.mgmt_ipv6"

# libvirt
METADATA_NS = "https://archetype.dev/xmlns/node/1"
METADATA_PREFIX = "archetype"

# OVS external_ids on every port we add
OVS_LAB_KEY = "archetype-lab"
OVS_LINK_KEY = "archetype-link"
OVS_NODE_KEY = "archetype-node"

# Host-side interface names are at most 15 characters (IFNAMSIZ - 1).
VETH_PREFIX = "arv"
TAP_PREFIX = "art"
VXLAN_PREFIX = "arx"

# Hosts of a fleet: `host:` values, deployment names `<flow>/<host>`, Prefect variable keys.
HOST_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,30}$"
HOST_NAME_RE = re.compile(HOST_NAME_PATTERN)


def is_valid_lab_id(lab_id: str) -> bool:
    return bool(LAB_ID_RE.match(lab_id))


def is_valid_node_name(name: str) -> bool:
    return bool(NODE_NAME_RE.match(name))


HOST_IFNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")


def is_valid_host_ifname(name: str) -> bool:
    """A name Linux accepts for an interface (at most 15 characters), without ':' or '/'."""
    return bool(HOST_IFNAME_RE.match(name))


def container_name(lab_id: str, node: str, prefix: str | None = None) -> str:
    """A node's container name. ``prefix`` is containerlab's top-level ``prefix``, honoured
    as containerlab does so that tools that address containers by name (netlab, scripts)
    find them: ``None`` (no prefix line) gives our own ``archetype-<lab>-<node>``, ``"clab"``
    gives ``clab-<lab>-<node>``, ``""`` the bare node name. Identity stays the labels: a
    name is never how we recognise a container."""
    if prefix is None:
        return f"archetype-{lab_id}-{node}"
    return f"{prefix}-{lab_id}-{node}" if prefix else node


def container_prefix(runtime_name: str, lab_id: str, node: str) -> str | None:
    """The ``prefix`` a container name was made with (``container_name`` read back): None for
    our own ``archetype-<lab>-<node>`` (and for a name no prefix gives)."""
    suffix = f"-{lab_id}-{node}"
    if runtime_name == node:
        return ""
    if runtime_name.endswith(suffix) and runtime_name != f"archetype{suffix}":
        return runtime_name.removesuffix(suffix) or None
    return None


def domain_name(lab_id: str, node: str) -> str:
    return f"arch-{lab_id}-{node}"


def mgmt_network_name(lab_id: str) -> str:
    return f"archetype-{lab_id}-mgmt"


def mgmt_bridge_name(lab_id: str) -> str:
    """The Linux bridge of the lab's management network (VM management NICs join it by
    name): ``arm`` + a hash, 15 characters, so that no lab id is too long for it."""
    return "arm" + _short_hash("mgmt", lab_id, length=12)


def container_labels(lab_id: str, node: str, kind: str) -> dict[str, str]:
    return {LABEL_LAB: lab_id, LABEL_NODE: node, LABEL_KIND: kind, LABEL_PROVIDER: "docker"}


def _short_hash(*parts: str, length: int) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:length]


def host_port_name(lab_id: str, node: str, interface: str, *, prefix: str = VETH_PREFIX) -> str:
    """Deterministic host-side port name (veth host end or VM tap), 15 characters at most.

    Deterministic so that a redeploy finds the port it made before.
    """
    return prefix + _short_hash(lab_id, node, interface, length=15 - len(prefix))


def is_valid_host_name(name: str) -> bool:
    return bool(HOST_NAME_RE.match(name))


def vxlan_device_name(lab_id: str, link: str) -> str:
    """The kernel VXLAN device of a cross-host link on one end host (15 characters)."""
    return VXLAN_PREFIX + _short_hash(lab_id, link, length=15 - len(VXLAN_PREFIX))


def host_facts_variable(host: str) -> str:
    """The Prefect variable where a host publishes its facts (name, address, capacity, ...)."""
    return f"archetype-host-{host}"


def host_report_key(lab_id: str, step: str, host: str) -> str:
    """The artifact where a host's step of a multi-host run leaves its result (a child's
    return value would need result storage shared by the hosts)."""
    return f"lab-{lab_id}-{step}-on-{artifact_slug(host)}"


def slice_state_key(lab_id: str, host: str) -> str:
    """A host's own record of its slice of a multi-host lab (its recovery memory; not
    ``lab-*-state``, which is the coordinator's record of the whole lab)."""
    return f"lab-{lab_id}-slice-on-{artifact_slug(host)}"


# The pseudo node of containerlab's ``host:IF`` endpoints: a veth named IF in the host's
# namespace. A topology may not name a node so.
HOST_NODE = "host"


def segment_link_id(segment: str) -> str:
    """Id of a multi-access segment (containerlab's ``bridge``/``ovs-bridge`` node): one
    VLAN for every end on it. Never contains ``--``, unlike a point-to-point link id."""
    return f"segment:{segment}"


def is_segment_link(link: str) -> bool:
    return link.startswith("segment:")


def link_id(a: str, b: str) -> str:
    """Stable id of a link from its two ``node:interface`` endpoints, order-independent."""
    first, second = sorted((a, b))
    return f"{first}--{second}"


def artifact_slug(text: str) -> str:
    """Prefect artifact keys allow only ``[a-z0-9-]``."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def state_artifact_key(lab_id: str) -> str:
    return f"lab-{lab_id}-state"


def picture_artifact_key(lab_id: str) -> str:
    return f"lab-{lab_id}-picture"


def progress_artifact_key(lab_id: str) -> str:
    return f"lab-{lab_id}-progress"


def config_artifact_key(lab_id: str, node: str) -> str:
    return f"lab-{lab_id}-config-{artifact_slug(node)}"


# Workspace layout -------------------------------------------------------------------


def workspace() -> Path:
    return get_settings().workspace


def disks_dir(lab_id: str) -> Path:
    return workspace() / "disks" / lab_id


def data_dir(lab_id: str) -> Path:
    return workspace() / "data" / lab_id


def configs_dir(lab_id: str) -> Path:
    return configs_root() / lab_id


def node_dir(lab_id: str, node: str) -> Path:
    """Per-node files a container binds (startup config, flash, ...)."""
    return workspace() / "labs" / lab_id / node


def lab_files_root() -> Path:
    """Where people put a lab's own files (configs it binds or loads) before running it
    from the UI or the REST API: ``files/<lab>/``. The only workspace folder a topology's
    paths may use."""
    return workspace() / "files"


def lab_files_dir(lab_id: str) -> Path:
    return lab_files_root() / lab_id


def slice_files_dir(lab_id: str) -> Path:
    """Files a multi-host deploy brought to this host for its nodes (what their binds name)."""
    return lab_files_dir(lab_id) / "_slice"


def configs_root() -> Path:
    """Everything extract-configs writes lives below this folder."""
    return workspace() / "configs"


def lab_dir(lab_id: str) -> Path:
    return workspace() / "labs" / lab_id


def vlan_records_dir() -> Path:
    """Host-local VLAN reservations, one JSON file per lab (guarded by the VLAN lock)."""
    return workspace() / "vlans"


def vlan_record_path(lab_id: str) -> Path:
    return vlan_records_dir() / f"{lab_id}.json"


def locks_dir() -> Path:
    return workspace() / "locks"


def vlan_lock_path() -> Path:
    return locks_dir() / "vlans.lock"


def console_lock_path(domain: str) -> Path:
    return locks_dir() / f"console-{domain}.lock"


def mgmt_subnet_lock_path() -> Path:
    """Host-wide: two labs choosing their management subnet at once never take the same one."""
    return locks_dir() / "mgmt-subnets.lock"


def engine_slots_dir(engine: str) -> Path:
    """Host-wide: one file per slot of an engine's bound on calls at once (providers.limits)."""
    return locks_dir() / f"engine-{engine}"


def lab_lock_path(lab_id: str) -> Path:
    return locks_dir() / f"lab-{lab_id}.lock"


def logs_dir(lab_id: str) -> Path:
    return workspace() / "logs" / lab_id


def serial_log_path(lab_id: str, node: str) -> Path:
    return logs_dir(lab_id) / f"{node}.serial.log"
