"""Commands around the management network: ``inventory``, ``save``, ``graph``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from archetype import render
from archetype.app import (
    EXIT_FAILED,
    EXIT_INVALID,
    JsonOption,
    _check_lab_id,
    _emit,
    _fail,
    _run,
    _run_flow,
    app,
)


class InventoryFormat(StrEnum):
    ANSIBLE = "ansible"
    NORNIR = "nornir"


@app.command()
def inventory(
    lab: str,
    fmt: Annotated[InventoryFormat, typer.Option("--format", help="ansible (YAML inventory) or nornir (hosts file)")]
    = InventoryFormat.ANSIBLE,
    out: Annotated[Path | None, typer.Option("--out", help="Write the file here (default: stdout)")] = None,
    as_json: JsonOption = False,
) -> None:
    """An inventory of a running lab for Ansible or Nornir: every node with the connection its
    kind serves (docker for containers, SSH for VMs; a fleet's containers through their host's
    dockerd); logins are environment variables (ARCHETYPE_USERNAME_<KIND>, ARCHETYPE_PASSWORD_<KIND>)."""
    _check_lab_id(lab)
    from archetype.automation import ansible_inventory, nornir_hosts

    nodes, engines = _lab_nodes(lab)
    document = ansible_inventory(lab, nodes, engines) if fmt is InventoryFormat.ANSIBLE else nornir_hosts(lab, nodes)
    text = yaml.safe_dump(document, sort_keys=False)
    if out is not None:
        _write(out, text)
    result = {"lab_id": lab, "format": fmt.value, "path": str(out) if out else None, "inventory": document}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    elif out is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {out}")
    missing = [n["name"] for n in nodes if not n.get("mgmt_ipv4")]
    if missing:
        _fail([f"no management address for {', '.join(missing)}"], EXIT_FAILED)


def _lab_nodes(lab: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The lab's nodes (with their host), and the dockerd URL of each other fleet host."""
    from archetype.cli_fleet import fleet_hosts, fleet_labs, on_this_host
    from lab.settings import get_settings
    from providers.labs import discover

    labs = fleet_labs(lab)  # a fleet: every host's nodes, from the facts they publish
    engines: dict[str, str] = {}
    if labs is None:
        labs = _run(lambda: on_this_host([found.as_dict() for found in discover(lab)]))
    else:
        here = get_settings().host_name
        engines = {h.name: h.docker_url for h in fleet_hosts() if h.docker_url and h.name != here}
    if not labs:
        _fail([f"no lab {lab!r} on this host"], EXIT_FAILED)
    return labs[0]["nodes"], engines


@app.command()
def save(lab: str, as_json: JsonOption = False) -> None:
    """Make every node keep its running config on the device (write memory, ...)."""
    _check_lab_id(lab)
    from flows.save_configs import save_configs

    result = _run_flow(as_json, save_configs, lab=lab)
    _emit(result, as_json, render.show_saved)
    if any(entry["ok"] is False for entry in result["nodes"].values()):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def graph(
    source: Annotated[str, typer.Argument(help="A topology file, or the id of a lab running here")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the SVG here (default: stdout)")] = None,
    as_json: JsonOption = False,
) -> None:
    """A picture of a lab (SVG): nodes by kind and host, links with interface names and VLANs."""
    from topology.picture import svg

    picture = _picture(source)
    text = svg(picture)
    if out is not None:
        _write(out, text)
    if as_json:
        typer.echo(json.dumps(_picture_summary(picture, out), indent=2))
    elif out is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {out}")


def _picture(source: str) -> Any:
    path = Path(source)
    if path.is_file():
        from topology import load_topology
        from topology.picture import picture_of

        return picture_of(_run(lambda: load_topology(path)))
    from lab.names import is_valid_lab_id

    if not is_valid_lab_id(source):
        _fail([f"{source!r} is neither a topology file nor a lab id"], EXIT_INVALID)
    from providers.labs import live_picture

    return _run(lambda: live_picture(source))


def _picture_summary(picture: Any, out: Path | None) -> dict[str, Any]:
    return {
        "lab_id": picture.lab_id,
        "path": str(out) if out else None,
        "nodes": [{"name": n.name, "kind": n.kind, "host": n.host or None, "mgmt_ipv4": n.mgmt_ipv4} for n in picture.nodes],
        "links": [{"endpoints": [f"{lk.a}:{lk.a_interface}", f"{lk.b}:{lk.b_interface}"], "vlan": lk.vlan}
                  for lk in picture.links],
    }


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as err:
        _fail([f"cannot write {path}: {err.strerror or err}"], EXIT_FAILED)
