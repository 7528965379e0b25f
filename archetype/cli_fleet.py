"""Fleet commands and the fleet side of `status` and `connect` (DESIGN.md, multi-host).

A fleet is the set of hosts that publish their facts on the Prefect server named by
PREFECT_API_URL. Without one (no server, or nobody published), everything is this host's.
"""

from __future__ import annotations

import os
import subprocess
from typing import Annotated, Any

import typer

from archetype import render
from archetype.app import (
    EXIT_FAILED,
    EXIT_INVALID,
    JsonOption,
    _emit,
    _exit_on_errors,
    _fail,
    _run,
    _run_flow,
    app,
)


def fleet_hosts() -> list:
    if not os.environ.get("PREFECT_API_URL"):
        return []
    from flows.fleet import read_hosts

    try:
        return read_hosts()
    except Exception as err:  # noqa: BLE001 - the server is the fleet's memory: say it is unreachable
        _fail([f"cannot read the hosts from {os.environ['PREFECT_API_URL']}: {err}"], EXIT_FAILED)
        return []


def fleet_labs(only_lab: str | None) -> list[dict[str, Any]] | None:
    """Every lab on every alive host of the fleet, nodes with their host (None: no fleet)."""
    hosts = fleet_hosts()
    if not hosts:
        return None
    labs: dict[str, list[dict[str, Any]]] = {}
    for host in (h for h in hosts if h.alive):
        for lab_id, nodes in host.labs.items():
            if only_lab is not None and lab_id != only_lab:
                continue
            labs.setdefault(lab_id, []).extend(_node_entry(n, host.name, n[3]) for n in nodes)
    _with_lost_nodes(labs, hosts, only_lab)
    return [{"lab_id": lab, "nodes": sorted(nodes, key=lambda n: n["name"])} for lab, nodes in sorted(labs.items())]


def _with_lost_nodes(labs: dict[str, list[dict[str, Any]]], hosts: list, only_lab: str | None) -> None:
    """The nodes a lost host ran when last heard from (its last facts), state ``lost``, but
    those running on a live host now (re-placed by a deploy or `hosts evacuate`)."""
    for host in (h for h in hosts if h.lost):
        for lab_id, nodes in host.labs.items():
            if only_lab not in (None, lab_id):
                continue
            running = {n["name"] for n in labs.get(lab_id, [])}
            labs.setdefault(lab_id, []).extend(_node_entry(n, host.name, "lost") for n in nodes if n[0] not in running)


def _node_entry(fact: list, host: str, state: str) -> dict[str, Any]:
    """A node as `status` shows it, from a host's published facts (name, kind, provider,
    state, runtime name, addresses)."""
    return {"name": fact[0], "kind": fact[1], "provider": fact[2], "state": state, "runtime_name": fact[4], "host": host,
            # facts of a host whose worker predates the addresses have five fields
            "mgmt_ipv4": fact[5] if len(fact) > 5 else None, "mgmt_ipv6": fact[6] if len(fact) > 6 else None}


def on_this_host(labs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Labs of this host alone: each node's host is this one."""
    from lab.settings import get_settings

    for lab in labs:
        for node in lab["nodes"]:
            node["host"] = get_settings().host_name
    return labs


def host_of(lab: str, node: str) -> Any | None:
    """The fleet host running the node (None: no fleet)."""
    hosts = fleet_hosts()
    if not hosts:
        return None
    for host in (h for h in hosts if h.alive):
        if any(n[0] == node for n in host.labs.get(lab, [])):
            return host
    _fail([f"no node {node!r} of lab {lab!r} on any alive host"], EXIT_FAILED)
    return None


def remote_cli(host: Any, *args: str) -> list[str]:
    """argv that runs `archetype ARGS` on the host (its published access, or ssh)."""
    prefix = list(host.access) or ["ssh", "-t", f"root@{host.address}", "archetype"]
    return [*prefix, *args]


def run_on_node_host(lab: str, node: str, *args: str) -> None:
    """When the node runs on another host of a fleet, run `archetype ARGS` there and exit
    with its status; otherwise return (the command goes on here). For `connect`, and for
    `exec`: `run_on_node_host(lab, node, "exec", lab, node, "--", *command)`."""
    from lab.settings import get_settings

    host = host_of(lab, node)
    if host is None or host.name == get_settings().host_name:
        return
    raise typer.Exit(subprocess.call(remote_cli(host, *args)))


def connect_remote(lab: str, node: str) -> None:
    """`connect` to a node on another host of the fleet (returns when it is here)."""
    run_on_node_host(lab, node, "connect", lab, node)


hosts_app = typer.Typer(help="The hosts of the fleet; drain one for maintenance, undrain it after; evacuate a lost one.",
                        invoke_without_command=True)
app.add_typer(hosts_app, name="hosts")


@hosts_app.callback()
def hosts(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The hosts of the fleet sharing this Prefect server: liveness (lost: not heard from for
    ARCHETYPE_HOST_LOST_SECONDS), capacity, drained or not."""
    if ctx.invoked_subcommand is not None:
        return
    found = _run(fleet_hosts)
    result = {
        "hosts": [
            {"name": h.name, "address": h.address, "alive": h.alive, "lost": h.lost, "drained": h.drained, "cpus": h.cpus,
             "memory_free_mb": h.memory_free_mb, "labs": sorted(h.labs), "updated_at": h.updated_at}
            for h in found
        ]
    }
    _emit(result, as_json, _show_hosts)


def _show_hosts(result: dict[str, Any]) -> None:
    if not result["hosts"]:
        render.console.print("no hosts published on this server (single-host mode)")
        return
    render._table(
        "hosts", ["host", "address", "alive", "drained", "cpus", "free MiB", "labs"],
        [[h["name"], h["address"], "yes" if h["alive"] else "LOST" if h.get("lost") else "NO", "DRAINED" if h.get("drained") else "-", h["cpus"],
          h["memory_free_mb"], ", ".join(h["labs"])]
         for h in result["hosts"]],
    )


def _check_fleet_host(host: str) -> None:
    from lab.names import is_valid_host_name

    if not is_valid_host_name(host):
        _fail([f"invalid host name {host!r}"], EXIT_INVALID)
    if not os.environ.get("PREFECT_API_URL"):
        _fail(["no fleet: PREFECT_API_URL names no shared Prefect server"], EXIT_INVALID)


@hosts_app.command("drain")
def drain(
    host: str,
    labs: Annotated[list[str] | None, typer.Option("--lab", help="only this lab's nodes move now (repeatable)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Take a host out of service: nothing new is placed there; each of its nodes moves to a host with room."""
    _check_fleet_host(host)
    from flows.drain_host import drain_host
    from lab.names import is_valid_lab_id

    bad = [lab for lab in labs or [] if not is_valid_lab_id(lab)]
    if bad:
        _fail([f"--lab: invalid lab id {lab!r}" for lab in bad], EXIT_INVALID)
    result = _run_flow(as_json, drain_host, host=host, labs=labs or None)
    _emit(result, as_json, _show_drain)
    _exit_on_errors(result)


@hosts_app.command("undrain")
def undrain(host: str, as_json: JsonOption = False) -> None:
    """Make a drained host schedulable again (nodes moved away stay where they are)."""
    _check_fleet_host(host)
    from flows.drain_host import undrain_host

    _emit(_run(lambda: undrain_host(host)), as_json, lambda r: typer.echo(f"{r['host']}: schedulable"))


@hosts_app.command("evacuate")
def evacuate(host: str, as_json: JsonOption = False) -> None:
    """Bring a lost host's nodes up on live hosts, from their saved configs (archetype configs), else the topology."""
    _check_fleet_host(host)
    from flows.evacuate_host import evacuate_host

    result = _run_flow(as_json, evacuate_host, host=host)
    _emit(result, as_json, _show_evacuate)
    _exit_on_errors(result)


def _show_evacuate(result: dict[str, Any]) -> None:
    rows = [[f"{m['lab_id']}/{m['node']}", m["from"], m["to"], m["state"]] for m in result["moves"]]
    if rows:
        render._table(f"evacuated {result['host']}", ["node", "from", "to", "state"], rows)
    typer.echo(f"{result['host']}: evacuated, {len(rows)} node(s) re-placed in {result['seconds']:.1f} s")


def _show_drain(result: dict[str, Any]) -> None:
    rows = [[f"{m['lab_id']}/{m['node']}", m.get("from", ""), m["to"], m.get("mode", ""),
             "" if m.get("seconds") is None else f"{m['seconds']:.1f}",
             "" if m.get("downtime_seconds") is None else f"{m['downtime_seconds']:.2f}"]
            for m in result["moves"]]
    if rows:
        render._table(f"drained {result['host']}", ["node", "from", "to", "mode", "seconds", "down s"], rows)
    typer.echo(f"{result['host']}: drained, {len(rows)} node(s) moved in {result['seconds']:.1f} s")
