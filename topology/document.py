"""The topology: a containerlab-compatible YAML document, parsed raw then resolved.

``load_topology`` reads a file (or YAML text), collects *every* problem with its place
(``topology.nodes.r1.kind: unknown kind 'foo'``) and either returns a resolved ``Lab``
or raises one ``TopologyError`` listing them all. Nothing here touches the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from lab import names
from lab.errors import TopologyError
from lab.settings import get_settings
from topology import mgmt as mgmt_fields
from topology import node_fields, stages
from topology.checks import Check, NodeKinds, parse_checks
from topology.clab_fields import IGNORED_NODE_FIELDS, IGNORED_TOP_FIELDS, NODE_FIELDS, TOP_FIELDS
from topology.links import SEGMENT_KINDS, Endpoint, Link, resolve_links, segment_names
from topology.mgmt import MgmtNetwork
from topology.node_fields import Bind
from topology.paths import Folders, forbidden_topology_file
from topology.problems import Problems
from topology.stages import WaitFor
from vendors import VendorConfig, catalog, get_vendor
from vendors.model import DEFAULT_CAP_ADD

# What Archetype does with each containerlab field: topology/clab_fields.py (README's table).
# extras keys we honour (vendor `extras_env`) are read before the rest of `extras` is ignored.


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
    host: str | None = None  # the lab host it runs on (None: placed by the coordinator)
    name_prefix: str | None = None  # containerlab's top-level `prefix` (None: no prefix line)
    restart_policy: str | None = None  # docker's restart policy (None: "no")
    startup_delay: float = 0.0  # seconds before the node is created
    wait_for: tuple[WaitFor, ...] = ()  # containerlab's stages: which stage waits for which
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
    def startup_config_lines(self) -> range:
        """Where the startup-config's own lines are in ``post_boot_commands`` (not the
        config-mode enter and exit around them). A line the device refuses there is the
        node's config error, reported, as a real device logs a bad line of its startup
        config and applies the rest; anywhere else a refused command fails the node."""
        typed = self.vendor.startup_config_commands(self.startup_config)
        return range(1, len(typed) - 1) if typed else range(0)

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
    prefix: str | None = None  # containerlab's top-level `prefix` (None: no prefix line)
    checks: tuple[Check, ...] = ()  # the `validate:` tests (topology/checks.py)

    @property
    def hosts(self) -> set[str]:
        """The hosts its nodes name (``host:``)."""
        return {n.host for n in self.nodes.values() if n.host}

    def links_of(self, node: str) -> list[tuple[Link, Endpoint]]:
        """The node's link ends (point-to-point and segment), in port order."""
        ends = [(link, end) for link in self.links for end in link.ends if end.node == node]
        return sorted(ends, key=lambda pair: pair[1].port)

    @property
    def segments(self) -> tuple[Link, ...]:
        """The multi-access segments (containerlab's bridge kinds): one VLAN, N ends each."""
        return tuple(link for link in self.links if link.segment is not None)

    def host_ends(self) -> list[tuple[Link, Endpoint]]:
        """``host:IF`` ends: veths in the host's namespace, each on its link's VLAN."""
        return [(link, end) for link in self.links for end in link.host_ends]


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
    _check_keys(topo, "topology", {"defaults", "kinds", "groups", "nodes", "links"}, {}, problems)
    defaults = _mapping(topo, "defaults", "topology", problems)
    kinds = _mapping(topo, "kinds", "topology", problems)
    groups = _mapping(topo, "groups", "topology", problems)
    raw_nodes = _mapping(topo, "nodes", "topology", problems)
    if not raw_nodes:
        problems.error("topology.nodes", "the topology has no nodes")

    prefix = stages.prefix(document, problems)
    folders = Folders.of_file(base_dir) if base_dir is not None else Folders.of_text(lab_id)
    segments = segment_names(raw_nodes, problems)
    nodes: dict[str, Node] = {}
    for name, raw in raw_nodes.items():
        if str(name) in segments:
            continue
        if str(name) == names.HOST_NODE:
            problems.error(f"topology.nodes.{name}", f"'{name}' is reserved for host interface endpoints ('host:IF')")
            continue
        node = _resolve_node(str(name), raw, defaults, kinds, groups, folders, problems, catalog())
        if node is not None:
            nodes[node.name] = replace(node, name_prefix=prefix)
    for section, entries in (("kinds", kinds), ("groups", groups)):
        for key, value in entries.items():
            _check_node_fields(value, f"topology.{section}.{key}", problems)
    _check_node_fields(defaults, "topology.defaults", problems)
    for kind_name in kinds:
        if kind_name not in catalog() and kind_name not in SEGMENT_KINDS:
            problems.error(f"topology.kinds.{kind_name}", f"unknown kind {kind_name!r}")

    links = resolve_links(topo.get("links"), raw_nodes, nodes, segments, problems)
    stages.check_wait_for(nodes, problems)
    mgmt = mgmt_fields.parse_mgmt(document.get("mgmt"), problems)
    mgmt_fields.check_node_addresses(mgmt, nodes, problems)
    tests = parse_checks(document.get("validate"), _node_kinds(nodes), problems)
    if problems.errors:
        raise TopologyError(problems.errors)
    return Lab(id=lab_id, nodes=nodes, links=tuple(links), source_dir=folders.base, warnings=tuple(problems.warnings),
               host_paths=tuple(folders.used), prefix=prefix, mgmt=mgmt, checks=tests)


def _node_kinds(nodes: dict[str, Node]) -> NodeKinds:
    def canonical(name: str) -> str | None:
        vendor = catalog().find(name)
        return vendor.kind if vendor else None

    return NodeKinds(kinds={n.name: n.kind for n in nodes.values()},
                     containers=frozenset(n.name for n in nodes.values() if n.vendor.container is not None),
                     canonical=canonical)


def _check_top(document: dict[str, Any], problems: Problems) -> str:
    _check_keys(document, "", TOP_FIELDS, IGNORED_TOP_FIELDS, problems)
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
    mapping: dict[str, Any], where: str, known: set[str] | frozenset[str], ignored: Mapping[str, str],
    problems: Problems,
) -> None:
    for key in mapping:
        place = f"{where}.{key}" if where else str(key)
        if key in ignored:
            why = f": {ignored[key]}" if ignored[key] else ""
            problems.warn(place, f"containerlab field not used by Archetype, ignored{why}")
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
        cpus=node_fields.positive_int(fields.get("cpus", fields.get("cpu")), f"{where}.cpus", problems),
        restart_policy=node_fields.restart_policy(fields.get("restart-policy"), f"{where}.restart-policy", problems),
        startup_delay=node_fields.startup_delay(fields.get("startup-delay"), f"{where}.startup-delay", problems),
        wait_for=stages.parse(fields.get("stages"), fields.get("wait-for"), where, problems),
        mgmt_ipv4=mgmt_fields.node_address(_dashed(fields, "mgmt-ipv4"), 4, f"{where}.mgmt-ipv4", problems),
        mgmt_ipv6=mgmt_fields.node_address(_dashed(fields, "mgmt-ipv6"), 6, f"{where}.mgmt-ipv6", problems),
        host=node_fields.host(fields.get("host"), f"{where}.host", problems),
    )
    if node.restart_policy not in (None, "no") and vendor.container is None:
        problems.warn(f"{where}.restart-policy", "a VM is not restarted by its runtime: ignored")
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

