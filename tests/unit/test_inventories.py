"""Inventories (pure logic): each node gets the connection its kind's catalog entry says it
serves; logins stay out of the files unless they are our own image's fixed one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from archetype import automation
from archetype.automation import ansible_inventory, nornir_hosts
from vendors import get_vendor
from vendors.model import Access

NODES = [
    {"name": "r1", "kind": "frr", "provider": "docker", "mgmt_ipv4": "10.0.0.2", "runtime_name": "archetype-mix-r1",
     "host": "lab-1"},
    {"name": "r2", "kind": "frr", "provider": "docker", "mgmt_ipv4": "10.0.1.2", "runtime_name": "archetype-mix-r2",
     "host": "lab-2"},
    {"name": "v1", "kind": "mini-ios", "provider": "libvirt", "mgmt_ipv4": "10.0.0.3", "runtime_name": "arch-mix-v1",
     "host": "lab-1"},
    {"name": "ios", "kind": "cisco_iosv", "provider": "libvirt", "mgmt_ipv4": "10.0.0.4", "runtime_name": "arch-mix-ios",
     "host": "lab-1"},
]


@pytest.fixture
def telnet_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind `old-ios`: IOS whose vty lines serve telnet alone."""
    ios = get_vendor("cisco_iosv")
    old = ios.model_copy(update={"kind": "old-ios", "management": ios.management.model_copy(
        update={"access": Access.TELNET})})
    monkeypatch.setattr(automation, "get_vendor", lambda kind: old if kind == "old-ios" else get_vendor(kind))


def test_every_kind_says_what_it_serves() -> None:
    assert get_vendor("frr").management.access is Access.DOCKER_EXEC
    assert get_vendor("linux").management.access is Access.DOCKER_EXEC
    assert get_vendor("mini-ios").management.access is Access.SSH
    assert get_vendor("cisco_iosv").management.access is Access.CONSOLE  # no SSH commands in VENDOR-FACTS


def test_containers_go_through_docker_and_vms_over_ssh() -> None:
    groups = ansible_inventory("mix", NODES, {"lab-2": "ssh://root@192.0.2.2"})["all"]["children"]
    assert groups["frr"]["vars"]["ansible_connection"] == "community.docker.docker"
    assert "ansible_network_os" not in groups["frr"]["vars"]  # frr.frr is not in the Ansible package
    assert "ansible_user" not in groups["frr"]["vars"]  # it would be the user inside the container
    assert groups["frr"]["hosts"]["r1"]["ansible_host"] == "archetype-mix-r1"
    assert "ansible_docker_extra_args" not in groups["frr"]["hosts"]["r1"]  # this host's dockerd
    assert groups["frr"]["hosts"]["r2"]["ansible_docker_extra_args"] == "-H ssh://root@192.0.2.2"
    ios = groups["mini_ios"]
    assert ios["vars"]["ansible_connection"] == "ansible.netcommon.network_cli"
    assert ios["vars"]["ansible_network_os"] == "cisco.ios.ios"
    assert ios["hosts"]["v1"]["ansible_host"] == "10.0.0.3"
    assert "ansible_port" not in ios["hosts"]["v1"]  # 22
    assert ios["vars"]["ansible_password"] == (
        "{{ lookup('ansible.builtin.env', 'ARCHETYPE_PASSWORD_MINI_IOS', default='admin') }}")


def test_a_kind_without_a_network_cli_gets_no_false_connection(telnet_only: None) -> None:
    nodes = [*NODES, {"name": "old", "kind": "old-ios", "provider": "libvirt", "mgmt_ipv4": "10.0.0.5"}]
    groups = ansible_inventory("mix", nodes)["all"]["children"]
    for group in ("cisco_iosv", "old_ios"):
        assert "ansible_connection" not in groups[group]["vars"]
        assert "ansible_network_os" not in groups[group]["vars"]
    assert "cisco_ios_telnet" in groups["old_ios"]["vars"]["archetype_note"]
    assert "archetype exec" in groups["cisco_iosv"]["vars"]["archetype_note"]
    text = yaml.safe_dump(groups["cisco_iosv"])
    assert "admin" not in text  # a real image's password is never written, not even as a default


def test_the_nornir_hosts_file_says_platform_and_port(telnet_only: None) -> None:
    nodes = [*NODES, {"name": "old", "kind": "old-ios", "provider": "libvirt", "mgmt_ipv4": "10.0.0.5"}]
    hosts = nornir_hosts("mix", nodes)
    assert (hosts["v1"]["hostname"], hosts["v1"]["platform"], hosts["v1"]["port"]) == ("10.0.0.3", "cisco_ios", 22)
    assert (hosts["old"]["platform"], hosts["old"]["port"]) == ("cisco_ios_telnet", 23)
    # netmiko has no docker transport: FRR's Nornir access is the image's SSH, a shell
    assert (hosts["r1"]["hostname"], hosts["r1"]["platform"], hosts["r1"]["port"]) == ("10.0.0.2", "linux", 22)
    assert hosts["r1"]["data"]["access"] == "ssh"
    assert hosts["r1"]["data"]["credentials_default"] == {"username": "admin", "password": "admin"}
    assert hosts["r1"]["data"]["credentials_env"]["password"] == "ARCHETYPE_PASSWORD_FRR"
    assert "platform" not in hosts["ios"] and "password" not in hosts["ios"]
    assert hosts["v1"]["data"]["credentials_env"]["password"] == "ARCHETYPE_PASSWORD_MINI_IOS"


def test_nornir_loads_the_hosts_file_as_written(tmp_path: Path) -> None:
    from nornir import InitNornir

    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yaml.safe_dump(nornir_hosts("mix", NODES)))
    nornir = InitNornir(runner={"plugin": "serial"}, logging={"enabled": False},
                        inventory={"plugin": "SimpleInventory", "options": {"host_file": str(hosts)}})
    v1 = nornir.inventory.hosts["v1"]
    assert (v1.hostname, v1.platform, v1.port, v1["kind"]) == ("10.0.0.3", "cisco_ios", 22, "mini-ios")
    assert v1.password is None  # logins come from the environment (or the data's default), never the file's fields


def test_a_container_without_nornir_access_is_listed_with_a_note() -> None:
    hosts = nornir_hosts("mix", [{"name": "h1", "kind": "linux", "provider": "docker", "mgmt_ipv4": "10.0.0.9"}])
    assert "platform" not in hosts["h1"] and "docker" in hosts["h1"]["data"]["note"]
    assert "credentials_default" not in hosts["h1"]["data"]


def test_frr_keeps_docker_for_ansible_and_ssh_for_nornir() -> None:
    management = get_vendor("frr").management
    assert (management.access, management.nornir_access) == (Access.DOCKER_EXEC, Access.SSH)
    groups = ansible_inventory("mix", NODES)["all"]["children"]
    assert "ansible_password" not in groups["frr"]["vars"]  # the docker connection needs no login
