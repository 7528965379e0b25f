"""containerlab's topology features: bridge segments, the extended link format, host ends,
prefix, restart-policy, startup-delay and stages -- honoured, or refused with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab import names
from lab.state import LinkRecord
from providers.docker.spec import build_container_spec, readonly_paths
from providers.network.ovs import PortInfo
from providers.network.recovery import plan_recovery
from providers.network.vlans import select_tags, tags_in_use
from tests.support.topology_text import lab_of, problems_of
from topology import load_topology
from topology.stages import BRING_UP, POST_BOOT, stage_waits

EXAMPLES = Path(__file__).resolve().parent / "data" / "containerlab" / "lab-examples"


LAN = """
    name: lan
    topology:
      nodes:
        r1: {kind: frr}
        r2: {kind: linux}
        v1: {kind: mini-ios}
        sw: {kind: bridge}
        r3: {kind: frr}
      links:
        - endpoints: ["r1:eth1", "sw:eth1"]
        - endpoints: ["sw:port2", "r2:eth1"]
        - endpoints: ["v1:GigabitEthernet0/1", "sw:eth3"]
        - endpoints: ["r1:eth2", "r3:eth1"]
"""


def test_a_bridge_is_one_segment_with_every_end_on_it(tmp_path: Path) -> None:
    lab = lab_of(LAN, tmp_path)
    assert set(lab.nodes) == {"r1", "r2", "v1", "r3"}  # the bridge is no node: nothing is made for it
    (segment,) = lab.segments
    assert segment.id == names.segment_link_id("sw") == "segment:sw"
    assert [str(e) for e in segment.ends] == ["r1:eth1", "r2:eth1", "v1:GigabitEthernet0/1"]
    assert [link.id for link in lab.links] == ["segment:sw", "r1:eth2--r3:eth1"]
    assert [(link.id, end.port) for link, end in lab.links_of("r1")] == [("segment:sw", 1), ("r1:eth2--r3:eth1", 2)]


def test_ovs_bridge_kind_is_a_segment_too_and_its_fields_are_warned(tmp_path: Path) -> None:
    lab = lab_of(LAN.replace("sw: {kind: bridge}", "sw: {kind: ovs-bridge, image: x}"), tmp_path)
    assert lab.segments[0].segment == "sw"
    assert any("topology.nodes.sw" in w and "image" in w for w in lab.warnings)


def test_segment_errors_name_their_place(tmp_path: Path) -> None:
    problems = problems_of("""
        name: lan
        topology:
          nodes: {r1: {kind: frr}, a: {kind: bridge}, b: {kind: bridge}}
          links:
            - endpoints: ["a:eth1", "b:eth1"]
            - endpoints: ["r1:eth1", "a:eth2"]
            - endpoints: ["r1:eth1", "b:eth2"]
        """, tmp_path)
    assert problems == [
        "links[0]: a link between two segments (bridge kinds) is not made: connect nodes to one segment",
        "links[2]: interface r1:eth1 is already used by links[1]",
    ]


def test_extended_link_format_is_the_brief_one(tmp_path: Path) -> None:
    extended = lab_of("""
        name: ext
        topology:
          nodes: {r1: {kind: frr}, r2: {kind: frr}}
          links:
            - type: veth
              mtu: 9000
              endpoints:
                - {node: r1, interface: eth1, mac: "02:00:00:00:00:01"}
                - {node: r2, interface: eth1}
        """, tmp_path)
    brief = lab_of("""
        name: ext
        topology:
          nodes: {r1: {kind: frr}, r2: {kind: frr}}
          links: [{endpoints: ["r1:eth1", "r2:eth1"]}]
        """, tmp_path)
    assert [link.id for link in extended.links] == [link.id for link in brief.links]
    assert any("links[0].mtu" in w for w in extended.warnings)
    assert any("endpoints[0].mac" in w for w in extended.warnings)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ('{type: macvlan, endpoint: {node: r1, interface: eth1}, host-interface: eth0}',
         "links[0].type: link type 'macvlan' is not supported: macvlan links"),
        ('{type: vxlan, endpoint: {node: r1, interface: eth1}, remote: 10.0.0.1, vni: 1}',
         "links[0].type: link type 'vxlan' is not supported: VXLAN links"),
        ('{type: mgmt-net, endpoint: {node: r1, interface: eth1}, host-interface: x}',
         "links[0].type: link type 'mgmt-net' is not supported"),
        ('{type: dummy, endpoint: {node: r1, interface: eth1}}', "links[0].type: link type 'dummy' is not supported"),
        ('{type: wire, endpoints: ["r1:eth1", "r2:eth1"]}', "links[0].type: unknown link type 'wire'"),
        ('{endpoints: ["r1:eth1", "mgmt-net:r1-eth1"]}', "links[0].endpoints[1]: 'mgmt-net' endpoints are not supported"),
        ('{endpoints: [{node: r1}, "r2:eth1"]}', "links[0].endpoints[0]: bad endpoint"),
        ('{endpoints: ["r1:eth1", "host:this-name-is-too-long"]}', "links[0].endpoints[1]: host interface"),
        ('{endpoints: ["host:a1", "host:a2"]}', "links[0]: both ends are host interfaces"),
    ],
)
def test_links_we_do_not_make_are_refused_with_the_reason(link: str, expected: str, tmp_path: Path) -> None:
    problems = problems_of(f"""
        name: ext
        topology:
          nodes: {{r1: {{kind: frr}}, r2: {{kind: frr}}}}
          links: [{link}]
        """, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_host_ends_brief_and_extended(tmp_path: Path) -> None:
    lab = lab_of("""
        name: hostlinks
        topology:
          nodes: {r1: {kind: frr}, sw: {kind: bridge}, r2: {kind: linux}}
          links:
            - endpoints: ["r1:eth1", "host:clab-r1"]
            - {type: host, endpoint: {node: r2, interface: eth1}, host-interface: r2-host}
            - endpoints: ["host:lan0", "sw:e1"]
            - endpoints: ["r1:eth2", "sw:e2"]
        """, tmp_path)
    assert [(link.id, str(end)) for link, end in lab.host_ends()] == [
        ("host:clab-r1--r1:eth1", "host:clab-r1"), ("host:r2-host--r2:eth1", "host:r2-host"), ("segment:sw", "host:lan0"),
    ]
    assert set(lab.nodes) == {"r1", "r2"}
    assert problems_of("name: x\ntopology: {nodes: {host: {kind: linux}}}\n", tmp_path) == [
        "topology.nodes.host: 'host' is reserved for host interface endpoints ('host:IF')"
    ]


@pytest.mark.parametrize(("line", "prefix", "container"), [
    ("", None, "archetype-pfx-r1"), ('prefix: "clab"\n', "clab", "clab-pfx-r1"), ('prefix: ""\n', "", "r1"),
])
def test_prefix_names_containers_as_containerlab_does(line: str, prefix: str | None, container: str, tmp_path: Path) -> None:
    lab = lab_of(f"name: pfx\n{line}topology: {{nodes: {{r1: {{kind: linux}}}}}}\n", tmp_path)
    assert lab.prefix == prefix and lab.nodes["r1"].name_prefix == prefix
    spec = build_container_spec(lab.id, lab.nodes["r1"], 0)
    assert spec.name == container
    assert spec.create["labels"][names.LABEL_LAB] == "pfx" and spec.create["labels"][names.LABEL_NODE] == "r1"


def test_restart_policy_startup_delay_and_stages(tmp_path: Path) -> None:
    lab = lab_of("""
        name: order
        topology:
          defaults: {restart-policy: always}
          nodes:
            a: {kind: linux, restart-policy: no}
            b:
              kind: linux
              startup-delay: 2.5
              stages:
                create: {wait-for: [{node: a, stage: healthy}]}
                configure: {wait-for: [{node: a}]}
            c: {kind: linux, wait-for: [a, b]}
        """, tmp_path)
    assert lab.nodes["a"].restart_policy == "no" and lab.nodes["b"].restart_policy == "always"
    assert build_container_spec("order", lab.nodes["b"], 0).host["restart_policy"] == {"Name": "always"}
    assert lab.nodes["b"].startup_delay == 2.5
    assert [(w.stage, w.node, w.node_stage) for w in lab.nodes["b"].wait_for] == [
        ("create", "a", "ready"), ("post-boot", "a", "create")]
    assert [(w.stage, w.node, w.node_stage) for w in lab.nodes["c"].wait_for] == [
        ("create", "a", "create"), ("create", "b", "create")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("restart-policy: sometimes", "topology.nodes.a.restart-policy: bad restart policy 'sometimes'"),
        ("startup-delay: -1", "topology.nodes.a.startup-delay: must be a number of seconds"),
        ("stages: {exit: {wait-for: [{node: b}]}}", "topology.nodes.a.stages.exit: the exit stage is not waited for"),
        ("stages: {create: {exec: [{command: ls}]}}", "topology.nodes.a.stages.create.exec: per-stage commands are not run"),
        ("stages: {create: {wait-for: [{node: zz}]}}", "topology.nodes.a.stages: waits for unknown node 'zz'"),
        ("stages: {create: {wait-for: [{node: b, stage: healthy}]}}", "topology.nodes: wait-for cycle"),
    ],
)
def test_ordering_fields_refused_with_the_reason(fields: str, expected: str, tmp_path: Path) -> None:
    problems = problems_of(f"""
        name: order
        topology:
          nodes:
            a: {{kind: linux, {fields}}}
            b: {{kind: linux, stages: {{create: {{wait-for: [{{node: a, stage: create-links}}]}}}}}}
        """, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_netlab_style_fields_are_no_longer_ignored(tmp_path: Path) -> None:
    lab = lab_of("""
        name: nl
        prefix: "clab"
        topology:
          nodes:
            r1: {kind: linux, restart-policy: 'no', exec: ['sleep 1']}
            nl_1: {kind: bridge}
          links:
            - endpoints: ["r1:eth1", "nl_1:bni0n1i1"]
        """, tmp_path)
    assert lab.warnings == ()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.clab.yml")), ids=lambda p: p.parent.name)
def test_containerlab_lab_examples_validate_as_they_are(path: Path, tmp_path: Path) -> None:
    # In a folder of the user's own, as a lab is (binds never point into Archetype's code).
    shutil.copytree(path.parent, tmp_path / path.parent.name)
    lab = load_topology(tmp_path / path.parent.name / path.name)
    assert lab.nodes and lab.links


def test_br01_is_a_three_node_segment() -> None:
    lab = load_topology(EXAMPLES / "br01" / "br01.clab.yml")
    assert [[str(e) for e in s.ends] for s in lab.segments] == [["srl1:e1-1", "srl2:e1-1", "srl3:e1-1"]]


# -- VLANs: a segment's one tag, shared by its N ends ----------------------------------------

def _port(name: str, tag: int, lab: str | None, link: str | None, node: str | None) -> PortInfo:
    ids = {} if lab is None else {names.OVS_LAB_KEY: lab, names.OVS_LINK_KEY: link or "", names.OVS_NODE_KEY: node or ""}
    return PortInfo(name=name, tag=tag, external_ids=ids)


def test_a_segment_holds_one_tag_for_all_its_ports() -> None:
    ports = {f"p{i}": _port(f"p{i}", 120, "lab", "segment:sw", f"r{i}") for i in range(3)}
    taken, held = tags_in_use("lab", ports, {}, {})
    assert taken == {} and held == {120: {"segment:sw"}}
    tags = select_tags(["segment:sw", "r1:eth2--r3:eth1"], {"segment:sw": [120]}, taken=taken, held=held,
                       vlan_min=100, vlan_max=200)
    assert tags == {"segment:sw": 120, "r1:eth2--r3:eth1": 100}
    other = tags_in_use("other", ports, {}, {})[0]
    assert 120 in other  # another lab never gets the segment's tag


def test_recovery_keeps_a_segment_whose_ends_are_there_and_drops_one_whose_nodes_are_gone() -> None:
    record = LinkRecord(id="segment:sw", endpoints=["r1:eth1", "r2:eth1", "host:lan0"], vlan=130, ports=[])
    ports = {
        names.host_port_name("lab", node, iface): _port(names.host_port_name("lab", node, iface), 130, "lab",
                                                         "segment:sw", node)
        for node, iface in (("r1", "eth1"), ("r2", "eth1"), ("host", "lan0"))
    }
    common = {"known_ports": {}, "reserved_by_others": {}, "vlan_min": 100, "vlan_max": 200}
    kept = plan_recovery("lab", [record], ports, node_exists=lambda n: n in ("r1", "r2", "host"), **common)
    assert kept.kept == {"segment:sw": 130} and kept.stale_ports == []
    gone = plan_recovery("lab", [record], ports, node_exists=lambda n: n in ("r1", "host"), **common)
    assert gone.kept == {"segment:sw": 130}  # r2's port is stale; the segment keeps its tag
    assert gone.stale_ports == [names.host_port_name("lab", "r2", "eth1")]


def test_writable_sysctls_leave_only_net_writable() -> None:
    paths = readonly_paths(["net"])
    assert "/proc/sys" not in paths and "/proc/sys/net" not in paths
    assert {"/proc/sys/kernel", "/proc/sys/vm", "/proc/sys/fs", "/proc/sysrq-trigger"} <= set(paths)
    lab = load_topology("name: s\ntopology: {nodes: {r1: {kind: linux}, r2: {kind: nokia_srlinux}}}\n")
    assert build_container_spec("s", lab.nodes["r1"], 0).host_extra == {"ReadonlyPaths": paths}
    assert build_container_spec("s", lab.nodes["r2"], 0).host_extra == {}  # docker's defaults
    assert build_container_spec("s", lab.nodes["r1"], 0).host["privileged"] is False


def test_waits_become_the_steps_deploy_lab_runs(tmp_path: Path) -> None:
    lab = lab_of("""
        name: order
        topology:
          nodes:
            a: {kind: linux, exec: ["true"]}
            b: {kind: linux, stages: {create: {wait-for: [{node: a, stage: configure}]}}}
            c:
              kind: linux
              stages:
                create-links: {wait-for: [{node: b, stage: configure}]}
                configure: {wait-for: [{node: a, stage: create}]}
        """, tmp_path)
    waits = stage_waits(lab.nodes, booting={"a"})
    assert waits[("b", BRING_UP)] == [("a", POST_BOOT)]  # after a's exec ran
    assert waits[("c", BRING_UP)] == [("b", BRING_UP)]  # b has no post-boot: its bring-up
    assert ("c", POST_BOOT) not in waits  # c runs no post-boot: its wait is moot
    assert waits[("a", POST_BOOT)] == [("a", BRING_UP)]
