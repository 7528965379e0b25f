"""Management addressing, inventories, the lab picture and VM startup configs: pure logic."""

from __future__ import annotations

import ipaddress
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from lab import names
from providers.docker.spec import build_container_spec
from providers.labs import _link_ends
from providers.libvirt.domain_xml import NodeMarker, domain_xml, metadata_xml, parse_marker, plan_domain
from tests.support.topology_text import lab_of, problems_of
from topology import load_topology
from topology.addressing import assign
from topology.mgmt import MgmtPlan, docker_range, node_range, prefix_for
from topology.picture import markdown, picture_of, svg
from topology.saved_configs import with_saved_configs

MIXED = """
    name: mix
    mgmt: {network: mix-mgmt, ipv4-subnet: 172.30.5.0/24}
    topology:
      nodes:
        r1: {kind: frr, mgmt-ipv4: 172.30.5.10}
        r2: {kind: frr}
        h1: {kind: linux}
        v1: {kind: mini-ios}
      links:
        - endpoints: ["r1:eth1", "v1:GigabitEthernet0/1"]
        - endpoints: ["r1:eth2", "r2:eth1"]
        - endpoints: ["r2:eth2", "h1:eth1"]
"""


def plan(subnet: str = "172.30.5.0/24") -> MgmtPlan:
    return MgmtPlan(network="n", bridge="armx", ipv4_subnet=subnet, ipv4_gateway=str(ipaddress.ip_network(subnet)[1]))


# Topology ---------------------------------------------------------------------------------


def test_mgmt_block_and_static_addresses_are_parsed(tmp_path: Path) -> None:
    lab = lab_of(MIXED, tmp_path)
    assert (lab.mgmt.network, lab.mgmt.ipv4_subnet, lab.mgmt.ipv6_subnet) == ("mix-mgmt", "172.30.5.0/24", None)
    assert lab.nodes["r1"].mgmt_ipv4 == "172.30.5.10"
    assert lab.nodes["r2"].mgmt_ipv4 is None  # given at deploy, once the subnet is known
    assert not any("mgmt" in w for w in lab.warnings)


@pytest.mark.parametrize(
    ("mgmt", "node", "expected"),
    [
        ("{ipv4-subnet: 300.1.1.0/24}", "", "mgmt.ipv4-subnet: bad IPv4 subnet '300.1.1.0/24'"),
        ("{ipv4-subnet: 10.0.0.1/24}", "", "mgmt.ipv4-subnet: bad IPv4 subnet '10.0.0.1/24'"),
        ("{ipv4-subnet: 'fd00::/64'}", "", "mgmt.ipv4-subnet: 'fd00::/64' is not an IPv4 subnet"),
        ("{ipv4-subnet: 10.0.0.0/30}", "", "mgmt.ipv4-subnet: '10.0.0.0/30' is too small: at most /29"),
        ("{network: bridge}", "", "mgmt.network: bad docker network name 'bridge'"),
        ("{subnet: 10.0.0.0/24}", "", "mgmt.subnet: unknown field 'subnet'"),
        ("[1]", "", "mgmt: must be a mapping (network, ipv4-subnet, ipv6-subnet)"),
        ("{ipv4-subnet: 10.0.0.0/24}", "mgmt-ipv4: 10.0.1.5",
         "topology.nodes.r1.mgmt-ipv4: 10.0.1.5 is not a node address of the management subnet 10.0.0.0/24 "
         "(nodes use 10.0.0.2-10.0.0.127)"),
        ("{ipv4-subnet: 10.0.0.0/24}", "mgmt-ipv4: 10.0.0.200",
         "topology.nodes.r1.mgmt-ipv4: 10.0.0.200 is not a node address of the management subnet 10.0.0.0/24 "
         "(nodes use 10.0.0.2-10.0.0.127)"),
        ("{ipv4-subnet: 10.0.0.0/24}", "mgmt-ipv4: 10.0.0.1",
         "topology.nodes.r1.mgmt-ipv4: 10.0.0.1 is not a node address of the management subnet 10.0.0.0/24 "
         "(nodes use 10.0.0.2-10.0.0.127)"),
        ("{ipv4-subnet: 10.0.0.0/24}", "mgmt-ipv4: banana", "topology.nodes.r1.mgmt-ipv4: bad IPv4 address 'banana'"),
        ("{ipv4-subnet: 10.0.0.0/24}", "mgmt-ipv4: 'fd00::5'", "topology.nodes.r1.mgmt-ipv4: 'fd00::5' is not an IPv4 address"),
        ("{}", "mgmt-ipv4: 10.0.0.5",
         "topology.nodes.r1.mgmt-ipv4: a static address needs the lab's subnet: give mgmt.ipv4-subnet"),
        ("{}", "mgmt-ipv6: 'fd00::5'",
         "topology.nodes.r1.mgmt-ipv6: a static address needs the lab's subnet: give mgmt.ipv6-subnet"),
    ],
)
def test_bad_management_fields_are_refused_with_their_place(tmp_path: Path, mgmt: str, node: str, expected: str) -> None:
    text = f"""
        name: bad
        mgmt: {mgmt}
        topology:
          nodes:
            r1: {{kind: frr{', ' + node if node else ''}}}
    """
    problems = problems_of(text, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_static_address_used_twice_is_refused(tmp_path: Path) -> None:
    problems = problems_of(
        """
        name: dup
        mgmt: {ipv4-subnet: 10.0.0.0/24}
        topology:
          nodes:
            r1: {kind: frr, mgmt-ipv4: 10.0.0.5}
            r2: {kind: frr, mgmt_ipv4: 10.0.0.5}
        """,
        tmp_path,
    )
    assert problems == ["topology.nodes.r2.mgmt-ipv4: 10.0.0.5 is already node r1's address"]


def test_a_subnet_too_small_for_the_lab_is_refused(tmp_path: Path) -> None:
    nodes = "".join(f"    r{i}: {{kind: linux}}\n" for i in range(5))
    problems = problems_of(f"name: small\nmgmt: {{ipv4-subnet: 10.0.0.0/29}}\ntopology:\n  nodes:\n{nodes}", tmp_path)
    assert problems == ["mgmt.ipv4-subnet: 10.0.0.0/29 has room for 2 nodes; the lab has 5"]


def test_containerlab_mgmt_extras_warn(tmp_path: Path) -> None:
    lab = lab_of("name: w\nmgmt: {ipv4-subnet: 10.9.0.0/24, mtu: 1400, bridge: br0}\ntopology: {nodes: {r1: {kind: frr}}}\n", tmp_path)
    assert "mgmt.mtu: containerlab field not used by Archetype, ignored" in lab.warnings


# Addresses ------------------------------------------------------------------------------


def test_addresses_are_static_where_given_and_sequential_otherwise(tmp_path: Path) -> None:
    lab = assign(lab_of(MIXED, tmp_path), plan())
    assert {n: lab.nodes[n].mgmt_ipv4 for n in lab.nodes} == {
        "r1": "172.30.5.10", "r2": "172.30.5.2", "h1": "172.30.5.3", "v1": "172.30.5.4",
    }
    assert all(n.mgmt_prefixlen == 24 for n in lab.nodes.values())
    assert assign(lab_of(MIXED, tmp_path), plan()) == lab  # the same topology, the same addresses


def test_each_host_of_a_fleet_plans_addresses_over_the_whole_lab(tmp_path: Path) -> None:
    # two hosts, each with its own management network: no two nodes of the lab may share an
    # address, and a node moved between them keeps its own
    from topology.slices import local_part

    whole = load_topology(textwrap.dedent("""
        name: fl
        topology:
          nodes:
            a: {kind: frr, host: h1}
            b: {kind: frr, host: h2}
            c: {kind: frr, host: h2}
    """))
    per_host = {host: assign(local_part(whole, host), plan(), whole) for host in ("h1", "h2")}
    addresses = {name: node.mgmt_ipv4 for part in per_host.values() for name, node in part.nodes.items()}
    assert addresses == {"a": "172.30.5.2", "b": "172.30.5.3", "c": "172.30.5.4"}
    assert set(per_host["h1"].nodes) == {"a"}  # each host still gets only its own nodes


def test_a_node_added_to_a_deployed_lab_does_not_move_the_others(tmp_path: Path) -> None:
    before = assign(lab_of(MIXED, tmp_path), plan())
    remembered = {name: node.mgmt_ipv4 for name, node in before.nodes.items()}
    grown = yaml.safe_load(MIXED)
    grown["topology"]["nodes"] = {"r0": {"kind": "frr"}, **grown["topology"]["nodes"]}  # first in node order
    after = assign(lab_of(yaml.safe_dump(grown, sort_keys=False), tmp_path), plan(), remembered=remembered)
    assert {n: after.nodes[n].mgmt_ipv4 for n in before.nodes} == remembered
    assert after.nodes["r0"].mgmt_ipv4 == "172.30.5.5"  # the first free one
    # a remembered address outside the subnet now, or taken by a static one, is not kept
    moved = assign(lab_of(MIXED, tmp_path), plan(), remembered={"h1": "10.1.1.1", "r2": "172.30.5.10"})
    assert moved == before


def test_node_addresses_never_meet_dockers_own_range() -> None:
    for subnet in ("10.0.0.0/24", "10.0.0.0/22", "10.0.0.0/29"):
        span, docker = node_range(subnet), ipaddress.ip_network(docker_range(subnet))
        assert span.last < docker.network_address
        assert span.first == ipaddress.ip_network(subnet).network_address + 2  # after the gateway


def test_the_default_prefix_grows_with_the_lab() -> None:
    assert prefix_for(3) == 24
    assert prefix_for(126) == 24
    assert prefix_for(127) == 23


def test_vm_management_lines_come_from_the_catalog(tmp_path: Path) -> None:
    lab = assign(lab_of(MIXED, tmp_path), plan())
    assert lab.nodes["v1"].management_lines == [
        "configure terminal", "interface GigabitEthernet0/0", "ip address 172.30.5.4 255.255.255.0",
        "no shutdown", "end",
    ]
    assert lab.nodes["r1"].management_lines == []  # docker gives containers theirs
    assert lab.nodes["v1"].post_boot_commands[:2] == ["configure terminal", "interface GigabitEthernet0/0"]


# Runtimes -------------------------------------------------------------------------------


def test_a_container_gets_its_static_address(tmp_path: Path) -> None:
    node = assign(lab_of(MIXED, tmp_path), plan()).nodes["r2"]
    spec = build_container_spec("mix", node, 1)
    assert spec.create["labels"][names.LABEL_MGMT_IPV4] == "172.30.5.2"
    assert names.LABEL_MGMT_IPV6 not in spec.create["labels"]
    assert spec.host["network_mode"] == "none" and "networking_config" not in spec.create


def fake_interface_xml(end, nic_model: str) -> str:
    return f"<interface type='ethernet'><model type='{nic_model}'/></interface>"


def test_a_vm_management_nic_joins_the_lab_bridge(tmp_path: Path) -> None:
    node = assign(lab_of(MIXED, tmp_path), plan()).nodes["v1"]
    xml = ET.fromstring(domain_xml(plan_domain("mix", node, [], interface_xml=fake_interface_xml)))
    first = xml.findall("devices/interface")[0]
    assert first.get("type") == "bridge"
    assert first.find("source").get("bridge") == names.mgmt_bridge_name("mix")
    assert first.find("virtualport") is None  # a Linux bridge, not OVS
    unaddressed = lab_of(MIXED, tmp_path).nodes["v1"]  # no address: QEMU user-mode, as before
    xml = ET.fromstring(domain_xml(plan_domain("mix", unaddressed, [], interface_xml=fake_interface_xml)))
    assert xml.findall("devices/interface")[0].get("type") == "user"


def test_the_marker_carries_the_management_address() -> None:
    marker = NodeMarker("mix", "v1", "mini-ios", "10.1.2.3")
    assert parse_marker(metadata_xml(marker)) == marker
    assert parse_marker(metadata_xml(NodeMarker("mix", "v1", "mini-ios"))).mgmt_ipv4 == ""


def test_bridge_names_fit_linux() -> None:
    assert len(names.mgmt_bridge_name("a" * 20)) <= 15


def test_saved_configs_replace_the_startup_config_where_the_kind_takes_one(tmp_path: Path) -> None:
    lab = lab_of(MIXED, tmp_path)
    (tmp_path / "r1.cfg").write_text("hostname r1-saved\n")
    (tmp_path / "h1.cfg").write_text("ip addr\n")  # linux takes no startup config
    (tmp_path / "v1.cfg").write_text("!\nhostname v1-saved\nend\n")
    started, used = with_saved_configs(lab, tmp_path)
    assert set(used) == {"r1", "v1"}
    assert started.nodes["r1"].startup_config == "hostname r1-saved\n"
    assert started.nodes["r2"].startup_config is None
    assert started.nodes["h1"].startup_config is None


# The picture ------------------------------------------------------------


def test_the_svg_names_every_node_and_link_end(tmp_path: Path) -> None:
    lab = lab_of(MIXED, tmp_path)
    vlans = {link.id: 100 + i for i, link in enumerate(lab.links)}
    text = svg(picture_of(assign(lab, plan()), vlans))
    root = ET.fromstring(text)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    words = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"r1", "r2", "h1", "v1", "eth1", "eth2", "GigabitEthernet0/1", "vlan 100", "172.30.5.4"} <= words
    assert "data:image/svg+xml;base64," in markdown(picture_of(lab))


def test_a_link_id_splits_where_both_halves_are_nodes() -> None:
    assert _link_ends("a--b:eth1--c:eth2", {"a--b", "c"}) == (("a--b", "eth1"), ("c", "eth2"))
    assert _link_ends("r1:eth1--r2:eth1", {"r1", "r2"}) == (("r1", "eth1"), ("r2", "eth1"))
    assert _link_ends("x:eth1--y:eth1", {"r1"}) is None


def test_the_management_nic_is_not_a_link_port() -> None:
    """A running VM's live XML names its management tap (vnetN): a redeploy that compares
    link ports must not take it for a link that changed."""
    from providers.libvirt.domain_xml import link_ports

    live = (
        "<domain><devices>"
        "<interface type='bridge'><source bridge='armabc'/><target dev='vnet7'/></interface>"
        "<interface type='bridge'><source bridge='arch-ovs'/><virtualport type='openvswitch'/>"
        "<target dev='art0123'/></interface>"
        "</devices></domain>"
    )
    assert link_ports(live) == [None, "art0123"]


def test_ipv6_addresses_go_to_containers(tmp_path: Path) -> None:
    lab = lab_of(
        """
        name: six
        mgmt: {ipv4-subnet: 10.0.0.0/24, ipv6-subnet: 'fd00:1::/64'}
        topology:
          nodes:
            r1: {kind: frr, mgmt-ipv6: 'fd00:1::10'}
            r2: {kind: frr}
            v1: {kind: mini-ios}
        """,
        tmp_path,
    )
    six = MgmtPlan("n", "b", "10.0.0.0/24", "10.0.0.1", "fd00:1::/64", "fd00:1::1")
    nodes = assign(lab, six).nodes
    assert (nodes["r1"].mgmt_ipv6, nodes["r2"].mgmt_ipv6, nodes["v1"].mgmt_ipv6) == ("fd00:1::10", "fd00:1::2", None)
    spec = build_container_spec("six", nodes["r2"], 0)
    labels = spec.create["labels"]
    assert (labels[names.LABEL_MGMT_IPV4], labels[names.LABEL_MGMT_IPV6]) == ("10.0.0.3", "fd00:1::2")


def test_management_veths_have_host_names_macs_and_markers_of_their_own() -> None:
    from providers.network import mgmt as bridges

    port = bridges.port_name("a-lab", "r1")
    assert len(port) <= 15 and port.startswith("arm") and port != names.mgmt_bridge_name("a-lab")
    assert port != bridges.port_name("a-lab", "r2") and port == bridges.port_name("a-lab", "r1")
    assert bridges.mac_of("10.213.6.2") == "02:42:0a:d5:06:02"  # docker's rule: a restart keeps neighbours right
    assert bridges._owner(bridges.bridge_alias("a-lab", "archetype-a-lab-mgmt")) == ("a-lab", "archetype-a-lab-mgmt")
    assert bridges._owner(bridges.port_alias("a-lab", "r1")) is None  # a port is not a bridge
    assert bridges._owner("archetype-mgmt lab=../x network=n") is None  # not a lab id
