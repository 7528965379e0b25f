"""``archetype server``: the long-lived local Prefect server the CLI and ``serve`` share."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from archetype.app import EXIT_FAILED, JsonOption, _emit, _fail, _run, app

server_app = typer.Typer(no_args_is_help=True, help="The local Prefect server (API auth on) the CLI and `serve` share.")
app.add_typer(server_app, name="server")


def _describe(server: Any, state: str) -> dict[str, Any]:
    from deployments import local_server

    return {
        "state": state,
        "pid": server.pid if server else None,
        "url": server.ui if server else None,
        "log": str(local_server.log_path()),
        "auth_file": str(local_server.api_auth.auth_path()),
    }


def _show(result: dict[str, Any]) -> None:
    if result["url"]:
        typer.echo(f"{result['state']}: {result['url']} (pid {result['pid']}); log {result['log']}")
        typer.echo(f"log in to the UI with the string in {result['auth_file']}")
    else:
        typer.echo(result["state"])


@server_app.command()
def start(
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you mean it)")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="[default: ARCHETYPE_SERVER_PORT, 4200]")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the local server, or say where it already runs."""
    from deployments import local_server

    server = _run(lambda: local_server.ensure(host, port))
    _emit(_describe(server, "running"), as_json, _show)


@server_app.command()
def stop(as_json: JsonOption = False) -> None:
    """Stop the local server and the executor (the next flow-backed command starts both again)."""
    from archetype.handoff import stop_executor
    from deployments import local_server

    stop_executor(local_server.prefect_home())  # first: no command of it starts the server again
    server = _run(local_server.stop)
    _emit(_describe(server, "stopped" if server else "not running"), as_json, _show)


@server_app.command()
def status(as_json: JsonOption = False) -> None:
    """Whether the local server runs and answers."""
    from deployments import local_server

    server = local_server.running()
    result = _describe(server, "running" if server else "not running")
    _emit(result, as_json, _show)
    if server is None and not as_json:
        _fail([], EXIT_FAILED)
