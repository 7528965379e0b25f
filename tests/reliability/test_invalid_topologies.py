"""Broken topologies given to deploy: each fails at once, with the message naming the
place, and creates nothing -- no container, domain, port, veth, file, VLAN record, and no
state artifact. Through the command line (exit code 2) and through the deploy-lab flow
itself, as the Prefect UI or REST API would run it (the CLI validates before the flow)."""

from __future__ import annotations

import json
import secrets
import subprocess
import textwrap
from pathlib import Path

import pytest

from lab import names
from tests.reliability import faults
from tests.support.leftovers import leftovers
from tests.support.prefect_server import PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs]

TOKEN = secrets.token_hex(3)


def _documents() -> dict[str, tuple[str, str, str]]:
    """case -> (lab id, topology text, a fragment of the expected message)."""
    cases = {
        "unknown-node": ("nodes: {r1: {kind: frr}}\n  links: [{endpoints: ['r1:eth1', 'r9:eth1']}]",
                         "link to unknown node 'r9'"),
        "unknown-kind": ("nodes: {r1: {kind: no-such-os}, r2: {kind: frr}}\n  links: [{endpoints: ['r1:eth1', 'r2:eth1']}]",
                         "no-such-os"),
        "interface-twice": ("nodes: {r1: {kind: frr}, r2: {kind: frr}, r3: {kind: frr}}\n"
                            "  links: [{endpoints: ['r1:eth1', 'r2:eth1']}, {endpoints: ['r1:eth1', 'r3:eth1']}]",
                            "already used"),
        "self-loop": ("nodes: {r1: {kind: frr}}\n  links: [{endpoints: ['r1:eth1', 'r1:eth2']}]", "r1"),
        "config-outside": ("nodes: {r1: {kind: frr, startup-config: /etc/shadow}, h1: {kind: linux}}\n"
                           "  links: [{endpoints: ['r1:eth1', 'h1:eth1']}]", "outside the allowed folders"),
        "bind-outside": ("nodes: {h1: {kind: linux, binds: ['/etc:/host-etc']}, h2: {kind: linux}}\n"
                         "  links: [{endpoints: ['h1:eth1', 'h2:eth1']}]", "outside the allowed folders"),
        "vm-bad-interface": ("nodes: {v1: {kind: mini-ios}, h1: {kind: linux}}\n"
                             "  links: [{endpoints: ['v1:Ethernet9/9', 'h1:eth1']}]", "Ethernet9/9"),
    }
    documents = {}
    for index, (case, (body, expected)) in enumerate(cases.items()):
        lab = f"inv{index}-{TOKEN}"
        documents[case] = (lab, f"name: {lab}\ntopology:\n  {body}\n", expected)
    documents["bad-lab-id"] = (f"Bad_{TOKEN}", f"name: Bad_{TOKEN}\ntopology:\n  nodes: {{h1: {{kind: linux}}}}\n", "name")
    documents["yaml-syntax"] = (f"invy-{TOKEN}", f"name: invy-{TOKEN}\ntopology: {{nodes: [\n", "YAML syntax error")
    return documents


DOCUMENTS = _documents()


def _nothing_made(server: PrefectServer, lab: str) -> None:
    if names.is_valid_lab_id(lab):
        assert leftovers(lab) == {}, leftovers(lab)
        assert server.artifact(names.state_artifact_key(lab)) is None
        assert not names.lab_dir(lab).exists() and not names.vlan_record_path(lab).exists()
    else:  # no resource can carry an invalid id; nothing of a lowercase twin either
        assert leftovers(lab.lower().replace("_", "-")) == {}


@pytest.mark.parametrize("case", list(DOCUMENTS))
def test_cli_deploy_refuses_and_creates_nothing(server: PrefectServer, tmp_path: Path, case: str) -> None:
    lab, text, expected = DOCUMENTS[case]
    topology = tmp_path / f"{case}.yml"
    topology.write_text(text)
    done = faults.cli(server, "deploy", str(topology), "--json", timeout=120)
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and any(expected in line for line in errors), done.stderr
    _nothing_made(server, lab)


RUN_FLOW = textwrap.dedent("""\
    import json, sys
    from flows.deploy_lab import deploy_lab
    from lab.errors import TopologyError
    outcome = {}
    for case, text in json.load(sys.stdin).items():
        try:
            deploy_lab(topology=text)
            outcome[case] = "deployed"
        except TopologyError as err:
            outcome[case] = "invalid: " + str(err)
        except Exception as err:
            outcome[case] = f"other: {err.__class__.__name__}: {err}"
    print("OUTCOME " + json.dumps(outcome))
""")


def test_the_deploy_flow_refuses_and_creates_nothing(server: PrefectServer) -> None:
    """The flow as the UI or the REST API runs it: YAML text as its `topology` parameter."""
    texts = {case: text for case, (_, text, _) in DOCUMENTS.items()}
    done = subprocess.run([faults.PYTHON, "-c", RUN_FLOW], input=json.dumps(texts), env=server.env(),
                          cwd=faults.REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("OUTCOME "))
    outcome = json.loads(line.removeprefix("OUTCOME "))
    for case, (lab, _, expected) in DOCUMENTS.items():
        assert outcome[case].startswith("invalid: ") and expected in outcome[case], (case, outcome[case])
        _nothing_made(server, lab)
    runs = server.api("POST", "/flow_runs/filter", json={"flow_runs": {"name": {"like_": "deploy-lab/%"}}})
    failed = [r for r in runs if r["state_type"] == "FAILED" and (TOKEN in r["name"] or r["name"] == "deploy-lab/invalid")]
    assert len(failed) >= len(DOCUMENTS) - 1, [(r["name"], r["state_type"]) for r in runs]
