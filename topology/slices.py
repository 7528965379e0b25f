"""A lab cut for one host of a fleet: a self-contained topology document plus the files its
binds name, so that a host never needs the user's files.

The document is the resolved lab written back flat (no defaults, kinds or groups; every
node with its ``host``; startup configs inline), with the binds pointing into the lab's
files folder on the host (``lab.names.lab_files_dir``), where ``write_files`` puts them.
"""

from __future__ import annotations

import base64
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from lab.errors import TopologyError
from topology.document import Lab, Node

MAX_FILES_BYTES = 8 * 1024 * 1024  # flow parameters live in the server's database


def slice_document(lab: Lab, placement: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(YAML text of the whole lab, placed; files as relative path -> base64 content)."""
    files: dict[str, str] = {}
    nodes = {name: _node_fields(node, placement[name], files) for name, node in lab.nodes.items()}
    if sum(len(v) for v in files.values()) * 3 // 4 > MAX_FILES_BYTES:
        raise TopologyError([f"binds: the files the lab binds exceed {MAX_FILES_BYTES // 2**20} MiB"])
    links: list[dict[str, Any]] = []
    for link in lab.links:
        if link.segment is None:
            links.append({"endpoints": [str(link.a), str(link.b)]})
            continue
        nodes[link.segment] = {"kind": "bridge"}  # a segment again, one link per end
        links += [{"endpoints": [str(end), f"{link.segment}:e{i}"]} for i, end in enumerate(link.ends, 1)]
    document: dict[str, Any] = {"name": lab.id}
    if lab.prefix is not None:  # containerlab's container names (netlab's `prefix: clab`), as on one host
        document["prefix"] = lab.prefix
    document["topology"] = {"nodes": nodes, "links": links}
    mgmt = {key: value for key, value in (("network", lab.mgmt.network), ("ipv4-subnet", lab.mgmt.ipv4_subnet),
                                          ("ipv6-subnet", lab.mgmt.ipv6_subnet)) if value}
    if mgmt:  # a fleet lab's one management plan: every host makes the same subnet
        document["mgmt"] = mgmt
    return yaml.safe_dump(document, sort_keys=False), files


def _node_fields(node: Node, host: str, files: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": node.kind, "image": node.image, "host": host}
    if node.startup_config is not None:
        text = node.startup_config
        fields["startup-config"] = text if "\n" in text else text + "\n"  # inline, never a path
    if node.env:
        fields["env"] = dict(node.env)
    if node.binds:
        fields["binds"] = [_carried_bind(node.name, i, bind, files) for i, bind in enumerate(node.binds)]
    if node.exec:
        fields["exec"] = list(node.exec)
    if node.labels:
        fields["labels"] = dict(node.labels)
    if node.memory_mb is not None:
        fields["memory"] = node.memory_mb
    if node.cpus is not None:
        fields["cpus"] = node.cpus
    for key, address in (("mgmt-ipv4", node.mgmt_ipv4), ("mgmt-ipv6", node.mgmt_ipv6)):
        if address:  # planned over the whole lab by the coordinator: no two hosts give the same one
            fields[key] = address
    return fields


def _carried_bind(node: str, index: int, bind: Any, files: dict[str, str]) -> str:
    relative = f"{node}/{index}/{bind.host.name or 'root'}"
    if bind.host.is_dir():
        for path in sorted(p for p in bind.host.rglob("*") if p.is_file()):
            files[f"{relative}/{path.relative_to(bind.host).as_posix()}"] = _encoded(path)
        files.setdefault(f"{relative}/", "")  # an empty folder still becomes a folder
    elif bind.host.is_file():
        files[relative] = _encoded(bind.host)
    return f"{relative}:{bind.container}:{bind.mode}"


def _encoded(path: Path) -> str:
    try:
        return base64.b64encode(path.read_bytes()).decode()
    except OSError as err:
        raise TopologyError([f"binds: cannot read {path}: {err.strerror or err}"]) from None


def write_files(files: dict[str, str], folder: Path) -> None:
    """Put a slice's files under ``folder``; every name must stay inside it."""
    for name, content in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise TopologyError([f"files: {name!r} is not a relative path inside the lab's folder"])
        target = folder.joinpath(*relative.parts)
        if name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_bytes(base64.b64decode(content))


def local_part(lab: Lab, host: str) -> Lab:
    """The nodes placed on ``host`` and every link with an end on one of them. A ``host:IF``
    end is made on its node's host; a segment's, on the host of the segment's first node
    (``topology.placement.segment_home``): the other hosts' part of it has no host end."""
    from dataclasses import replace

    from topology.placement import segment_home

    nodes = {name: node for name, node in lab.nodes.items() if node.host == host}
    placement = {name: node.host for name, node in lab.nodes.items()}
    links = []
    for link in lab.links:
        if not any(end.node in nodes for end in link.node_ends):
            continue
        if link.segment is not None and link.host_ends and segment_home(link, placement) != host:
            link = replace(link, ends=link.node_ends)
        links.append(link)
    return replace(lab, nodes=nodes, links=tuple(links))
