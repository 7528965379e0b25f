"""What the command line shows a person: summaries as dicts (for --json) and rich tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from topology import Lab

console = Console()


def lab_summary(lab: Lab) -> dict[str, Any]:
    return {
        "lab_id": lab.id,
        "nodes": [
            {"name": n.name, "kind": n.kind, "provider": n.vendor.provider.value, "image": n.image}
            for n in lab.nodes.values()
        ],
        "links": [{"endpoints": [str(link.a), str(link.b)]} for link in lab.links],
        "warnings": list(lab.warnings),
    }


def catalog_summary() -> dict[str, Any]:
    from vendors import catalog

    return {
        "kinds": [
            {
                "kind": v.kind,
                "aliases": v.aliases,
                "vendor": v.vendor,
                "provider": v.provider.value,
                "image": v.default_image,
                "interfaces": v.interfaces.examples(),
                "capabilities": [c.value for c in v.capabilities],
                "description": v.description,
            }
            for v in catalog().kinds()
        ]
    }


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def show_validated(result: dict[str, Any]) -> None:
    _table(
        f"lab {result['lab_id']}: valid",
        ["node", "kind", "provider", "image"],
        [[n["name"], n["kind"], n["provider"], n["image"]] for n in result["nodes"]],
    )
    _table("links", ["a", "b"], [link["endpoints"] for link in result["links"]])


def show_vendors(result: dict[str, Any]) -> None:
    _table(
        "device kinds",
        ["kind", "aliases", "provider", "interfaces", "capabilities"],
        [
            [k["kind"], ", ".join(k["aliases"]), k["provider"], k["interfaces"], ", ".join(k["capabilities"])]
            for k in result["kinds"]
        ],
    )


def show_status(result: dict[str, Any]) -> None:
    if not result["labs"]:
        console.print("no labs on this host")
    for lab in result["labs"]:
        _table(
            f"lab {lab['lab_id']}",
            ["node", "kind", "provider", "state", "runtime name", "mgmt ipv4"],
            [[n["name"], n["kind"], n["provider"], n["state"], n["runtime_name"], n.get("mgmt_ipv4")]
             for n in lab["nodes"]],
        )


def show_deployed(result: dict[str, Any]) -> None:
    _table(
        f"lab {result['lab_id']}",
        ["node", "kind", "provider", "state", "ready (s)", "mgmt ipv4"],
        [
            [n["name"], n["kind"], n["provider"], n["state"], _seconds(n.get("ready_seconds")), n.get("mgmt_ipv4")]
            for n in result["nodes"]
        ],
    )
    _table("links", ["endpoints", "vlan"], [[" <-> ".join(link["endpoints"]), link["vlan"]] for link in result["links"]])
    _show_errors(result)


def show_configs(result: dict[str, Any]) -> None:
    _table(
        f"configs of {result['lab_id']}",
        ["node", "ok", "file / error"],
        [[name, "yes" if c["ok"] else "no", c["path"] or c["error"]] for name, c in result["configs"].items()],
    )


def show_saved(result: dict[str, Any]) -> None:
    _table(
        f"configs saved on the devices of {result['lab_id']}",
        ["node", "saved", "command / error"],
        [[name, {True: "yes", False: "no", None: "- (nothing to save)"}[s["ok"]], s["error"] or s["command"]]
         for name, s in result["nodes"].items()],
    )


def show_cleanup(result: dict[str, Any]) -> None:
    removed = result.get("removed", {})
    if not any(removed.values()):
        console.print("nothing to remove")
    for resource, names in removed.items():
        if names:
            console.print(f"{resource}: {', '.join(map(str, names))}")
    _show_errors(result)


def _show_errors(result: dict[str, Any]) -> None:
    for error in result.get("errors", []):
        console.print(f"[red]error:[/red] {error}")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def with_progress(run: Callable[[], Any]) -> Any:
    with console.status("working... (Prefect logs below)"):
        return run()
