"""A deploy's progress at 200 nodes, as a person reads it (lab.progress, archetype.render):
counts per stage, the failures first with their cause, the nodes waiting longest; a line
per node and stage only for a small lab."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from archetype import render
from lab.progress import STAGES, DeployProgress, Snapshot

N = 200


def deploy_of_200(finished: bool = False) -> Snapshot:
    """Snapshot of a 200-node deploy: r001-r150 configured, r151-r190 created (r190 the
    earliest of them), r191-r198 not created, r199 failed to wire, r200 never ready."""
    progress = DeployProgress("big", [f"r{i:03d}" for i in range(1, N + 1)])
    for i in range(1, 151):
        progress.advance(f"r{i:03d}", "configured")
    for i in range(151, 191):
        progress.advance(f"r{i:03d}", "created")
    progress.fail("r199", "wire", "cannot add eth1 | to the bridge:\n no such device")
    progress.fail("r200", "ready", "config not applied: bgpd is down")
    snapshot = progress.snapshot()
    # the deploy has run 60 s; stage times as they would be
    nodes = []
    for node in snapshot.nodes:
        index = int(node.name[1:])
        reached = {stage: float(index) / 10 + STAGES.index(stage) for stage in node.reached}
        if node.name == "r190":
            reached = {"created": 1.0}
        nodes.append(type(node)(node.name, reached, node.failed))
    return Snapshot("big", tuple(nodes), 60.0, finished)


def test_the_summary_counts_each_stage_and_the_failures() -> None:
    snapshot = deploy_of_200()
    assert snapshot.summary() == "created 190/200, wired 150/200, ready 150/200, configured 150/200, failed 2"
    assert [n.name for n in snapshot.failures()] == ["r199", "r200"]
    slowest = snapshot.slowest(3)
    assert slowest[0].name == "r190" and snapshot.next_stage(slowest[0]) == "wired"
    assert snapshot.waiting(slowest[0]) == pytest.approx(59.0)
    assert [n.name for n in slowest[1:]] == ["r151", "r152"]  # created at 15.1 s, 15.2 s: waiting for wired
    assert snapshot.slowest_text(2) == "r190 wired? 59 s, r151 wired? 45 s"  # not created yet: only counted


def test_the_ui_artifact_is_a_summary_with_the_failures_first_not_200_rows() -> None:
    text = deploy_of_200().markdown()
    lines = text.splitlines()
    assert len(lines) < 40, text
    assert "| created | 190/200 | 18.9 s |" in text and "| configured | 150/200 | 18.0 s |" in text
    failed = text.index("**Failed (2)**")
    assert failed < text.index("**Waiting longest**")
    assert "- `r199`: wire: cannot add eth1 \\| to the bridge: no such device" in text  # one line, table-safe
    assert "| `r190` | wired | 59 s |" in text
    assert "Waiting longest" not in deploy_of_200(finished=True).markdown()


def test_the_live_table_fits_the_terminal_failures_then_the_slowest() -> None:
    table = render.progress_table(deploy_of_200(), room=12)
    out = io.StringIO()
    Console(file=out, width=160).print(table)
    shown = out.getvalue()
    rows = [line for line in shown.splitlines() if line.startswith("│")]
    assert len(rows) == 13, shown  # 12 nodes and the line counting the rest
    assert "r199" in rows[0] and "no such device" in rows[0] and "r200" in rows[1] and "bgpd is down" in rows[1]
    assert "r190" in rows[2] and "wired: 59 s" in rows[2]
    assert "r151" in rows[3] and "r191" not in shown  # created ones first: not created yet only counted
    assert "... 188 more (38 waiting, 150 done)" in rows[-1]


def test_a_large_lab_on_a_pipe_gets_summary_lines_not_a_line_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=400))
    view = render._LineView()
    snapshot = deploy_of_200()
    with view:
        for node in snapshot.nodes:  # every change of a running deploy, within a few seconds
            view.update(snapshot, node)
        view.update(Snapshot("big", snapshot.nodes, 61.0, finished=True), None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines  # the first summary, two failures, the last summary
    assert lines[0].startswith("big (60 s): created 190/200") and "waiting longest: r190 wired? 59 s, r151" in lines[0]
    assert lines[1] == "big r199: failed in wire: cannot add eth1 | to the bridge: no such device"
    assert "r200: failed in ready: config not applied" in lines[2]
    assert lines[3] == "big (61 s): created 190/200, wired 150/200, ready 150/200, configured 150/200, failed 2"


def test_a_small_lab_on_a_pipe_keeps_a_line_per_node_and_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=400))
    progress = DeployProgress("small", ["r1", "r2"])
    progress.advance("r1", "wired")
    view = render._LineView()
    with view:
        view.update(progress.snapshot(), progress.snapshot().nodes[0])
    assert out.getvalue().splitlines() == ["small r1: created at 0.0 s", "small r1: wired at 0.0 s"]


def test_a_large_labs_deploy_result_shows_counts_and_what_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=120))
    nodes = [{"name": f"r{i}", "kind": "frr", "provider": "docker", "state": "ready", "ready_seconds": float(i),
              "host": "vm", "mgmt_ipv4": None} for i in range(1, N)]
    nodes.append({"name": "r200", "kind": "frr", "provider": "docker", "state": "failed", "ready_seconds": None,
                  "host": "vm", "mgmt_ipv4": None})
    links = [{"endpoints": [f"r{i}:eth1", f"r{i + 1}:eth2"], "vlan": 100 + i} for i in range(1, 300)]
    render.show_deployed({"lab_id": "big", "nodes": nodes, "links": links, "errors": ["r200: ready: never ready"]})
    shown = out.getvalue()
    assert len(shown.splitlines()) < 15, shown  # not 200 node rows and 300 link rows
    assert "r200" in shown and "failed" in shown and "r150 " not in shown
    assert ("big: 200 nodes, 1 failed, 199 ready; slowest to be ready: r199 199.0 s, r198 198.0 s" in shown
            and "299 links" in shown), shown
    assert "error: r200: ready: never ready" in shown
