"""Every containerlab topology field, and what Archetype does with it: used, or read and
ignored with a warning saying why. (Refused values -- a link type we do not make, a stage
we do not wait for -- are errors where they are parsed.) README.md's table is this module
in prose; tests/unit/test_containerlab_fields.py keeps the two the same.
"""

from __future__ import annotations

# Node fields (in `nodes`, `kinds`, `groups`, `defaults`) that Archetype uses.
NODE_FIELDS = frozenset({
    "kind", "image", "startup-config", "env", "binds", "exec", "labels", "memory", "cpus", "cpu", "group",
    "restart-policy", "startup-delay", "stages", "wait-for",
    "mgmt-ipv4", "mgmt-ipv6", "mgmt_ipv4", "mgmt_ipv6",  # topology.mgmt
    "host",  # Archetype's own: the lab host of a fleet it runs on
})

_NOT_PRIVILEGED = "containers are never privileged nor given capabilities by the topology (see README)"
_SECRETS = "console logins come from settings, never from the topology"

# Node fields read and ignored, each with the reason the warning gives.
IGNORED_NODE_FIELDS: dict[str, str] = {
    "type": "the device variant is the kind's (one image per kind)",
    "license": "licence files are not mounted",
    "ports": "no ports are published on the host",
    "publish": "no ports are published on the host",
    "cmd": "the kind's command is used",
    "entrypoint": "the kind's entrypoint is used",
    "user": "the image's user is used",
    "hostname": "the hostname is the node name",
    "network-mode": "every node has the lab's management network and OVS data links",
    "enforce-startup-config": "", "suppress-startup-config": "",
    "auto-remove": "destroy removes the lab",
    "runtime": "containers run on docker, VMs on libvirt, by kind",
    "sandbox": "", "kernel": "", "certificate": "no TLS certificates are made",
    "dns": "docker's DNS settings are used",
    "healthcheck": "readiness is the kind's check",
    "image-pull-policy": "a missing image is pulled; a present one is used",
    "config": "", "components": "", "aliases": "",
    "mac-address": "MAC addresses are the runtime's",
    "cpu-set": "", "shm-size": "", "devices": "host devices are not passed in",
    "volumes": "use binds (paths inside the lab's folders)",
    "tmpfs": "the kind's tmpfs mounts are used",
    "sysctls": "the kind's sysctls are used; net.* can be written by the node itself",
    "env-files": "", "memory-reservation": "",
    "ipv4": "", "ipv6": "",
    "extras": "only the extras the kind honours are read (e.g. frr.daemons)",
    "position": "",
    "privileged": _NOT_PRIVILEGED,
    "cap-add": _NOT_PRIVILEGED,
    "security-opts": _NOT_PRIVILEGED,
    "pid-mode": _NOT_PRIVILEGED,
    "cgroupns-mode": _NOT_PRIVILEGED,
    "cgroup-parent": "",
    "username": _SECRETS, "password": _SECRETS, "identity-file": _SECRETS, "credentials": _SECRETS,
    "link-apply-mode": "links are wired once the node runs",
}

# Top-level fields.
TOP_FIELDS = frozenset({"name", "topology", "prefix", "mgmt",
                        "validate"})  # Archetype's own, in netlab's form: tests (topology/checks.py)
IGNORED_TOP_FIELDS: dict[str, str] = {
    "settings": "certificate and console settings are Archetype's own",
    "debug": "",
}
