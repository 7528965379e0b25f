"""`show version` on every node of a lab that netmiko can reach, with Nornir:

    archetype inventory LAB --format nornir --out hosts.yaml
    python examples/automation/nornir_show_version.py hosts.yaml

Logins come from the variables each host's data names (ARCHETYPE_USERNAME_<KIND>,
ARCHETYPE_PASSWORD_<KIND>), or the image's own default where the inventory gives one.
A node without a platform (a container: netmiko has no docker transport) is listed with
the inventory's note. Exit status 1 when a reachable node failed.
"""

from __future__ import annotations

import os
import sys

from nornir import InitNornir
from nornir.core.inventory import Host
from nornir_netmiko.tasks import netmiko_send_command


def login(host: Host) -> None:
    names = host.data.get("credentials_env")
    defaults = host.data.get("credentials_default") or {}
    if names:
        host.username = os.environ.get(names["username"], defaults.get("username"))
        host.password = os.environ.get(names["password"], defaults.get("password"))


def main(hosts_file: str) -> int:
    nornir = InitNornir(runner={"plugin": "threaded", "options": {"num_workers": 10}}, logging={"enabled": False},
                        inventory={"plugin": "SimpleInventory", "options": {"host_file": hosts_file}})
    for host in nornir.inventory.hosts.values():
        login(host)
    reachable = nornir.filter(filter_func=lambda host: host.platform is not None)
    results = reachable.run(task=netmiko_send_command, command_string="show version")
    for name, host in sorted(nornir.inventory.hosts.items()):
        if name not in results:
            print(f"{name}: not reached ({host.data.get('note')})")
        elif results[name].failed:
            print(f"{name}: FAILED {results[name][0].exception!r}")
        else:
            print(f"{name} ({host.platform}, port {host.port}): {results[name][0].result.splitlines()[0]}")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
