"""Inventories for automation tools, from what runs: Ansible (YAML) and Nornir (hosts file).

Each node gets the connection its kind really serves (the catalog's ``management.access``):
- ``docker-exec``: Ansible's ``community.docker.docker`` connection to the container by
  name; a container on another host of a fleet through that host's dockerd (``docker -H``
  with the URL the host publishes). netmiko has no docker transport: Nornir takes the kind's
  ``management.nornir_access`` instead (archetype/frr: ssh, its dropbear), or lists the node
  with a note when the kind has none.
- ``ssh``: ``ansible.netcommon.network_cli`` with the kind's ``ansible_network_os``; netmiko's
  platform for the kind, port 22.
- ``telnet``: netmiko's ``<platform>_telnet`` on port 23; Ansible has no CLI connection over
  telnet, so the node is listed with a note and no connection.
- ``console``: nothing on the network; listed with a note (``archetype exec`` reaches it).

Credentials are never written in clear: Ansible reads them from environment variables
through ``lookup('env', ...)`` when it runs a play; the Nornir file names the variables in
each host's data. For our own test images (``management.inventory_login``) the image's
fixed login is the fallback, so the README's examples run as written.
"""

from __future__ import annotations

import re
from typing import Any

from vendors import get_vendor
from vendors.model import Access, VendorConfig

PORTS = {Access.SSH: 22, Access.TELNET: 23}

# Ansible's variables per access: the connection plugin and what it needs
ANSIBLE_ACCESS: dict[Access, dict[str, Any]] = {
    Access.DOCKER_EXEC: {"ansible_connection": "community.docker.docker"},
    # lab nodes get new host keys on every deploy: known_hosts would only be in the way
    Access.SSH: {"ansible_connection": "ansible.netcommon.network_cli", "ansible_host_key_checking": False},
    Access.TELNET: {},
    Access.CONSOLE: {},
}
NOTES = {
    Access.TELNET: "telnet only: Ansible has no CLI connection over telnet; Nornir (netmiko {platform}) "
    "or `archetype exec` reach it",
    Access.CONSOLE: "no CLI on the network: `archetype exec LAB NODE -- CMD` types commands on its console",
}
NORNIR_DOCKER_NOTE = "netmiko has no docker transport: `docker exec` or Ansible's docker connection reach it"


def credential_variables(kind: str) -> dict[str, str]:
    """The environment variables that hold a kind's login: ARCHETYPE_USERNAME_MINI_IOS..."""
    suffix = re.sub(r"[^A-Z0-9]+", "_", kind.upper())
    return {"username": f"ARCHETYPE_USERNAME_{suffix}", "password": f"ARCHETYPE_PASSWORD_{suffix}"}


def group_name(kind: str) -> str:
    """Ansible group names are identifiers (dashes give warnings)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", kind)


def ansible_inventory(lab_id: str, nodes: list[dict[str, Any]],
                      engines: dict[str, str] | None = None) -> dict[str, Any]:
    """An Ansible YAML inventory: one group per kind, each node with the connection its kind
    serves. ``engines`` maps the fleet hosts other than this one to their dockerd URL."""
    groups: dict[str, Any] = {}
    for node in nodes:
        vendor = get_vendor(node["kind"])
        group = groups.setdefault(group_name(vendor.kind), {"hosts": {}, "vars": _group_vars(vendor)})
        group["hosts"][node["name"]] = _ansible_host(vendor, node, engines or {})
    return {"all": {"vars": {"archetype_lab": lab_id}, "children": groups}}


def _ansible_host(vendor: VendorConfig, node: dict[str, Any], engines: dict[str, str]) -> dict[str, Any]:
    access = vendor.management.access
    host: dict[str, Any] = {"archetype_mgmt_ipv4": node.get("mgmt_ipv4")}
    if node.get("host"):
        host["archetype_host"] = node["host"]
    if access is Access.DOCKER_EXEC:
        host["ansible_host"] = node.get("runtime_name")
        engine = engines.get(node.get("host") or "")
        if engine:
            host["ansible_docker_extra_args"] = f"-H {engine}"
        return host
    host["ansible_host"] = node.get("mgmt_ipv4")
    if access is Access.SSH and vendor.management.cli_port:
        host["ansible_port"] = vendor.management.cli_port
    return host


def _group_vars(vendor: VendorConfig) -> dict[str, Any]:
    management = vendor.management
    values: dict[str, Any] = {"archetype_kind": vendor.kind, "archetype_access": management.access.value}
    values.update(ANSIBLE_ACCESS[management.access])
    if management.access in NOTES:
        values["archetype_note"] = NOTES[management.access].format(platform=_nornir_platform(vendor))
    if management.access is not Access.SSH:
        return values
    if management.ansible_connection:
        values["ansible_connection"] = management.ansible_connection
    if management.ansible_network_os:
        values["ansible_network_os"] = management.ansible_network_os
    user, password = _login_defaults(vendor)
    values["ansible_user"] = _env_lookup(credential_variables(vendor.kind)["username"], user)
    values["ansible_password"] = _env_lookup(credential_variables(vendor.kind)["password"], password)
    return values


def _login_defaults(vendor: VendorConfig) -> tuple[str | None, str | None]:
    """The user name is a default for every kind; the password only for our own images."""
    management = vendor.management
    username = management.username or vendor.console.username
    if management.inventory_login:
        return username, management.password or vendor.console.password
    return username, None


def _env_lookup(variable: str, default: str | None) -> str:
    fallback = f", default='{default}'" if default else ""
    return f"{{{{ lookup('ansible.builtin.env', '{variable}'{fallback}) }}}}"


def _nornir_access(vendor: VendorConfig) -> Access:
    return vendor.management.nornir_access or vendor.management.access


def _nornir_platform(vendor: VendorConfig) -> str | None:
    platform = vendor.management.nornir_platform
    if platform and _nornir_access(vendor) is Access.TELNET:
        return f"{platform}_telnet"  # netmiko's telnet drivers
    return platform


def nornir_hosts(lab_id: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A Nornir SimpleInventory hosts file: hostname, netmiko platform and port as the node
    serves them, and data naming where the login is (environment variables), never the
    login itself unless it is our own image's fixed one."""
    hosts: dict[str, Any] = {}
    for node in nodes:
        vendor = get_vendor(node["kind"])
        access = _nornir_access(vendor)
        entry: dict[str, Any] = {"hostname": node.get("mgmt_ipv4")}
        data: dict[str, Any] = {"lab": lab_id, "kind": vendor.kind, "provider": node.get("provider"),
                                "host": node.get("host"), "access": access.value,
                                "runtime_name": node.get("runtime_name")}
        if access in PORTS:
            entry["platform"] = _nornir_platform(vendor)
            entry["port"] = vendor.management.cli_port or PORTS[access]
            data["credentials_env"] = credential_variables(vendor.kind)
            user, password = _login_defaults(vendor)
            data["credentials_default"] = {"username": user, "password": password}
        else:
            data["note"] = NORNIR_DOCKER_NOTE if access is Access.DOCKER_EXEC else NOTES[access]
        entry["data"] = data
        hosts[node["name"]] = entry
    return hosts
