"""The lab picture draws every kind of link a topology can have: point-to-point links,
multi-access segments (containerlab `bridge`) and host interfaces (`host:IF`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from topology import load_topology
from topology.picture import markdown, picture_of, svg

TOPOLOGY = """
name: pic
topology:
  nodes:
    r1: {kind: linux}
    r2: {kind: linux}
    r3: {kind: linux}
    lan: {kind: bridge}
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
    - endpoints: ["r1:eth2", "lan:p1"]
    - endpoints: ["r2:eth2", "lan:p2"]
    - endpoints: ["r3:eth1", "lan:p3"]
    - endpoints: ["r3:eth2", "host:pic0"]
"""


def test_segments_and_host_ends_are_drawn(tmp_path: Path) -> None:
    path = tmp_path / "pic.clab.yml"
    path.write_text(TOPOLOGY)
    lab = load_topology(path)
    picture = picture_of(lab, {link.id: 100 + i for i, link in enumerate(lab.links)})
    assert {n.name for n in picture.nodes} >= {"r1", "r2", "r3", "lan", "host"}
    segment_ends = {(link.a, link.a_interface) for link in picture.links if link.b == "lan"}
    assert segment_ends == {("r1", "eth2"), ("r2", "eth2"), ("r3", "eth1")}
    root = ET.fromstring(svg(picture))  # valid SVG
    titles = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title"))
    assert "r3:eth2 -- host:pic0" in titles and "r1:eth1 -- r2:eth1" in titles
    assert "data:image/svg+xml;base64," in markdown(picture)


def test_a_slice_draws_its_links_to_nodes_on_other_hosts(tmp_path: Path) -> None:
    """One host's slice of a multi-host lab holds only its own nodes; its links to the
    others end at nodes drawn as being elsewhere (a deploy-slice once failed on it)."""
    from dataclasses import replace

    path = tmp_path / "pic.clab.yml"
    path.write_text(TOPOLOGY)
    lab = load_topology(path)
    here = replace(lab, nodes={name: node for name, node in lab.nodes.items() if name != "r1"})
    picture = picture_of(here)
    assert {n.name: n.kind for n in picture.nodes}["r1"] == "elsewhere"
    ET.fromstring(svg(picture))
