"""The topology: a containerlab-compatible YAML document, parsed raw then resolved.

``load_topology`` reads a file (or YAML text), collects *every* problem with its place
(``topology.nodes.r1.kind: unknown kind 'foo'``) and either returns a resolved ``Lab``
or raises one ``TopologyError`` listing them all. Nothing here touches the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab import names
from lab.errors import TopologyError
from lab.settings import get_settings
from topology import mgmt as mgmt_fields
from topology import node_fields
from topology.mgmt import MgmtNetwork
from topology.node_fields import Bind
from topology.paths import Folders, forbidden_topology_file
from topology.problems import Problems
from vendors import VendorConfig, catalog, get_vendor
from vendors.model import DEFAULT_CAP_ADD

# containerlab node fields that Archetype reads but does not use: a warning, not an error.
IGNORED_NODE_FIELDS = frozenset(
    {
        "type", "license", "ports", "publish",
        "cmd", "entrypoint", "user", "network-mode", "enforce-startup-config", "suppress-startup-config",
        "auto-remove", "runtime", "sandbox", "kernel", "stages", "certificate", "dns", "healthcheck",
        "image-pull-policy", "wait-for", "config", "components", "aliases", "restart-policy",
        "mac-address", "startup-delay", "cpu-set", "shm-size", "devices", "sysctls", "env-files",
        "memory-reservation", "ipv4", "ipv6", "extras", "position",
    }
)
NODE_FIELDS = frozenset(
    {"kind", "image", "startup-config", "env", "binds", "exec", "labels", "memory", "cpus", "group",
     "mgmt-ipv4", "mgmt-ipv6", "mgmt_ipv4", "mgmt_ipv6"}
)
# extras keys we honour (vendor `extras_env`) are read before the rest of `extras` is ignored.
IGNORED_TOP_FIELDS = frozenset({"prefix", "settings", "debug"})
IGNORED_LINK_FIELDS = frozenset({"mtu", "vars", "labels", "type"})


@dataclass(frozen=True)
class Endpoint:
    node: str
    interface: str  # as the user wrote it
    port: int  # data port number (1-based) per the vendor's naming

    def __str__(self) -> str:
        return f"{self.node}:{self.interface}"


@dataclass(frozen=True)
class Link:
    index: int
    a: Endpoint
    b: Endpoint

    @property
    def id(self) -> str:
        return names.link_id(str(self.a), str(self.b))

    @property
    def endpoints(self) -> tuple[Endpoint, Endpoint]:
        return (self.a, self.b)


@dataclass(frozen=True)
class NodeRef:
    """A node as a provider reaches it once it exists: its name and its vendor entry.
    What discovery gives back (``NodeStatus.ref()``), and what every provider call that
    needs no topology field takes (readiness, extraction, a session)."""

    name: str
    vendor: VendorConfig

    @property
    def kind(self) -> str:
        """The catalog's canonical kind."""
        return self.vendor.kind

    @classmethod
    def of(cls, name: str, kind: str) -> NodeRef:
        """The reference of node ``name`` of kind (or alias) ``kind``; ``CatalogError`` on
        an unknown kind."""
        return cls(name=name, vendor=get_vendor(kind))


@dataclass(frozen=True)
class Node(NodeRef):
    """A resolved node: its vendor entry is looked up once, at resolution."""

    image: str
    startup_config: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    binds: tuple[Bind, ...] = ()
    # Extra post-boot commands, as written. Each provider turns them into its own form: argv
    # for a container (split shell-style, never run by a shell), console lines for a VM.
    exec: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    memory_mb: int | None = None
    cpus: int | None = None
    # Management addresses: static ones from the topology; every node has one once the
    # lab's subnet is known (``topology.mgmt.assign``, at deploy).
    mgmt_ipv4: str | None = None
    mgmt_ipv6: str | None = None
    mgmt_prefixlen: int | None = None  # of mgmt_ipv4, set with it by ``topology.mgmt.assign``

    @classmethod
    def of(cls, name: str, kind: str, *, image: str | None = None, **fields: Any) -> Node:  # type: ignore[override]
        """A node built in code (tests, tools): the kind is looked up once, the image
        defaults to the vendor's."""
        vendor = get_vendor(kind)
        return cls(name=name, vendor=vendor, image=image or vendor.default_image, **fields)

    @property
    def ref(self) -> NodeRef:
        return NodeRef(name=self.name, vendor=self.vendor)

    @property
    def post_boot_commands(self) -> list[str]:
        """Everything post-boot runs on the node, in order: a VM's startup-config typed in
        over its console (day 0), its management address (console lines from the catalog),
        the vendor's commands, then the node's own ``exec`` (each provider gives them its
        own form)."""
        return [*self.vendor.startup_config_commands(self.startup_config), *self.management_lines,
                *self.vendor.post_boot_commands, *self.exec]

    @property
    def own_commands_from(self) -> int:
        """Where the node's own ``exec`` starts in ``post_boot_commands``."""
        return len(self.post_boot_commands) - len(self.exec)

    @property
    def management_lines(self) -> list[str]:
        """Console lines that give a VM its management address (from the catalog), when it
        has one and its management NIC is on the lab's network; none for containers (docker
        gives them theirs)."""
        vendor, vm = self.vendor, self.vendor.vm
        if not (self.mgmt_ipv4 and self.mgmt_prefixlen and vm and vm.management_network == "lab"
                and vendor.interfaces.management_nic):
            return []
        return vendor.management.render(self.mgmt_ipv4, self.mgmt_prefixlen, vendor.interfaces.management)


@dataclass(frozen=True)
class Lab:
    id: str
    nodes: dict[str, Node]
    links: tuple[Link, ...]
    source_dir: Path
    warnings: tuple[str, ...] = ()
    mgmt: MgmtNetwork = field(default_factory=MgmtNetwork)
    host_paths: tuple[Path, ...] = ()  # every host file or folder the lab reads or binds

    def links_of(self, node: str) -> list[tuple[Link, Endpoint]]:
        """The node's link ends, in port order."""
        ends = [(link, end) for link in self.links for end in link.endpoints if end.node == node]
        return sorted(ends, key=lambda pair: pair[1].port)


def load_topology(source: str | Path, *, base_dir: Path | None = None) -> Lab:
    """Parse and validate a topology given as a file path or as YAML text.

    A ``str`` holding a newline is taken as YAML text; otherwise as a path. The paths in a
    file resolve in the file's folder; in YAML text, in the lab's files folder in the
    workspace (or ``base_dir`` when given: the caller vouches for that folder).
    """
    text, base = _read_source(source, base_dir)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise TopologyError([_yaml_error(err)]) from None
    return resolve(document, base)


def _read_source(source: str | Path, base_dir: Path | None) -> tuple[str, Path | None]:
    if isinstance(source, str) and "\n" in source:
        return source, base_dir  # never the working directory (DESIGN.md, Security)
    path = Path(source)
    _check_topology_path(path)  # before it is opened: a flow parameter is untrusted input
    try:
        return path.read_text(), (base_dir or path.parent).resolve()
    except (OSError, UnicodeDecodeError) as err:
        raise TopologyError([f"{path}: cannot read the topology file ({err.__class__.__name__}: {err})"]) from None


def _check_topology_path(path: Path) -> None:
    resolved = path.resolve()
    reason = forbidden_topology_file(resolved)
    if reason is not None:
        raise TopologyError([f"topology: {str(path)!r} resolves to {resolved}, {reason}"])


def _yaml_error(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    return f"YAML syntax error: {problem}"


def resolve(document: Any, base_dir: Path | None) -> Lab:
    """Validate a parsed document against the catalog and resolve it into a ``Lab``.
    ``base_dir``: the topology's folder; None for YAML text (the lab's files folder)."""
    problems = Problems()
    if not isinstance(document, dict):
        raise TopologyError(["the topology must be a mapping with 'name' and 'topology'"])
    lab_id = _check_top(document, problems)
    topo = document.get("topology")
    if not isinstance(topo, dict):
        problems.error("topology", "missing or not a mapping")
        raise TopologyError(problems.errors)
    _check_keys(topo, "topology", {"defaults", "kinds", "groups", "nodes", "links"}, frozenset(), problems)
    defaults = _mapping(topo, "defaults", "topology", problems)
    kinds = _mapping(topo, "kinds", "topology", problems)
    groups = _mapping(topo, "groups", "topology", problems)
    raw_nodes = _mapping(topo, "nodes", "topology", problems)
    if not raw_nodes:
        problems.error("topology.nodes", "the topology has no nodes")

    folders = Folders.of_file(base_dir) if base_dir is not None else Folders.of_text(lab_id)
    nodes: dict[str, Node] = {}
    for name, raw in raw_nodes.items():
        node = _resolve_node(str(name), raw, defaults, kinds, groups, folders, problems, catalog())
        if node is not None:
            nodes[node.name] = node
    for section, entries in (("kinds", kinds), ("groups", groups)):
        for key, value in entries.items():
            _check_node_fields(value, f"topology.{section}.{key}", problems)
    _check_node_fields(defaults, "topology.defaults", problems)
    for kind_name in kinds:
        if kind_name not in catalog():
            problems.error(f"topology.kinds.{kind_name}", f"unknown kind {kind_name!r}")

    links = _resolve_links(topo.get("links"), raw_nodes, nodes, problems)
    mgmt = mgmt_fields.parse_mgmt(document.get("mgmt"), problems)
    mgmt_fields.check_node_addresses(mgmt, nodes, problems)
    if problems.errors:
        raise TopologyError(problems.errors)
    return Lab(id=lab_id, nodes=nodes, links=tuple(links), source_dir=folders.base, warnings=tuple(problems.warnings),
               host_paths=tuple(folders.used), mgmt=mgmt)


def _check_top(document: dict[str, Any], problems: Problems) -> str:
    _check_keys(document, "", {"name", "topology", "mgmt"}, IGNORED_TOP_FIELDS, problems)
    lab_id = document.get("name")
    if not isinstance(lab_id, str) or not names.is_valid_lab_id(lab_id):
        problems.error(
            "name",
            f"invalid lab id {lab_id!r}: lowercase letters, digits and dashes, starting with a letter, "
            "at most 20 characters",
        )
        return str(lab_id)
    return lab_id


def _check_keys(
    mapping: dict[str, Any], where: str, known: set[str] | frozenset[str], ignored: frozenset[str], problems: Problems
) -> None:
    for key in mapping:
        place = f"{where}.{key}" if where else str(key)
        if key in ignored:
            problems.warn(place, "containerlab field not used by Archetype, ignored")
        elif key not in known:
            problems.error(place, f"unknown field {key!r}")


def _mapping(parent: dict[str, Any], key: str, where: str, problems: Problems) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.error(f"{where}.{key}", "must be a mapping")
        return {}
    return value


def _check_node_fields(fields: Any, where: str, problems: Problems) -> None:
    if not isinstance(fields, dict):
        problems.error(where, "must be a mapping of node fields")
        return
    _check_keys(fields, where, NODE_FIELDS, IGNORED_NODE_FIELDS, problems)


def _layers(raw: dict[str, Any], defaults: dict, kinds: dict, groups: dict) -> list[dict[str, Any]]:
    """Field layers from least to most specific: defaults, kinds, group, node."""
    group = raw.get("group", defaults.get("group"))
    group_fields = groups.get(group, {}) if isinstance(group, str) else {}
    kind = raw.get("kind") or (group_fields or {}).get("kind") or defaults.get("kind")
    kind_fields = kinds.get(kind, {}) if isinstance(kind, str) else {}
    return [d for d in (defaults, kind_fields, group_fields, raw) if isinstance(d, dict)]


def _merged(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Scalars: the most specific wins. env/labels: merged. binds: concatenated."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in ("env", "labels") and isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            elif key == "binds" and isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = [*merged[key], *value]
            else:
                merged[key] = value
    return merged


def _resolve_node(
    name: str, raw: Any, defaults: dict, kinds: dict, groups: dict, folders: Folders, problems: Problems, known: Any,
) -> Node | None:
    where = f"topology.nodes.{name}"
    if not names.is_valid_node_name(name):
        problems.error(where, "invalid node name: letters, digits, '_' and '-', at most 30 characters")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.error(where, "must be a mapping of node fields")
        return None
    _check_node_fields(raw, where, problems)
    group = raw.get("group")
    if group is not None and group not in groups:
        problems.error(f"{where}.group", f"unknown group {group!r}")
    fields = _merged(_layers(raw, defaults, kinds, groups))
    kind_name = fields.get("kind")
    if not kind_name:
        problems.error(f"{where}.kind", "no kind given (in the node, its group or the defaults)")
        return None
    vendor = known.find(str(kind_name))
    if vendor is None:
        problems.error(f"{where}.kind", f"unknown kind {kind_name!r} (known: {', '.join(v.kind for v in known.kinds())})")
        return None
    if fields.get("startup-config") is not None and vendor.startup_config_refusal:
        problems.error(f"{where}.startup-config", vendor.startup_config_refusal)
    env = node_fields.string_map(fields.get("env"), f"{where}.env", problems)
    env.update(node_fields.honoured_extras(raw.get("extras"), vendor, where, problems))
    image = str(fields.get("image") or vendor.default_image)
    _warn_untrusted_image(vendor, image, where, problems)
    node = Node(
        name=name,
        vendor=vendor,
        image=image,
        startup_config=node_fields.startup_config(fields.get("startup-config"), f"{where}.startup-config", folders, problems),
        env=env,
        binds=node_fields.binds(fields.get("binds"), f"{where}.binds", vendor, folders, problems),
        exec=node_fields.exec(fields.get("exec"), f"{where}.exec", vendor, problems),
        labels=node_fields.string_map(fields.get("labels"), f"{where}.labels", problems),
        memory_mb=node_fields.memory(fields.get("memory"), f"{where}.memory", problems),
        cpus=node_fields.positive_int(fields.get("cpus"), f"{where}.cpus", problems),
        mgmt_ipv4=mgmt_fields.node_address(_dashed(fields, "mgmt-ipv4"), 4, f"{where}.mgmt-ipv4", problems),
        mgmt_ipv6=mgmt_fields.node_address(_dashed(fields, "mgmt-ipv6"), 6, f"{where}.mgmt-ipv6", problems),
    )
    return node  # even with field errors: its links are still checked


def _dashed(fields: dict[str, Any], key: str) -> Any:
    """containerlab accepts both ``mgmt-ipv4`` and ``mgmt_ipv4``."""
    return fields.get(key, fields.get(key.replace("-", "_")))


def _warn_untrusted_image(vendor: VendorConfig, image: str, where: str, problems: Problems) -> None:
    options = vendor.container
    if options is None or not options.broad:
        return
    extra = get_settings().trusted_images.get(vendor.kind, [])
    if not options.trusts(image, extra):
        problems.warn(
            f"{where}.image",
            f"{image!r} is not one of kind {vendor.kind}'s catalog images ({', '.join(options.image_patterns(extra))}): "
            f"it runs with the default capabilities ({', '.join(DEFAULT_CAP_ADD)}), not {', '.join(options.cap_add)}"
            f"{' with ' + ', '.join(options.security_opt) if options.security_opt else ''}; "
            f"ARCHETYPE_TRUSTED_IMAGES__{vendor.kind} adds images",
        )


def _resolve_links(raw_links: Any, raw_nodes: dict, nodes: dict[str, Node], problems: Problems) -> list[Link]:
    if raw_links is None:
        return []
    if not isinstance(raw_links, list):
        problems.error("topology.links", "must be a list")
        return []
    used: dict[tuple[str, int], int] = {}
    links = []
    for i, raw in enumerate(raw_links):
        where = f"links[{i}]"
        if not isinstance(raw, dict) or "endpoints" not in raw:
            problems.error(where, "must be a mapping with 'endpoints: [\"node:iface\", \"node:iface\"]'")
            continue
        _check_keys(raw, where, {"endpoints"}, IGNORED_LINK_FIELDS, problems)
        ends = raw["endpoints"]
        if not isinstance(ends, list) or len(ends) != 2:
            problems.error(f"{where}.endpoints", "must list exactly two 'node:interface' endpoints")
            continue
        resolved = [_endpoint(e, f"{where}.endpoints[{j}]", raw_nodes, nodes, problems) for j, e in enumerate(ends)]
        if None in resolved:
            continue
        a, b = resolved
        if a.node == b.node:
            problems.error(where, f"self-loop: both ends are on node {a.node}")
            continue
        clash = False
        for end in (a, b):
            key = (end.node, end.port)
            if key in used:
                problems.error(where, f"interface {end} is already used by links[{used[key]}]")
                clash = True
            else:
                used[key] = i
        if not clash:
            links.append(Link(index=i, a=a, b=b))
    return links


def _endpoint(value: Any, where: str, raw_nodes: dict, nodes: dict[str, Node], problems: Problems) -> Endpoint | None:
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        problems.error(where, f"bad endpoint {value!r}: expected 'node:interface'")
        return None
    node_name, interface = value.split(":")
    if node_name not in raw_nodes:
        problems.error(where, f"link to unknown node {node_name!r}")
        return None
    node = nodes.get(node_name)
    if node is None:
        return None  # the node's own problems are already reported
    naming = node.vendor.interfaces
    port = naming.port_of(interface)
    if port is None:
        problems.error(where, f"{node.kind} node {node_name} has no interface {interface!r} (expected e.g. {naming.examples()})")
        return None
    if port > naming.max_ports:
        problems.error(where, f"{node.kind} node {node_name} has at most {naming.max_ports} data ports; {interface!r} is beyond")
        return None
    return Endpoint(node=node_name, interface=interface, port=port)
