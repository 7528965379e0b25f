"""The vendor catalog is consistent, and carries the commands real devices need."""

from __future__ import annotations

import re

import pytest

from lab.errors import CatalogError
from vendors import catalog, get_vendor
from vendors.model import ExtractionMethod, Provider, Readiness, ReadinessMethod

REQUIRED_KINDS = {
    "linux", "frr", "ceos", "nokia_srlinux", "juniper_crpd", "vyos", "sonic-vs", "cisco_iosv",
    "cisco_csr1000v", "cisco_n9kv", "juniper_vjunos_router", "mini-ios",
}
KINDS = catalog().kinds()


def test_required_kinds_are_there() -> None:
    assert {v.kind for v in KINDS} >= REQUIRED_KINDS


@pytest.mark.parametrize("vendor", KINDS, ids=lambda v: v.kind)
def test_entry_is_consistent(vendor) -> None:
    assert vendor.provider in (Provider.DOCKER, Provider.LIBVIRT)
    assert (vendor.container is not None) == (vendor.provider is Provider.DOCKER)
    assert vendor.config_extraction.method in ExtractionMethod
    if vendor.provider is Provider.LIBVIRT:
        assert vendor.config_extraction.method in (ExtractionMethod.CONSOLE, ExtractionMethod.NONE)
    naming = vendor.interfaces
    for port in (1, 2, naming.max_ports):
        assert naming.port_of(naming.vendor_name(port)) == port  # names round-trip
    for pattern in [vendor.readiness.pattern, vendor.console.prompt, vendor.console.login_prompt,
                    vendor.console.password_prompt, *vendor.console.error_patterns,
                    *(d.expect for d in vendor.console.dialogs)]:
        if pattern:
            re.compile(pattern)
    if vendor.readiness.method is ReadinessMethod.CLI_PROBE:
        assert vendor.readiness.command
    assert vendor.capabilities


@pytest.mark.parametrize(("readiness", "refused"), [
    ({"method": "log_pattern", "pattern": "up", "starting_marker": "/run/starting"}, "goes with a cli_probe"),
    ({"method": "cli_probe", "command": ["true"], "starting_marker": "run/starting"}, "an absolute path"),
    ({"method": "cli_probe", "command": ["true"], "starting_marker": "/run/../etc/passwd"}, "without '..'"),
])
def test_a_starting_marker_is_an_absolute_path_before_a_probe(readiness: dict, refused: str) -> None:
    # the provider looks it up from the host, under the container's root: no relative or
    # climbing path, and only where a probe follows it
    with pytest.raises(ValueError, match=refused):
        Readiness(**readiness)
    assert Readiness(method="cli_probe", command=["true"], starting_marker="/run/starting").starting_marker


def test_aliases_resolve_and_unknown_kinds_list_the_known() -> None:
    assert get_vendor("srl").kind == "nokia_srlinux"
    assert get_vendor("arista_ceos").kind == "ceos"
    assert get_vendor("crpd").kind == "juniper_crpd"
    with pytest.raises(CatalogError, match=r"kind 'nope' is not supported. Supported kinds are \["):
        get_vendor("nope")


def test_real_commands_are_carried() -> None:
    assert get_vendor("ceos").config_extraction.command == "FastCli -p 15 -c 'show running-config'"
    assert any("EOS_FORWARD" in c for c in get_vendor("ceos").post_boot_commands)
    assert any("zerotouch" in c for c in get_vendor("ceos").post_boot_commands)
    assert get_vendor("nokia_srlinux").config_extraction.command == "sr_cli -d 'info flat'"
    assert get_vendor("frr").config_extraction.command == "vtysh -c 'show running-config'"
    iosv = get_vendor("cisco_iosv")
    assert iosv.post_boot_commands == ["terminal length 0", "configure terminal", "no ip domain-lookup", "end"]


def test_mini_ios_speaks_the_iosv_dialect() -> None:
    iosv, mini = get_vendor("cisco_iosv"), get_vendor("mini-ios")
    assert mini.console == iosv.console
    assert mini.post_boot_commands == iosv.post_boot_commands
    assert mini.config_extraction == iosv.config_extraction
    assert mini.interfaces == iosv.interfaces
    assert mini.vm.kernel and not mini.vm.disk_image


def test_interface_mapping_to_runtime_names() -> None:
    srl = get_vendor("srl").interfaces
    assert srl.runtime_name(srl.port_of("ethernet-1/3")) == "e1-3"
    ceos = get_vendor("ceos").interfaces
    assert ceos.runtime_name(ceos.port_of("Ethernet2")) == "eth2"
    sonic = get_vendor("sonic-vs").interfaces
    assert sonic.port_of("Ethernet4") == 2 and sonic.port_of("Ethernet2") is None
    iosv = get_vendor("cisco_iosv").interfaces
    assert iosv.nic_index(iosv.port_of("GigabitEthernet0/1")) == 1  # NIC 0 is Gi0/0, management


@pytest.mark.parametrize(
    ("kind", "raw", "config"),
    [
        ("cisco_iosv", "Building configuration...\n\nCurrent configuration : 1817 bytes\n!\nversion 15.9\n!\nend\n",
         "!\nversion 15.9\n!\nend\n"),
        ("frr", "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\n!\nend\n",
         "!\nfrr version 8.4.4\n!\nend\n"),
        # only the leading lines go: the same words later in the text stay
        ("frr", "!\nhostname r1\n! Building configuration...\nend\n", "!\nhostname r1\n! Building configuration...\nend\n"),
        ("nokia_srlinux", "set / system name host-name srl1\n", "set / system name host-name srl1\n"),
    ],
)
def test_extracted_text_loses_the_command_preamble(kind: str, raw: str, config: str) -> None:
    assert get_vendor(kind).config_extraction.without_preamble(raw) == config
