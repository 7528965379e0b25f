"""Every validation error names its place, and all of them are reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import TopologyError
from tests.support.topology_text import lab_of, problems_of
from topology import load_topology

PEERS = Path(__file__).resolve().parent / "data" / "containerlab"  # containerlab's own lab examples
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


VALID = """
    name: ok
    topology:
      nodes:
        r1: {kind: frr}
        r2: {kind: frr}
      links:
        - endpoints: ["r1:eth1", "r2:eth1"]
"""


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            "name: Bad_Id\ntopology: {nodes: {r1: {kind: frr}}}\n",
            "name: invalid lab id 'Bad_Id'",
            id="bad-lab-id",
        ),
        pytest.param(
            "name: ab-toolongtoolongtoolong\ntopology: {nodes: {r1: {kind: frr}}}\n",
            "name: invalid lab id",
            id="lab-id-too-long",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {'r 1': {kind: frr}}}\n",
            "topology.nodes.r 1: invalid node name",
            id="bad-node-name",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {kind: foo}}}\n",
            "topology.nodes.r1.kind: unknown kind 'foo'",
            id="unknown-kind",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {image: x}}}\n",
            "topology.nodes.r1.kind: no kind given",
            id="no-kind",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes: {r1: {kind: frr}}\n  links: [{endpoints: ['r1:eth1', 'r9:eth1']}]\n",
            "links[0].endpoints[1]: link to unknown node 'r9'",
            id="unknown-node-in-link",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes: {r1: {kind: frr}, r2: {kind: frr}, r3: {kind: frr}}\n"
            "  links:\n    - endpoints: ['r1:eth1', 'r2:eth1']\n    - endpoints: ['r3:eth1', 'r2:eth2']\n"
            "    - endpoints: ['r1:eth1', 'r3:eth2']\n",
            "links[2]: interface r1:eth1 is already used by links[0]",
            id="interface-used-twice",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes: {r1: {kind: frr}, r2: {kind: frr}}\n"
            "  links: [{endpoints: ['r1:Ethernet1', 'r2:eth1']}]\n",
            "links[0].endpoints[0]: frr node r1 has no interface 'Ethernet1'",
            id="interface-vendor-lacks",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes: {r1: {kind: frr}, r2: {kind: frr}}\n"
            "  links: [{endpoints: ['r1:eth99', 'r2:eth1']}]\n",
            "links[0].endpoints[0]: frr node r1 has at most 32 data ports",
            id="interface-beyond-max-ports",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes: {r1: {kind: frr}}\n  links: [{endpoints: ['r1:eth1', 'r1:eth2']}]\n",
            "links[0]: self-loop: both ends are on node r1",
            id="self-loop",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes: {r1: {kind: frr}, r2: {kind: frr}}\n"
            "  links: [{endpoints: ['r1-eth1', 'r2:eth1']}]\n",
            "links[0].endpoints[0]: bad endpoint 'r1-eth1': expected 'node:interface'",
            id="endpoint-syntax",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes: {r1: {kind: frr}, r2: {kind: frr}}\n"
            "  links: [{endpoints: ['r1:eth1']}]\n",
            "links[0].endpoints: must list exactly two",
            id="one-endpoint",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {kind: frr, startup-config: missing.conf}}}\n",
            "topology.nodes.r1.startup-config: unreadable startup-config 'missing.conf'",
            id="unreadable-startup-config",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {kind: frr, startup-config: /etc/shadow}}}\n",
            "topology.nodes.r1.startup-config: startup-config '/etc/shadow' resolves to /etc/shadow, outside the allowed folders",
            id="startup-config-outside-roots",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {kind: frr, binds: ['/etc:/host-etc']}}}\n",
            "topology.nodes.r1.binds[0]: host path '/etc' resolves to /etc, outside the allowed folders",
            id="bind-outside-roots",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {}}\n",
            "topology.nodes: the topology has no nodes",
            id="empty-topology",
        ),
        pytest.param(
            "name: ok\n",
            "topology: missing or not a mapping",
            id="no-topology",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {kind: frr, imgae: x}}}\n",
            "topology.nodes.r1.imgae: unknown field 'imgae'",
            id="typo-field",
        ),
        pytest.param(
            "name: ok\ntopology:\n  nodes:\n    r1: [kind: frr\n  links: ]\n",
            "line 5, column 8: YAML syntax error",
            id="yaml-syntax",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {kind: frr, memory: lots}}}\n",
            "topology.nodes.r1.memory: bad memory 'lots'",
            id="bad-memory",
        ),
        pytest.param(
            "name: ok\ntopology: {nodes: {r1: {kind: mini-ios, binds: ['a:/b']}}}\n",
            "topology.nodes.r1.binds: kind mini-ios runs as a VM",
            id="binds-on-vm",
        ),
    ],
)
def test_each_error_names_its_place(document: str, expected: str, tmp_path: Path) -> None:
    problems = problems_of(document, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        """
        name: Bad
        topology:
          nodes:
            r1: {kind: foo}
            r2: {kind: frr, startup-config: nope.conf}
          links:
            - endpoints: ["r1:eth1", "r3:eth1"]
            - endpoints: ["r2:eth1", "r2:eth2"]
        """,
        tmp_path,
    )
    assert len(problems) == 5, problems
    assert [p.split(":")[0] for p in problems] == [
        "name",
        "topology.nodes.r1.kind",
        "topology.nodes.r2.startup-config",
        "links[0].endpoints[1]",
        "links[1]",
    ]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read the topology file"):
        load_topology(tmp_path / "none.yml")


def test_node_overrides_group_overrides_kind_overrides_defaults(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "n").mkdir()
    lab = lab_of(
        """
        name: inherit
        topology:
          defaults:
            kind: linux
            image: from-defaults
            env: {A: defaults, B: defaults, C: defaults, D: defaults}
            binds: ["d:/d"]
          kinds:
            linux: {image: from-kind, env: {B: kind, C: kind, D: kind}}
          groups:
            g1: {image: from-group, env: {C: group, D: group}}
          nodes:
            n1: {group: g1, env: {D: node}, binds: ["n:/n"]}
            n2: {group: g1, image: from-node}
            n3: {}
        """,
        tmp_path,
    )
    n1, n2, n3 = lab.nodes["n1"], lab.nodes["n2"], lab.nodes["n3"]
    assert n1.env == {"A": "defaults", "B": "kind", "C": "group", "D": "node"}
    assert n1.image == "from-group"
    assert n2.image == "from-node"
    assert n3.image == "from-kind"
    assert [b.container for b in n1.binds] == ["/d", "/n"]  # binds add up
    assert n1.kind == n3.kind == "linux"


def test_kind_comes_from_group_and_aliases_resolve(tmp_path: Path) -> None:
    lab = lab_of(
        """
        name: aliases
        topology:
          groups: {spines: {kind: srl}}
          nodes:
            s1: {group: spines}
            c1: {kind: arista_ceos}
            c2: {kind: crpd}
        """,
        tmp_path,
    )
    assert {n: lab.nodes[n].kind for n in lab.nodes} == {"s1": "nokia_srlinux", "c1": "ceos", "c2": "juniper_crpd"}


def test_default_image_comes_from_the_catalog(tmp_path: Path) -> None:
    lab = lab_of(VALID, tmp_path)
    assert lab.nodes["r1"].image == "archetype/frr:latest"


def test_startup_config_as_path_or_inline_text(tmp_path: Path) -> None:
    (tmp_path / "r1.conf").write_text("hostname r1\n")
    lab = lab_of(
        """
        name: cfg
        topology:
          nodes:
            r1: {kind: frr, startup-config: r1.conf}
            r2:
              kind: frr
              startup-config: |
                hostname r2
                router bgp 65002
        """,
        tmp_path,
    )
    assert lab.nodes["r1"].startup_config == "hostname r1\n"
    assert lab.nodes["r2"].startup_config.startswith("hostname r2\nrouter bgp")


def test_interfaces_in_the_vendors_own_form(tmp_path: Path) -> None:
    lab = lab_of(
        """
        name: ifaces
        topology:
          nodes:
            c1: {kind: ceos}
            s1: {kind: srl}
            v1: {kind: mini-ios}
            j1: {kind: vjunos-router}
          links:
            - endpoints: ["c1:Ethernet3", "s1:e1-2"]
            - endpoints: ["c1:eth1", "v1:GigabitEthernet0/1"]
            - endpoints: ["s1:ethernet-1/5", "j1:ge-0/0/0"]
        """,
        tmp_path,
    )
    ports = {str(end): end.port for link in lab.links for end in link.endpoints}
    assert ports == {
        "c1:Ethernet3": 3, "s1:e1-2": 2, "c1:eth1": 1, "v1:GigabitEthernet0/1": 1, "s1:ethernet-1/5": 5, "j1:ge-0/0/0": 1,
    }


def test_cEOS_Ethernet1_and_eth1_are_the_same_interface(tmp_path: Path) -> None:
    problems = problems_of(
        """
        name: same
        topology:
          nodes: {c1: {kind: ceos}, r1: {kind: frr}, r2: {kind: frr}}
          links:
            - endpoints: ["c1:Ethernet1", "r1:eth1"]
            - endpoints: ["c1:eth1", "r2:eth1"]
        """,
        tmp_path,
    )
    assert problems == ["links[1]: interface c1:eth1 is already used by links[0]"]


def test_containerlab_fields_warn_and_frr_extras_are_honoured(tmp_path: Path) -> None:
    lab = lab_of(
        """
        name: clab
        mgmt: {ipv4-subnet: 172.20.20.0/24}
        topology:
          nodes:
            r1:
              kind: frr
              type: ixr6
              mgmt-ipv4: 172.20.20.2
              extras: {frr: {daemons: [zebra, ospfd]}}
        """,
        tmp_path,
    )
    assert lab.nodes["r1"].env["FRR_DAEMONS"] == "zebra ospfd"
    assert any(w.startswith("topology.nodes.r1.type: containerlab field not used by Archetype, ignored") for w in lab.warnings)
    assert not any("mgmt" in w for w in lab.warnings)  # honoured now (topology.mgmt)


def test_exec_is_kept_as_written_for_each_provider_to_form(tmp_path: Path) -> None:
    lab = lab_of(
        """
        name: ex
        topology:
          nodes:
            h1: {kind: linux, exec: ["ip addr add '10.0.0.1/24' dev eth1"]}
            v1: {kind: mini-ios, exec: ["description it's a VM"]}
        """,
        tmp_path,
    )
    assert lab.nodes["h1"].exec == ("ip addr add '10.0.0.1/24' dev eth1",)  # docker splits it into argv
    assert lab.nodes["v1"].exec == ("description it's a VM",)  # a console line: not split, so no quote error


def test_link_ids_do_not_depend_on_endpoint_order(tmp_path: Path) -> None:
    lab = lab_of(VALID, tmp_path)
    assert lab.links[0].id == "r1:eth1--r2:eth1"
    swapped = lab_of(VALID.replace('["r1:eth1", "r2:eth1"]', '["r2:eth1", "r1:eth1"]'), tmp_path)
    assert swapped.links[0].id == lab.links[0].id


def test_yaml_text_is_accepted_as_well_as_a_path(tmp_path: Path) -> None:
    lab = load_topology("name: text\ntopology: {nodes: {r1: {kind: linux}}}\n", base_dir=tmp_path)
    assert lab.id == "text" and list(lab.nodes) == ["r1"]


@pytest.mark.parametrize("name", ["clos02.clab.yml", "srlceos01.clab.yml"])
def test_containerlab_peer_topologies_are_accepted(name: str) -> None:
    lab = load_topology(PEERS / name)
    assert lab.nodes and lab.links


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    assert load_topology(path).nodes


def test_a_startup_config_a_kind_cannot_take_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        lab_of(
            """
            name: sc
            topology:
              nodes:
                h1: {kind: linux, startup-config: "hostname h1\\n"}
                j1: {kind: juniper_vjunos_router, startup-config: "system { host-name j1; }\\n"}
            """,
            tmp_path,
        )
    assert caught.value.problems == [
        "topology.nodes.h1.startup-config: kind linux takes no startup-config (its catalog entry names no file for it)",
        "topology.nodes.j1.startup-config: kind juniper_vjunos_router takes no startup-config "
        "(its catalog entry gives no way to apply one)",
    ]


def test_a_vm_startup_config_is_typed_in_config_mode_before_the_other_commands(tmp_path: Path) -> None:
    lab = lab_of(
        """
        name: sc
        topology:
          nodes:
            v1:
              kind: mini-ios
              startup-config: "!\\nhostname V1\\n!\\ninterface GigabitEthernet0/1\\n ip address 10.0.0.1 255.255.255.0\\nend\\n"
              exec: [show version]
        """,
        tmp_path,
    )
    node = lab.nodes["v1"]
    assert node.post_boot_commands == [
        "configure terminal", "hostname V1", "interface GigabitEthernet0/1", " ip address 10.0.0.1 255.255.255.0", "end",
        *node.vendor.post_boot_commands, "show version",
    ]
    assert node.own_commands_from == len(node.post_boot_commands) - 1


def test_validation_says_when_an_image_loses_its_kinds_broad_capabilities(tmp_path: Path) -> None:
    lab = lab_of("name: caps\ntopology: {nodes: {c1: {kind: ceos, image: 'other/ceos:1'}, c2: {kind: ceos}}}\n", tmp_path)
    (warning,) = [w for w in lab.warnings if ".image" in w]
    assert warning.startswith("topology.nodes.c1.image: 'other/ceos:1' is not one of kind ceos's catalog images")
    assert "default capabilities (NET_ADMIN)" in warning


@pytest.mark.parametrize("source", ["/etc/shadow", "/var/lib/archetype/prefect/prefect.db", "/proc/self/environ"])
def test_a_topology_path_that_is_not_a_topology_file_is_refused_unread(source: str) -> None:
    with pytest.raises(TopologyError) as refused:
        load_topology(source)
    assert str(refused.value).startswith(f"topology: {source!r}")
    assert "not a topology file" in str(refused.value)


def test_a_topology_file_in_the_workspace_internals_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.settings import get_settings

    monkeypatch.setenv("ARCHETYPE_WORKSPACE", str(tmp_path))
    get_settings.cache_clear()
    try:
        inside = tmp_path / "prefect" / "x.yml"
        with pytest.raises(TopologyError) as refused:
            load_topology(inside)  # (it does not even exist: refused before any open)
        assert "inside the workspace's internals" in str(refused.value)
    finally:
        monkeypatch.delenv("ARCHETYPE_WORKSPACE")
        get_settings.cache_clear()
