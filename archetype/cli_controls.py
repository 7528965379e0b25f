"""A running lab's controls on the command line: ``node stop|start|restart``, ``link``,
``exec`` and ``capture``.

``node`` and ``link`` change the lab and its state record: they run their flows
(control-node, set-link). ``exec`` and ``capture`` answer at once and stream: they call the
providers directly, as ``connect`` does; their flows (exec-node, capture-link) serve the
UI and the REST API.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from archetype import render
from archetype.app import (
    EXIT_FAILED,
    EXIT_INVALID,
    JsonOption,
    _check_lab_id,
    _emit,
    _fail,
    _quiet_flow,
    _run,
    _run_flow,
    app,
)

node_app = typer.Typer(no_args_is_help=True, help="Stop, start or restart a node; its links are kept.")
app.add_typer(node_app, name="node")


def _node_action(action: str, lab: str, node: str, as_json: bool) -> None:
    _check_lab_id(lab)
    from flows.control_node import control_node

    result = _run_flow(as_json, control_node, lab=lab, node=node, action=action)
    _emit(result, as_json, _show_node)


@node_app.command("stop")
def node_stop(lab: str, node: str, as_json: JsonOption = False) -> None:
    """Stop a node (a container stops, a VM powers off); it keeps its place, VLANs and disks."""
    _node_action("stop", lab, node, as_json)


@node_app.command("start")
def node_start(lab: str, node: str, as_json: JsonOption = False) -> None:
    """Start a stopped node: its links come back, readiness is waited for, post-boot runs again."""
    _node_action("start", lab, node, as_json)


@node_app.command("restart")
def node_restart(lab: str, node: str, as_json: JsonOption = False) -> None:
    """Stop then start a node, without a redeploy."""
    _node_action("restart", lab, node, as_json)


def _show_node(result: dict[str, Any]) -> None:
    ready = f", ready in {result['ready_seconds']:.1f} s" if result["state"] == "ready" and result.get("ready_seconds") else ""
    typer.echo(f"{result['lab_id']}/{result['node']}: {result['state']}{ready} ({result['seconds']:.1f} s)")
    for note in result.get("notes") or []:
        typer.echo(f"note: {note}")


@app.command()
def link(
    lab: str,
    endpoint: Annotated[str | None, typer.Argument(help="NODE:INTERFACE, one end of the link")] = None,
    state: Annotated[str | None, typer.Option("--state", help="up or down")] = None,
    delay: Annotated[float | None, typer.Option("--delay", help="one-way delay in each direction, ms")] = None,
    jitter: Annotated[float | None, typer.Option("--jitter", help="+/- on the delay, ms")] = None,
    loss: Annotated[float | None, typer.Option("--loss", help="random loss in each direction, percent")] = None,
    rate: Annotated[int | None, typer.Option("--rate", help="bandwidth of each direction, kbit/s")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove every impairment")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a lab's links, or set one's state and impairment (kept across restarts and redeploys)."""
    _check_lab_id(lab)
    changes = state is not None or clear or any(v is not None for v in (delay, jitter, loss, rate))
    if endpoint is None:
        if changes:
            _fail(["give the link as NODE:INTERFACE to change it"], EXIT_INVALID)
        from flows.set_link import links_document

        _emit(_run(lambda: _quiet_flow(as_json, lambda: links_document(lab))), as_json, _show_links)
        return
    if state is not None and state not in ("up", "down"):
        _fail([f"--state: {state!r} is not up or down"], EXIT_INVALID)
    from lab.state import LinkConditions
    from providers.controls import new_conditions

    # Out-of-range values: exit 2 before Prefect starts (the flow checks them again).
    _run(lambda: new_conditions(LinkConditions(), clear=clear, delay_ms=delay, jitter_ms=jitter,
                                loss_percent=loss, rate_kbit=rate))
    from flows.set_link import set_link

    result = _run_flow(as_json, set_link, lab=lab, endpoint=endpoint, state=state, delay_ms=delay, jitter_ms=jitter,
                       loss_percent=loss, rate_kbit=rate, clear=clear)
    _emit(result, as_json, lambda r: (_show_links({"lab_id": r["lab_id"], "links": [r["link"]]}),
                                      [typer.echo(f"note: {n}") for n in r["notes"]]))


def _show_links(result: dict[str, Any]) -> None:
    rows = []
    for item in result["links"]:
        impairment = " ".join(f"{k.split('_')[0]}={v:g}" for k, v in item["impairment"].items() if v) or "-"
        rows.append([" -- ".join(item["endpoints"]), str(item["vlan"]), item["state"], impairment])
    render._table(f"links of {result['lab_id']}", ["link", "vlan", "state", "impairment"], rows)


@app.command(name="exec", context_settings={"ignore_unknown_options": True})
def exec_(
    lab: str,
    node: str,
    command: Annotated[list[str], typer.Argument(help="after --: the argv (container) or CLI lines (VM)")],
    timeout: Annotated[float | None, typer.Option("--timeout", help="seconds (default: the command timeout)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run one command on a node: `archetype exec LAB NODE -- CMD [ARG...]`. Output on stdout;
    a container's command gives its exit status; a VM gets one CLI line per argument."""
    _check_lab_id(lab)
    from archetype.cli_fleet import run_on_node_host
    from flows.exec_node import command_document
    from lab.settings import get_settings
    from providers import controls, provider_of

    here_options = [*(["--timeout", f"{timeout:g}"] if timeout else []), *(["--json"] if as_json else [])]
    run_on_node_host(lab, node, "exec", *here_options, lab, node, "--", *command)  # a node on another host

    target = _run(lambda: controls.live_node(lab, node))
    seconds = timeout or get_settings().command_timeout
    result = _run(lambda: provider_of(target).run_command(lab, target, list(command), seconds))
    document = command_document(lab, node, result)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        sys.stdout.write(result.output)
        sys.stdout.flush()
    if result.exit_code is None:
        _fail([f"{node}: {result.command!r} timed out after {seconds:g} s"], EXIT_FAILED)
    raise typer.Exit(result.exit_code)


@app.command()
def capture(
    lab: str,
    endpoint: Annotated[str, typer.Argument(help="NODE:INTERFACE")],
    count: Annotated[int | None, typer.Option("--count", help="stop after N packets")] = None,
    write: Annotated[Path | None, typer.Option("--write", help="pcap file (default: stdout)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Capture a link end's packets as pcap, from its host port: to stdout (pipe it into
    `wireshark -k -i -`) or into --write FILE. Ctrl-C ends it cleanly."""
    _check_lab_id(lab)
    if count is not None and count < 1:
        _fail([f"--count: at least 1, not {count}"], EXIT_INVALID)
    if write is None and (as_json or sys.stdout.isatty()):
        _fail(["the pcap goes to stdout: pipe it (e.g. into `wireshark -k -i -`), or give --write FILE"],
              EXIT_INVALID)
    from providers import controls

    port = _run(lambda: controls.live_port(lab, endpoint))
    target = str(write.resolve()) if write else "-"
    packets = _tcpdump(controls.tcpdump_argv(port, target, count))
    if write is not None:
        _emit({"lab_id": lab, "endpoint": endpoint, "port": port, "path": target, "packets": packets}, as_json,
              lambda r: typer.echo(f"{r['packets']} packets from {endpoint} ({port}) in {r['path']}", err=True))


def _tcpdump(argv: list[str]) -> int:
    """Run tcpdump until its count, its end of pipe, or Ctrl-C (then it flushes and stops);
    returns the packets it captured."""
    with tempfile.TemporaryFile(mode="w+") as messages:
        try:
            process = subprocess.Popen(argv, stderr=messages)
        except FileNotFoundError:
            _fail(["tcpdump is not installed (scripts/setup-host.sh installs it)"], EXIT_FAILED)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            if process.poll() is None:  # the terminal's Ctrl-C reached it too; a kill of ours only did not
                process.send_signal(signal.SIGINT)
            code = process.wait(timeout=10)
        messages.seek(0)
        text = messages.read()
    sys.stderr.write(text)  # tcpdump's own summary ("5 packets captured", ...)
    if code not in (0, -signal.SIGINT) and "listening on" not in text:
        _fail([f"tcpdump failed: {text.strip()[-500:]}"], EXIT_FAILED)
    from providers.controls import captured_count

    return captured_count(text)
