"""`show version` on every node of a lab that netmiko can reach, with Nornir:

    archetype inventory LAB --format nornir --out hosts.yaml
    python examples/automation/nornir_show_version.py hosts.yaml

Logins come from the variables each host's data names (ARCHETYPE_USERNAME_<KIND>,
ARCHETYPE_PASSWORD_<KIND>), or the image's own default where the inventory gives one.
FRR containers serve SSH with a shell (netmiko's linux driver): the command goes through
vtysh there. A node without a platform (a container that serves no SSH: netmiko has no
docker transport) is listed with the inventory's note. Exit status 1 when a reachable node
failed.
"""

from __future__ import annotations

import os
import sys

from nornir import InitNornir
from nornir.core.inventory import Host
from nornir.core.task import Result, Task
from nornir_netmiko.tasks import netmiko_send_command

# The command per kind where the login shell is not the device's CLI
COMMANDS = {"frr": "vtysh -c 'show version'"}


def login(host: Host) -> None:
    names = host.data.get("credentials_env")
    defaults = host.data.get("credentials_default") or {}
    if names:
        host.username = os.environ.get(names["username"], defaults.get("username"))
        host.password = os.environ.get(names["password"], defaults.get("password"))


def show_version(task: Task) -> Result:
    command = COMMANDS.get(task.host.data.get("kind"), "show version")
    return Result(host=task.host, result=task.run(task=netmiko_send_command, command_string=command).result)


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def main(hosts_file: str) -> int:
    nornir = InitNornir(runner={"plugin": "threaded", "options": {"num_workers": 10}}, logging={"enabled": False},
                        inventory={"plugin": "SimpleInventory", "options": {"host_file": hosts_file}})
    for host in nornir.inventory.hosts.values():
        login(host)
    reachable = nornir.filter(filter_func=lambda host: host.platform is not None)
    results = reachable.run(task=show_version)
    for name, host in sorted(nornir.inventory.hosts.items()):
        if name not in results:
            print(f"{name}: not reached ({host.data.get('note')})")
        elif results[name].failed:
            print(f"{name}: FAILED {results[name][0].exception!r}")
        else:
            print(f"{name} ({host.platform}, port {host.port}): {first_line(results[name][0].result)}")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
