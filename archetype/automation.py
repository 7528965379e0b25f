"""Inventories for automation tools, from what runs: Ansible (YAML) and Nornir (hosts file).

Credentials are never written in clear: Ansible reads them from environment variables
through ``lookup('env', ...)`` when it runs a play; the Nornir file names the variables in
each host's data for the caller's transform function.
"""

from __future__ import annotations

import re
from typing import Any

from vendors import get_vendor


def credential_variables(kind: str) -> dict[str, str]:
    """The environment variables that hold a kind's login: ARCHETYPE_USERNAME_MINI_IOS..."""
    suffix = re.sub(r"[^A-Z0-9]+", "_", kind.upper())
    return {"username": f"ARCHETYPE_USERNAME_{suffix}", "password": f"ARCHETYPE_PASSWORD_{suffix}"}


def group_name(kind: str) -> str:
    """Ansible group names are identifiers (dashes give warnings)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", kind)


def ansible_inventory(lab_id: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """An Ansible YAML inventory: one group per kind, ``ansible_host`` per node, the kind's
    ``ansible_network_os`` / connection, and the login as env lookups."""
    groups: dict[str, Any] = {}
    for node in nodes:
        vendor = get_vendor(node["kind"])
        group = groups.setdefault(group_name(vendor.kind), {"hosts": {}, "vars": _group_vars(vendor)})
        host: dict[str, Any] = {"ansible_host": node.get("mgmt_ipv4")}
        if vendor.management.cli_port:
            host["ansible_port"] = vendor.management.cli_port
        group["hosts"][node["name"]] = host
    return {"all": {"vars": {"archetype_lab": lab_id}, "children": groups}}


def _group_vars(vendor: Any) -> dict[str, Any]:
    env = credential_variables(vendor.kind)
    values: dict[str, Any] = {"archetype_kind": vendor.kind}
    if vendor.management.ansible_network_os:
        values["ansible_network_os"] = vendor.management.ansible_network_os
    if vendor.management.ansible_connection:
        values["ansible_connection"] = vendor.management.ansible_connection
    default_user = vendor.console.username
    user_default = f", default='{default_user}'" if default_user else ""
    values["ansible_user"] = f"{{{{ lookup('ansible.builtin.env', '{env['username']}'{user_default}) }}}}"
    values["ansible_password"] = f"{{{{ lookup('ansible.builtin.env', '{env['password']}') }}}}"
    return values


def nornir_hosts(lab_id: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A Nornir SimpleInventory hosts file: hostname, platform, and data naming where the
    login is (environment variables), never the login itself."""
    hosts: dict[str, Any] = {}
    for node in nodes:
        vendor = get_vendor(node["kind"])
        entry: dict[str, Any] = {"hostname": node.get("mgmt_ipv4")}
        if vendor.management.nornir_platform:
            entry["platform"] = vendor.management.nornir_platform
        if vendor.management.cli_port:
            entry["port"] = vendor.management.cli_port
        entry["data"] = {"lab": lab_id, "kind": vendor.kind, "provider": node.get("provider"),
                         "credentials_env": credential_variables(vendor.kind)}
        hosts[node["name"]] = entry
    return hosts
