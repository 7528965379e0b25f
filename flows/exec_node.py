"""exec-node: run one command on a node wherever it runs (the flow behind the UI and the
REST API; `archetype exec` runs the same provider call directly, without Prefect, so that
scripts get an answer at once)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from lab.errors import TopologyError
from lab.settings import get_settings
from tasks import controls
from tasks.controls import run_command


@flow(name="exec-node", flow_run_name="exec-node/{lab}/{node}")
def exec_node(lab: str, node: str, command: list[str], timeout: float | None = None) -> dict[str, Any]:
    """Run a command on a node: argv through exec on a container; on a VM, one CLI line per
    item over its console.

    Args:
        lab: the lab id.
        node: the node's name.
        command: the argv (container) or the CLI lines (VM).
        timeout: seconds (default: the command timeout setting).
    """
    if not command or not all(isinstance(c, str) and c for c in command):
        raise TopologyError(["command: give at least one non-empty argument"])
    target = controls.live_node(lab, node)
    result = run_command(lab, target, list(command), timeout or get_settings().command_timeout)
    fence = "~~~~"
    create_markdown_artifact(  # the output, where a UI user looks for it (the run's artifacts)
        f"# {node}: `{result.command}`\n\nexit status: {result.exit_code}\n\n{fence}text\n{result.output}\n{fence}\n",
        description=f"exec on {node} of lab {lab}",
    )
    return command_document(lab, node, result)


def command_document(lab: str, node: str, result: Any) -> dict[str, Any]:
    return {"lab_id": lab, "node": node, "command": result.command, "exit_code": result.exit_code,
            "output": result.output, "seconds": round(result.seconds, 3)}
