"""Every containerlab field is either used or warned with a reason, and README's table says
which: the classification in topology/clab_fields.py, the README and containerlab agree."""

from __future__ import annotations

import re
from pathlib import Path

from topology.clab_fields import IGNORED_NODE_FIELDS, IGNORED_TOP_FIELDS, NODE_FIELDS, TOP_FIELDS

README = Path(__file__).resolve().parents[2] / "README.md"
# The yaml keys of containerlab's NodeDefinition (types/node_definition.go at commit
# 39ff2b7ccce20f3c4610fcbd1fc030582f4499c1) and of its Topology/Config top level.
CLAB_NODE_FIELDS = ["kind", "group", "type", "startup-config", "startup-delay", "enforce-startup-config", "suppress-startup-config", "auto-remove", "restart-policy", "config", "image", "image-pull-policy", "license", "position", "hostname", "entrypoint", "cmd", "exec", "binds", "volumes", "devices", "cap-add", "privileged", "cgroupns-mode", "cgroup-parent", "pid-mode", "tmpfs", "security-opts", "shm-size", "ports", "mgmt-ipv4", "mgmt-ipv6", "env", "env-files", "user", "labels", "network-mode", "runtime", "cpu", "cpu-set", "memory", "sysctls", "extras", "stages", "dns", "certificate", "healthcheck", "credentials", "aliases", "components", "link-apply-mode", "username", "password", "identity-file"]
CLAB_TOP_FIELDS = ("name", "prefix", "mgmt", "settings", "topology", "debug")


def _table_fields() -> dict[str, str]:
    """field -> its verdict, from README's containerlab table."""
    section = README.read_text().split("## containerlab and netlab labs", 1)[1].split("\n## ", 1)[0]
    found = {}
    for row in section.splitlines():
        if row.startswith("| `"):
            cells = [c.strip() for c in row.strip("|").split("|")]
            if cells[1] in ("node", "top"):  # link rows have fields of their own (`labels`, ...)
                for field in re.findall(r"`([a-z0-9_-]+)`", cells[0]):
                    found[field] = cells[2]
    return found


def test_every_containerlab_field_is_used_or_warned() -> None:
    assert set(CLAB_NODE_FIELDS) <= NODE_FIELDS | set(IGNORED_NODE_FIELDS)
    assert set(CLAB_TOP_FIELDS) <= TOP_FIELDS | set(IGNORED_TOP_FIELDS)
    assert not NODE_FIELDS & set(IGNORED_NODE_FIELDS)


def test_readme_table_names_every_field_as_the_code_treats_it() -> None:
    table = _table_fields()
    for field in [*CLAB_NODE_FIELDS, *CLAB_TOP_FIELDS]:
        assert field in table, f"README's containerlab table does not name {field}"
        verdict = table[field]
        if field in IGNORED_NODE_FIELDS or field in IGNORED_TOP_FIELDS:
            assert verdict.startswith("warned"), (field, verdict)
        else:
            assert verdict.startswith("works"), (field, verdict)
