"""Placement over published host facts, the host field, and a lab cut for one host (pure logic)."""

from __future__ import annotations

import base64

import pytest
import yaml

from lab.errors import TopologyError
from topology import load_topology
from topology.placement import HostFacts, cross_host_links, place
from topology.slices import local_part, slice_document, write_files

FRR = "archetype/frr:latest"
KERNEL = ("mini-ios/vmlinuz", "mini-ios/initrd.img")


def host(name: str, memory: int = 4000, *, alive: bool = True, images=(FRR, "archetype/linux:latest"), vm=KERNEL):
    return HostFacts(name=name, address=f"10.0.0.{name[-1]}", alive=alive, memory_free_mb=memory,
                     providers=("docker", "libvirt"), images=tuple(images), vm_images=tuple(vm))


def lab(nodes: dict, links=(), **topology) -> object:
    document = {"name": "p", "topology": {**topology, "nodes": nodes, "links": [{"endpoints": list(e)} for e in links]}}
    return load_topology(yaml.safe_dump(document))


def test_host_is_inherited_like_any_field() -> None:
    loaded = lab({"a": {"kind": "frr", "group": "g"}, "b": {"kind": "frr"}, "c": {"kind": "frr", "host": "h3"}},
                 groups={"g": {"host": "h1"}}, defaults={"host": "h2"})
    assert {n.name: n.host for n in loaded.nodes.values()} == {"a": "h1", "b": "h2", "c": "h3"}


def test_a_bad_host_name_is_refused_with_its_place() -> None:
    with pytest.raises(TopologyError, match=r"topology.nodes.a.host"):
        lab({"a": {"kind": "frr", "host": "Bad_Host"}})


def test_unplaced_nodes_spread_by_free_memory() -> None:
    loaded = lab({f"r{i}": {"kind": "frr"} for i in range(4)})
    placement = place(loaded, [host("h1"), host("h2")])
    assert sorted(placement.values()) == ["h1", "h1", "h2", "h2"]


def test_a_host_without_the_image_or_not_alive_gets_nothing() -> None:
    loaded = lab({"r1": {"kind": "frr"}, "v1": {"kind": "mini-ios"}})
    placement = place(loaded, [host("h1", images=()), host("h2", 100, vm=()), host("h3", 99999, alive=False)])
    assert placement == {"r1": "h2", "v1": "h1"}


def test_an_unplaceable_lab_names_every_node_and_why() -> None:
    loaded = lab({"r1": {"kind": "frr", "host": "h9"}, "v1": {"kind": "mini-ios", "memory": 9000}})
    with pytest.raises(TopologyError) as err:
        place(loaded, [host("h1"), host("h2")])
    text = "\n".join(err.value.problems)
    assert "topology.nodes.r1.host: unknown host 'h9'" in text
    assert "topology.nodes.v1: no host can run it" in text and "MiB free" in text


def test_cross_host_links_and_the_part_of_one_host() -> None:
    loaded = lab({"a": {"kind": "frr", "host": "h1"}, "b": {"kind": "frr", "host": "h2"}, "c": {"kind": "frr", "host": "h2"}},
                 links=[("a:eth1", "b:eth1"), ("b:eth2", "c:eth1")])
    placement = place(loaded, [host("h1"), host("h2")])
    assert [link.id for link in cross_host_links(loaded, placement)] == ["a:eth1--b:eth1"]
    part = local_part(loaded, "h1")
    assert list(part.nodes) == ["a"] and [link.id for link in part.links] == ["a:eth1--b:eth1"]


def test_a_slice_carries_configs_and_bound_files(tmp_path) -> None:
    (tmp_path / "r1.conf").write_text("hostname r1")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("payload")
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump({"name": "p", "topology": {"nodes": {
        "r1": {"kind": "frr", "startup-config": "r1.conf", "binds": ["data:/data:ro"]}}}}))
    loaded = load_topology(path)
    text, files = slice_document(loaded, {"r1": "h1"})
    assert base64.b64decode(files["r1/0/data/x.txt"]) == b"payload"
    target = tmp_path / "elsewhere"
    write_files(files, target)
    again = load_topology(text, base_dir=target)
    node = again.nodes["r1"]
    assert node.host == "h1" and node.startup_config.startswith("hostname r1")
    assert node.binds[0].host == (target / "r1/0/data").resolve() and (node.binds[0].host / "x.txt").read_text() == "payload"


def test_slice_files_never_leave_their_folder(tmp_path) -> None:
    with pytest.raises(TopologyError):
        write_files({"../escape": ""}, tmp_path)
    with pytest.raises(TopologyError):
        write_files({"/etc/passwd": ""}, tmp_path)
