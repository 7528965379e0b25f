"""What the command line shows a person: summaries as dicts (for --json) and rich tables."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from topology import Lab

console = Console()
NODE_LINES_UP_TO = 20  # a lab this small gets a line per node and stage when no live table is drawn
SUMMARY_SECONDS = 5.0  # a larger lab's summary line, at most this often


def lab_summary(lab: Lab) -> dict[str, Any]:
    return {
        "lab_id": lab.id,
        "nodes": [
            {"name": n.name, "kind": n.kind, "provider": n.vendor.provider.value, "image": n.image, "host": n.host}
            for n in lab.nodes.values()
        ],
        "links": [
            {"endpoints": [str(end) for end in link.ends], **({"segment": link.segment} if link.segment else {})}
            for link in lab.links
        ],
        "warnings": list(lab.warnings),
        "tests": [{"name": c.name, "nodes": c.nodes, "expect": [e.describe() for e in c.expect], "wait": c.wait}
                  for c in lab.checks],
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
        ["node", "kind", "provider", "image", "host"],
        [[n["name"], n["kind"], n["provider"], n["image"], n.get("host") or ""] for n in result["nodes"]],
    )
    _table("links", ["link", "endpoints"],
           [[link.get("segment") or "", " <-> ".join(link["endpoints"])] for link in result["links"]])
    if result.get("tests"):
        _table("tests (validate:)", ["test", "nodes", "expect", "wait s"],
               [[t["name"], ", ".join(t["nodes"]), "; ".join(t["expect"]) or "the command succeeds", f"{t['wait']:g}"]
                for t in result["tests"]])


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
            ["node", "kind", "provider", "state", "runtime name", "host", "mgmt ipv4"],
            [[n["name"], n["kind"], n["provider"], n["state"], n["runtime_name"], n.get("host"), n.get("mgmt_ipv4")]
             for n in lab["nodes"]],
        )
        if len(lab["nodes"]) > NODE_LINES_UP_TO:  # a large lab: its count per state, under the rows
            console.print(f"lab {lab['lab_id']}: {_state_counts(lab['nodes'])}", highlight=False)
        _show_config_errors(lab["nodes"])


def _state_counts(nodes: list[dict[str, Any]]) -> str:
    """``200 nodes, 1 failed, 199 ready``."""
    states = Counter(n["state"] for n in nodes)
    return f"{len(nodes)} nodes, " + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))


def show_deployed(result: dict[str, Any]) -> None:
    """Every node and link of a small lab; a large one's counts, its nodes that are not
    ready and its slowest (``archetype status LAB`` and ``--json`` list them all)."""
    nodes = result["nodes"]
    large = len(nodes) > NODE_LINES_UP_TO
    shown = [n for n in nodes if n["state"] != "ready"] if large else nodes
    if shown:
        _table(
            f"lab {result['lab_id']}" + (": nodes not ready" if large else ""),
            ["node", "kind", "provider", "state", "ready (s)", "host", "mgmt ipv4"],
            [
                [n["name"], n["kind"], n["provider"], n["state"], _seconds(n.get("ready_seconds")), n.get("host"),
                 n.get("mgmt_ipv4")]
                for n in shown
            ],
        )
    if large:
        timed = sorted((n for n in nodes if n.get("ready_seconds") is not None), key=lambda n: -n["ready_seconds"])
        slowest = ", ".join(f"{n['name']} {n['ready_seconds']:.1f} s" for n in timed[:5])
        console.print(f"lab {result['lab_id']}: {_state_counts(nodes)}"
                      + (f"; slowest to be ready: {slowest}" if slowest else "")
                      + f"; {len(result['links'])} links (`archetype status {result['lab_id']}`, --json: every node)",
                      highlight=False, markup=False, soft_wrap=True)
    else:
        _table("links", ["endpoints", "vlan"],
               [[" <-> ".join(link["endpoints"]), link["vlan"]] for link in result["links"]])
    _show_config_errors(nodes)
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


def _show_config_errors(nodes: list[dict[str, Any]]) -> None:
    """A warning per startup-config line a device refused: the node is up, the line is not."""
    for node in nodes:
        for error in node.get("config_errors") or []:
            console.print(f"[yellow]warning:[/yellow] {escape(node['name'])}: startup-config line "
                          f"{escape(repr(error['line']))} refused: {escape(error['message'])}", highlight=False)


def _show_errors(result: dict[str, Any]) -> None:
    for error in result.get("errors", []):
        console.print(f"[red]error:[/red] {error}")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def with_progress(run: Callable[[], Any]) -> Any:
    """Run a flow while showing each node's stage as it is reached: a live table on a
    terminal, one line per node and stage otherwise (a log, a pipe)."""
    from lab import progress

    view: _LiveView | _LineView = _LiveView() if console.is_terminal else _LineView()
    stop = progress.listen(view.update)
    try:
        with view:
            return run()
    finally:
        stop()


class _LineView:
    """Lines for a log or a pipe, as things happen. A small lab: ``lab r1: created at 2.1 s``
    for every stage of every node. A large one (more than ``NODE_LINES_UP_TO`` nodes): one
    summary line at most every ``SUMMARY_SECONDS`` (counts per stage, the nodes waiting
    longest), each failure at once with its cause, and the last summary at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shown: dict[str, set[str]] = {}
        self._summarised_at: float | None = None
        self._quiet = _PrefectConsole()

    def __enter__(self) -> _LineView:
        return self

    def __exit__(self, *_: object) -> None:
        self._quiet.restore()

    def update(self, snapshot: Any, node: Any) -> None:
        with self._lock:
            if len(snapshot.nodes) > NODE_LINES_UP_TO:
                self._summarise(snapshot, node)
            elif node is not None:
                self._node_lines(snapshot, node)

    def _node_lines(self, snapshot: Any, node: Any) -> None:
        from lab.progress import STAGES

        shown = self._shown.setdefault(node.name, set())
        for stage in STAGES:
            if stage in node.reached and stage not in shown:
                shown.add(stage)
                console.print(f"{snapshot.lab_id} {node.name}: {stage} at {node.reached[stage]:.1f} s", highlight=False)
        self._failure_line(snapshot, node)

    def _failure_line(self, snapshot: Any, node: Any) -> None:
        shown = self._shown.setdefault(node.name, set())
        if node.failed and "failed" not in shown:
            shown.add("failed")
            cause = " ".join(node.failed.split())  # one line each, in a log of 200 nodes
            console.print(f"{snapshot.lab_id} {node.name}: failed in {cause}", highlight=False, markup=False,
                          soft_wrap=True)

    def _summarise(self, snapshot: Any, node: Any) -> None:
        self._quiet.quiet()  # 200 nodes' task logs would bury the summary (all are in the run's logs)
        if node is not None:
            self._failure_line(snapshot, node)
        now = time.monotonic()
        due = self._summarised_at is None or now - self._summarised_at >= SUMMARY_SECONDS
        if not (due or snapshot.finished):
            return
        self._summarised_at = now
        slowest = "" if snapshot.finished else snapshot.slowest_text()
        console.print(f"{snapshot.lab_id} ({snapshot.elapsed:.0f} s): {snapshot.summary()}"
                      + (f"; waiting longest: {slowest}" if slowest else ""), highlight=False, markup=False,
                      soft_wrap=True)  # one line each in a log, whatever its width


class _PrefectConsole:
    """Prefect's console log lines, held to warnings and errors while a view needs the
    terminal (every line is in the run's logs in the UI), then given back their level."""

    def __init__(self) -> None:
        self._quieted: list[tuple[logging.Handler, int]] | None = None

    def quiet(self) -> None:
        if self._quieted is not None:
            return
        self._quieted = []
        for handler in logging.getLogger().handlers:
            if type(handler).__name__ == "PrefectConsoleHandler":
                self._quieted.append((handler, handler.level))
                handler.setLevel(max(handler.level, logging.WARNING))

    def restore(self) -> None:
        for handler, level in self._quieted or []:
            handler.setLevel(level)
        self._quieted = None


class _LiveView:
    """A table redrawn a few times a second, its title the counts per stage: the failed
    nodes first (with their cause), then the unfinished ones that have waited longest for
    their next stage, as many as the terminal has room for; the rest counted."""

    def __init__(self) -> None:
        self._snapshot: Any = None
        self._live: Live | None = None
        self._quiet = _PrefectConsole()

    def __enter__(self) -> _LiveView:
        self._live = Live(get_renderable=self._render, console=console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
        self._quiet.restore()

    def update(self, snapshot: Any, _node: Any) -> None:
        self._quiet.quiet()  # Prefect's console lines would tear the table apart
        self._snapshot = snapshot

    def _render(self) -> Any:
        return Text("working... (Prefect logs below)") if self._snapshot is None else progress_table(
            self._snapshot, max(3, console.size.height - 8))


def progress_table(snapshot: Any, room: int) -> Table:
    """The live view's table for ``room`` rows: failures, then the created nodes that have
    waited longest, those not created yet, then the finished ones (a small lab shows all)."""
    from lab.progress import STAGES

    table = Table(title=f"lab {snapshot.lab_id}: {snapshot.summary()} ({snapshot.elapsed:.0f} s)", title_justify="left")
    table.add_column("node")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    table.add_column("waiting / failed in", overflow="ellipsis", no_wrap=True)
    failed = snapshot.failures()
    started = snapshot.slowest(len(snapshot.nodes))
    queued = [n for n in snapshot.nodes if not n.reached and not n.done]
    finished = sorted((n for n in snapshot.nodes if n.done and not n.failed), key=lambda n: n.name)
    rows = [*failed, *started, *queued, *finished]
    for node in rows[:room]:
        cells: list[Any] = [f"{node.reached[s]:.1f} s" if s in node.reached else "" for s in STAGES]
        if node.failed:  # in the first stage it did not reach
            cells[min(len(node.reached), len(STAGES) - 1)] = Text("failed", style="red")
            note: Any = Text(" ".join(node.failed.split()), style="red")
        elif not node.done:
            note = f"{snapshot.next_stage(node)}: {snapshot.waiting(node):.0f} s"
        else:
            note = ""
        table.add_row(node.name, *cells, note)
    if len(rows) > room:
        hidden = rows[room:]
        waiting = sum(not n.done for n in hidden)
        table.add_row(f"... {len(hidden)} more ({waiting} waiting, {len(hidden) - waiting} done)",
                      *[""] * (len(STAGES) + 1))
    return table
