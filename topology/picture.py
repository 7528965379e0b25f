"""A picture of a lab: nodes by kind and host, links with their interface names and VLANs.

``LabPicture`` is the model (from a topology, or from what runs); ``svg`` draws it as a
self-contained SVG (no graphviz needed: nodes on a circle, which stays readable for the
labs people draw by hand), ``markdown`` gives the Prefect UI the same picture plus tables.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from lab import names
from topology.document import Lab

# One colour per kind (cycled), so that kinds read apart at a glance.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f", "#bab0ac")
NODE_W, NODE_H = 150, 54


@dataclass(frozen=True)
class PictureNode:
    name: str
    kind: str
    provider: str = ""
    host: str = ""
    mgmt_ipv4: str | None = None
    state: str = ""


@dataclass(frozen=True)
class PictureLink:
    a: str
    a_interface: str
    b: str
    b_interface: str
    vlan: int | None = None


@dataclass
class LabPicture:
    lab_id: str
    nodes: list[PictureNode] = field(default_factory=list)
    links: list[PictureLink] = field(default_factory=list)


def picture_of(lab: Lab, vlans: dict[str, int] | None = None) -> LabPicture:
    """The picture of a topology (``vlans``: link id -> VLAN, once allocated). A segment
    (containerlab's ``bridge``) is drawn as a node of its own that its ends join; host
    interfaces (``host:IF``) join a node standing for the lab host, and a slice's links to
    nodes on other hosts end at a node of kind ``elsewhere``."""
    vlans = vlans or {}
    nodes = [
        PictureNode(n.name, n.kind, n.vendor.provider.value, str(getattr(n, "host", None) or ""), n.mgmt_ipv4)
        for n in lab.nodes.values()
    ]
    links: list[PictureLink] = []
    extra: dict[str, PictureNode] = {}
    for link in lab.links:
        vlan = vlans.get(link.id)
        if link.segment is not None:
            extra.setdefault(link.segment, PictureNode(link.segment, "bridge", "ovs", "", None))
            links += [PictureLink(end.node, end.interface, link.segment, "", vlan) for end in link.ends]
        else:
            links.append(PictureLink(link.a.node, link.a.interface, link.b.node, link.b.interface, vlan))
    for link in links:  # host interfaces, and (in one host's slice) nodes on other hosts
        for name in (link.a, link.b):
            if name not in lab.nodes and name not in extra:
                extra[name] = PictureNode(name, "host" if name == names.HOST_NODE else "elsewhere")
    return LabPicture(lab_id=lab.id, nodes=nodes + list(extra.values()), links=links)


def _colours(picture: LabPicture) -> dict[str, str]:
    kinds = sorted({n.kind for n in picture.nodes})
    return {kind: PALETTE[i % len(PALETTE)] for i, kind in enumerate(kinds)}


def _positions(picture: LabPicture) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Nodes on a circle (grouped by host, then kind, so that hosts and kinds sit together),
    the drawing cropped to them: a title band above, the legend below."""
    ordered = sorted(picture.nodes, key=lambda n: (n.host, n.kind, n.name))
    count = max(1, len(ordered))
    radius = 0.0 if count == 1 else max(160.0, count * (NODE_W + 40) / (2 * math.pi))
    points = {
        node.name: (radius * math.cos(2 * math.pi * i / count - math.pi / 2),
                    radius * math.sin(2 * math.pi * i / count - math.pi / 2))
        for i, node in enumerate(ordered)
    }
    xs = [x for x, _ in points.values()] or [0.0]
    ys = [y for _, y in points.values()] or [0.0]
    margin, title, legend = 60.0, 40.0, 40.0
    left, top = min(xs) - NODE_W / 2 - margin, min(ys) - NODE_H / 2 - margin - title
    width = max(xs) - min(xs) + NODE_W + 2 * margin
    height = max(ys) - min(ys) + NODE_H + 2 * margin + title + legend
    positions = {name: (x - left, y - top) for name, (x, y) in points.items()}
    return positions, max(width, 360.0), height


def svg(picture: LabPicture) -> str:
    """A standalone SVG document of the lab."""
    positions, width, height = _positions(picture)
    colours = _colours(picture)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif">',
        f"<title>lab {escape(picture.lab_id)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="12" y="24" font-size="18" font-weight="bold">lab {escape(picture.lab_id)}</text>',
    ]
    for link in picture.links:
        parts.append(_link(link, positions))
    for node in picture.nodes:
        parts.append(_node(node, positions[node.name], colours[node.kind]))
    parts.append(_legend(colours, height))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _link(link: PictureLink, positions: dict[str, tuple[float, float]]) -> str:
    (x1, y1), (x2, y2) = positions[link.a], positions[link.b]
    title = f"{link.a}:{link.a_interface} -- {link.b}:{link.b_interface}"
    if link.vlan is not None:
        title += f" (VLAN {link.vlan})"
    lines = [f'<g class="link"><title>{escape(title)}</title>',
             f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#555" stroke-width="2"/>']
    for (xa, ya), (xb, yb), label in (((x1, y1), (x2, y2), link.a_interface), ((x2, y2), (x1, y1), link.b_interface)):
        # the interface name a third of the way from its node, outside the node's box
        tx, ty = xa + (xb - xa) * 0.3, ya + (yb - ya) * 0.3
        lines.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="11" text-anchor="middle" fill="#222" '
                     f'stroke="white" stroke-width="3" paint-order="stroke">{escape(label)}</text>')
    if link.vlan is not None:
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        lines.append(f'<text x="{mx:.1f}" y="{my:.1f}" font-size="10" text-anchor="middle" fill="#a33" '
                     f'stroke="white" stroke-width="3" paint-order="stroke">vlan {link.vlan}</text>')
    lines.append("</g>")
    return "\n".join(lines)


def _node(node: PictureNode, position: tuple[float, float], colour: str) -> str:
    x, y = position
    left, top = x - NODE_W / 2, y - NODE_H / 2
    second = node.kind + (f" @ {node.host}" if node.host else "")
    third = node.mgmt_ipv4 or node.provider
    return "\n".join([
        f'<g class="node" id="node-{escape(node.name)}"><title>{escape(node.name)} ({escape(node.kind)})</title>',
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{colour}" '
        f'stroke="#222"/>',
        f'<text x="{x:.1f}" y="{top + 18:.1f}" font-size="14" font-weight="bold" text-anchor="middle" '
        f'fill="white">{escape(node.name)}</text>',
        f'<text x="{x:.1f}" y="{top + 33:.1f}" font-size="11" text-anchor="middle" fill="white">{escape(second)}</text>',
        f'<text x="{x:.1f}" y="{top + 47:.1f}" font-size="10" text-anchor="middle" fill="white">{escape(third)}</text>',
        "</g>",
    ])


def _legend(colours: dict[str, str], height: float) -> str:
    parts = ['<g class="legend">']
    x = 12.0
    for kind, colour in colours.items():
        parts.append(f'<rect x="{x:.0f}" y="{height - 28:.0f}" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 18:.0f}" y="{height - 16:.0f}" font-size="12">{escape(kind)}</text>')
        x += 30 + 8 * len(kind)
    parts.append("</g>")
    return "\n".join(parts)


def markdown(picture: LabPicture) -> str:
    """The Prefect UI's view: the SVG as an image (a data URI), and the same facts as tables
    (what the UI shows if it does not render the image)."""
    data = base64.b64encode(svg(picture).encode()).decode()
    rows = ["| node | kind | provider | host | mgmt_ipv4 |", "|---|---|---|---|---|"]
    rows += [f"| {n.name} | {n.kind} | {n.provider} | {n.host or '-'} | {n.mgmt_ipv4 or '-'} |" for n in picture.nodes]
    links = ["| a | interface | b | interface | vlan |", "|---|---|---|---|---|"]
    links += [f"| {lk.a} | {lk.a_interface} | {lk.b} | {lk.b_interface} | {lk.vlan if lk.vlan is not None else '-'} |"
              for lk in picture.links]
    return "\n".join([
        f"# Lab {picture.lab_id}", "",
        f"![lab {picture.lab_id}](data:image/svg+xml;base64,{data})", "",
        "## Nodes", "", *rows, "", "## Links", "", *links, "",
    ])
