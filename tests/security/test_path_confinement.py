"""Topology paths and extract-configs' output stay inside the lab's own folders: each attack,
sent as a REST-created run to a worker as the UI would, ends Failed naming the field,
and creates nothing (no container, domain, OVS port or file)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import names
from lab.settings import get_settings
from tests.support.leftovers import leftovers
from tests.support.prefect_server import REPO, PrefectServer

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.ovs, pytest.mark.slow]
WORKSPACE = get_settings().workspace


def _topology(lab: str, **fields: str) -> str:
    """YAML text of a one-node lab (a linux container) with the given node fields."""
    lines = "".join(f"      {key}: {value}\n" for key, value in fields.items())
    return f"name: {lab}\ntopology:\n  nodes:\n    h1:\n      kind: linux\n{lines}"


def _files_created(lab: str) -> list[str]:
    paths = [names.lab_dir(lab), names.configs_dir(lab), names.logs_dir(lab), names.lab_lock_path(lab),
             names.vlan_record_path(lab), names.disks_dir(lab), names.data_dir(lab)]
    return [str(p) for p in paths if p.exists()]


def _run(server: PrefectServer, flow: str, parameters: dict) -> tuple[dict, str]:
    return _all_finished(server, flow, {"the run": parameters})["the run"]


def _lab_files(lab: str) -> Path:
    """The lab's files folder in the workspace (where a UI user puts its configs), with a
    symlink out of it to a folder and to a file."""
    folder = names.lab_files_dir(lab)
    folder.mkdir(parents=True)
    (folder / "etc").symlink_to("/etc")
    (folder / "passwd").symlink_to("/etc/passwd")
    (folder / "auth").symlink_to(WORKSPACE / "secrets" / "prefect-api-auth")
    return folder


def _all_finished(server: PrefectServer, flow: str, parameters: dict[str, dict]) -> dict[str, tuple[dict, str]]:
    """Runs of ``flow`` created at once through the REST API (key -> parameters), each
    waited for: key -> (the run, its state message and logs). The worker takes them a few at
    a time; one after another, each would pay the whole REST round trip (~10 s here)."""
    created = {key: server.run_deployment(flow, params) for key, params in parameters.items()}
    finished = {}
    for key, run_id in created.items():
        run = server.wait_flow_run(run_id, timeout=300)
        finished[key] = run, (run["state"].get("message") or "") + "\n" + server.flow_run_logs(run["id"])
    return finished


ATTACKS = {
    # field written in the node -> (value, the field the error must name)
    "dotdot": ("binds", '["..:/up"]', "topology.nodes.h1.binds[0]"),
    "dotdot-startup-config": ("startup-config", "../../secrets/prefect-api-auth", "topology.nodes.h1.startup-config"),
    "absolute": ("binds", '["/etc:/host-etc"]', "topology.nodes.h1.binds[0]"),
    "absolute-startup-config": ("startup-config", "/etc/shadow", "topology.nodes.h1.startup-config"),
    "workspace": ("binds", f'["{WORKSPACE}:/w"]', "topology.nodes.h1.binds[0]"),
    "workspace-prefect-db": ("startup-config", str(WORKSPACE / "prefect" / "prefect.db"), "topology.nodes.h1.startup-config"),
    "project-code": ("binds", f'["{REPO}:/code"]', "topology.nodes.h1.binds[0]"),
    "project-flows": ("binds", f'["{REPO / "flows"}:/flows:rw"]', "topology.nodes.h1.binds[0]"),
    "symlink-dir-out": ("binds", '["etc:/x"]', "topology.nodes.h1.binds[0]"),
    "symlink-file-out": ("startup-config", "passwd", "topology.nodes.h1.startup-config"),
    "symlink-into-internals": ("startup-config", "auth", "topology.nodes.h1.startup-config"),
}


@pytest.fixture(scope="module")
def attacks(secured_host: PrefectServer) -> Iterator[dict[str, tuple[str, dict, str]]]:
    """Every attack sent at once, each as the deploy of a lab of its own (with its files
    folder and symlinks): attack -> (lab, run, what the run said)."""
    labs = {attack: f"sec-{secrets.token_hex(3)}" for attack in ATTACKS}
    folders = [_lab_files(lab) for lab in labs.values()]
    try:
        finished = _all_finished(secured_host, "deploy-lab", {
            attack: {"topology": _topology(labs[attack], **{field: value})} for attack, (field, value, _) in ATTACKS.items()
        })
        yield {attack: (labs[attack], *finished[attack]) for attack in ATTACKS}
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_path_attack_through_the_api_fails_and_creates_nothing(attacks: dict, attack: str) -> None:
    lab, run, said = attacks[attack]
    where = ATTACKS[attack][2]
    assert run["state_type"] == "FAILED", said
    assert where in said, said
    assert "allowed folders" in said or "does not exist" in said, said
    assert str(REPO) not in said.split("allowed folders")[-1]  # the project is never offered
    assert leftovers(lab) == {}
    assert _files_created(lab) == []


def test_dot_through_the_api_is_never_the_workers_working_directory(secured_host: PrefectServer, sec_lab_id: str) -> None:
    """The worker runs in the project folder: `.` once mounted its code into the node. Now
    `.` is the lab's files folder, which this lab does not have: refused, nothing made."""
    run, said = _run(secured_host, "deploy-lab", {"topology": _topology(sec_lab_id, binds='[".:/code"]')})
    assert run["state_type"] == "FAILED", said
    assert "topology.nodes.h1.binds[0]" in said and str(names.lab_files_dir(sec_lab_id)) in said, said
    assert leftovers(sec_lab_id) == {} and _files_created(sec_lab_id) == []


def test_dot_in_yaml_text_means_the_labs_files_folder(tmp_path: Path) -> None:
    """`.` once meant the worker's working directory (the project): now the lab's folder."""
    from topology import load_topology

    folder = names.lab_files_dir("sec-dot")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        lab = load_topology(_topology("sec-dot", binds='[".:/files"]'))
        assert lab.nodes["h1"].binds[0].host == folder.resolve()
        assert lab.host_paths == (folder.resolve(),)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_topology_file_through_the_api_keeps_to_its_own_folder(secured_host: PrefectServer, sec_lab_id: str,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    folder.mkdir()
    (tmp_path / "secret.txt").write_text("not for the lab\n")
    topology = folder / "lab.yml"
    topology.write_text(_topology(sec_lab_id, **{"startup-config": "../secret.txt"}))
    run, said = _run(secured_host, "deploy-lab", {"topology": str(topology)})
    assert run["state_type"] == "FAILED"
    assert "topology.nodes.h1.startup-config" in said and str(folder) in said
    assert leftovers(sec_lab_id) == {} and _files_created(sec_lab_id) == []


OUT_DIRS = ["/tmp/sec-configs-out", "../../secrets", "../..", "/etc/cron.d", "."]
WATCHED = (Path("/tmp/sec-configs-out"), WORKSPACE / "secrets", Path("/etc/cron.d"))


@pytest.fixture(scope="module")
def extractions(secured_host: PrefectServer) -> dict[str, tuple[dict, str, dict, dict]]:
    """extract-configs with each out_dir, sent at once: out_dir -> (run, what it said, the
    watched folders before, after every run ended)."""
    lab = f"sec-{secrets.token_hex(3)}"
    before = _tree(*WATCHED)
    finished = _all_finished(secured_host, "extract-configs", {out: {"lab": lab, "out_dir": out} for out in OUT_DIRS})
    after = _tree(*WATCHED)
    return {out: (*finished[out], before, after) for out in OUT_DIRS}


@pytest.mark.parametrize("out_dir", OUT_DIRS)
def test_extract_configs_writes_nothing_outside_the_configs_folder(extractions: dict, out_dir: str) -> None:
    run, said, before, after = extractions[out_dir]
    assert run["state_type"] == "FAILED"
    assert "out_dir" in said and "outside the workspace's configs folder" in said, said
    assert not Path("/tmp/sec-configs-out").exists()
    assert after == before


def _tree(*folders: Path) -> dict[str, float]:
    found = {}
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(root) / name
                found[str(path)] = path.lstat().st_mtime
    return found


def test_the_project_folder_of_a_served_worker_is_not_the_base_of_yaml_text() -> None:
    """Before: YAML text resolved against the process's working directory."""
    from lab.errors import TopologyError
    from topology import load_topology

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with pytest.raises(TopologyError) as refused:
            load_topology(_topology("sec-cwd", **{"startup-config": "README.md"}))
    finally:
        os.chdir(cwd)
    assert "topology.nodes.h1.startup-config" in str(refused.value)
    assert str(names.lab_files_dir("sec-cwd")) in str(refused.value)


