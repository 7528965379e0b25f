"""The command-line contract, from fresh shells: deploy, status, configs, destroy; a deploy
killed with SIGKILL converges when run again, with the same VLANs and no duplicates."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from lab import names
from tests.support.leftovers import leftovers
from tests.support.prefect_server import ARCHETYPE, REPO, PrefectServer

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.docker, pytest.mark.libvirt]


def lab_copy(tmp_path: Path, example: str, lab_id: str) -> Path:
    """An example topology under a unique lab id (the configs it points to copied along)."""
    shutil.copytree(REPO / "examples" / "configs", tmp_path / "configs", dirs_exist_ok=True)
    source = (REPO / "examples" / example).read_text()
    original = next(line for line in source.splitlines() if line.startswith("name:"))
    path = tmp_path / f"{lab_id}.yml"
    path.write_text(source.replace(original, f"name: {lab_id}"))
    return path


def cli(server: PrefectServer | None, *args: str, timeout: float = 600,
        env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = server.env() if server else {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(env_extra or {})
    return subprocess.run([ARCHETYPE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def reserved_vlans(lab_id: str) -> dict[str, int]:
    from providers.network import reserved_links

    return {link.id: link.vlan for link in reserved_links(lab_id)}


def test_cli_contract_on_a_mixed_lab(prefect_server: PrefectServer, tmp_path: Path) -> None:
    lab_id = f"cli-{secrets.token_hex(3)}"
    topology = lab_copy(tmp_path, "demo.yml", lab_id)
    try:
        deployed = cli(prefect_server, "deploy", str(topology), "--json")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        result = json.loads(deployed.stdout)
        assert result["lab_id"] == lab_id
        assert {n["name"]: n["provider"] for n in result["nodes"]} == {"r1": "docker", "r2": "docker", "v1": "libvirt"}
        assert all(n["state"] == "ready" and n["ready_seconds"] is not None for n in result["nodes"])
        assert len({link["vlan"] for link in result["links"]}) == 2

        status = cli(None, "status", lab_id, "--json")  # read-only: no Prefect needed
        assert status.returncode == 0, status.stderr
        (lab,) = json.loads(status.stdout)["labs"]
        assert {n["name"]: n["state"] for n in lab["nodes"]} == {"r1": "running", "r2": "running", "v1": "running"}
        assert {n["runtime_name"] for n in lab["nodes"]} >= {names.container_name(lab_id, "r1"), names.domain_name(lab_id, "v1")}

        out = names.configs_root() / f"{lab_id}-out"  # --out is a name under the configs folder
        configs = cli(prefect_server, "configs", lab_id, "--out", out.name, "--json")
        assert configs.returncode == 0, configs.stderr[-3000:]
        pulled = json.loads(configs.stdout)["configs"]
        assert set(pulled) == {"r1", "r2", "v1"} and all(c["ok"] for c in pulled.values())
        assert pulled["r1"]["path"] == str(out / "r1.cfg")
        assert "router bgp 65001" in (out / "r1.cfg").read_text()
        assert "GigabitEthernet0/1" in (out / "v1.cfg").read_text()
        assert (out / "r1.cfg").stat().st_mode & 0o077 == 0  # root only
    finally:
        destroyed = cli(prefect_server, "destroy", lab_id, "--json")
        shutil.rmtree(names.configs_root() / f"{lab_id}-out", ignore_errors=True)
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert leftovers(lab_id) == {}
    gone = cli(None, "status", lab_id, "--json")
    assert gone.returncode == 1 and "error:" in gone.stderr


def test_invalid_input_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad-input\ntopology:\n  nodes: {r1: {kind: frr}}\n  links: [{endpoints: ['r1:eth1', 'r9:eth1']}]\n")
    result = cli(None, "deploy", str(bad), "--json")
    assert result.returncode == 2
    assert "error: links[0].endpoints[1]: link to unknown node 'r9'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert leftovers("bad-input") == {}


def test_a_deploy_killed_midway_converges_with_the_same_vlans(prefect_server: PrefectServer, tmp_path: Path) -> None:
    lab_id = f"kill-{secrets.token_hex(3)}"
    topology = lab_copy(tmp_path, "demo.yml", lab_id)
    client = docker.from_env()
    try:
        process = subprocess.Popen([ARCHETYPE, "deploy", str(topology), "--json"], env=prefect_server.env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        label = f"{names.LABEL_LAB}={lab_id}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not client.containers.list(all=True, filters={"label": label}):
            time.sleep(0.1)
        assert client.containers.list(all=True, filters={"label": label}), "the deploy never created a node"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        before = reserved_vlans(lab_id)

        again = cli(prefect_server, "deploy", str(topology), "--json")
        assert again.returncode == 0, again.stderr[-3000:]
        result = json.loads(again.stdout)
        assert {"--".join(sorted(link["endpoints"])): link["vlan"] for link in result["links"]} == before
        assert len(client.containers.list(all=True, filters={"label": label})) == 2  # no duplicates
        assert all(n["state"] == "ready" for n in result["nodes"])
    finally:
        client.close()
        cli(prefect_server, "destroy", lab_id, "--json")
    assert leftovers(lab_id) == {}


def test_embedded_prefect_when_no_api_url_is_set(tmp_path: Path) -> None:
    lab_id = f"emb-{secrets.token_hex(3)}"
    topology = lab_copy(tmp_path, "linux-hosts.yml", lab_id)
    try:
        deployed = cli(None, "deploy", str(topology), "--json")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert json.loads(deployed.stdout)["lab_id"] == lab_id
    finally:
        destroyed = cli(None, "destroy", lab_id, "--json")
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert leftovers(lab_id) == {}


def test_a_destroy_that_leaves_something_fails_and_says_what(prefect_server: PrefectServer) -> None:
    """Exit 1, the report on stdout naming what stayed, and a failed flow run in Prefect;
    once the cause is gone, destroy again finishes the job."""
    lab_id = f"stuck-{secrets.token_hex(3)}"
    folder = names.lab_dir(lab_id)
    folder.mkdir(parents=True)
    pinned = folder / "pinned"
    pinned.write_text("cannot be removed while immutable\n")
    subprocess.run(["chattr", "+i", str(pinned)], check=True)
    try:
        failed = cli(prefect_server, "destroy", lab_id, "--json")
        assert failed.returncode == 1, failed.stderr[-2000:]
        report = json.loads(failed.stdout)
        assert report["lab_id"] == lab_id and any(str(folder) in e for e in report["errors"]), report
        (run,) = prefect_server.api("POST", "/flow_runs/filter",
                                    json={"flow_runs": {"name": {"any_": [f"destroy-lab/{lab_id}"]}}})
        assert run["state_type"] == "FAILED" and "not all removed" in run["state"]["message"]
    finally:
        subprocess.run(["chattr", "-i", str(pinned)], check=True)
    done = cli(prefect_server, "destroy", lab_id, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["errors"] == [] and not folder.exists()


def _linux_pair(lab_id: str, links: int) -> str:
    nodes = {
        host: {"kind": "linux", "exec": [f"ip addr add 10.5.{i}.{n}/24 dev eth{i}" for i in range(1, links + 1)]}
        for n, host in ((1, "h1"), (2, "h2"))
    }
    return json.dumps({"name": lab_id, "topology": {
        "nodes": nodes, "links": [{"endpoints": [f"h1:eth{i}", f"h2:eth{i}"]} for i in range(1, links + 1)]}})


def _pings(lab_id: str, address: str) -> bool:
    client = docker.from_env()
    try:
        code, _ = client.containers.get(names.container_name(lab_id, "h1")).exec_run(
            ["ping", "-c", "1", "-W", "2", address])
        return code == 0
    finally:
        client.close()


def test_a_link_removed_from_the_topology_is_disconnected_on_redeploy(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    lab_id = f"relink-{secrets.token_hex(3)}"
    two, one = tmp_path / "two.yml", tmp_path / "one.yml"
    two.write_text(_linux_pair(lab_id, 2))
    try:
        assert cli(prefect_server, "deploy", str(two), "--json").returncode == 0
        assert _pings(lab_id, "10.5.2.2")
        assert len(leftovers(lab_id)["ovs_ports"]) == 4  # two links, two ends each

        # The same lab without its second link (the nodes keep their eth2 address).
        one.write_text(_linux_pair(lab_id, 2).replace(', {"endpoints": ["h1:eth2", "h2:eth2"]}', ""))
        done = cli(prefect_server, "deploy", str(one), "--json")
        assert done.returncode == 0, done.stderr[-2000:]
        assert [link["endpoints"] for link in json.loads(done.stdout)["links"]] == [["h1:eth1", "h2:eth1"]]
        assert len(leftovers(lab_id)["ovs_ports"]) == 2  # the second link's ports and veths are gone
        assert not _pings(lab_id, "10.5.2.2") and _pings(lab_id, "10.5.1.2")
        assert list(reserved_vlans(lab_id)) == ["h1:eth1--h2:eth1"]
    finally:
        destroyed = cli(prefect_server, "destroy", lab_id, "--json")
    assert destroyed.returncode == 0, destroyed.stderr[-2000:]
    assert leftovers(lab_id) == {}


def test_configs_from_a_lab_with_a_stopped_node_saves_the_rest_and_fails(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    lab_id = f"cfgs-{secrets.token_hex(3)}"
    topology = tmp_path / "lab.yml"
    topology.write_text(_linux_pair(lab_id, 1))
    try:
        assert cli(prefect_server, "deploy", str(topology), "--json").returncode == 0
        client = docker.from_env()
        client.containers.get(names.container_name(lab_id, "h2")).stop(timeout=5)
        client.close()
        out = f"{lab_id}-out"  # --out is a name under the workspace's configs folder
        pulled = cli(prefect_server, "configs", lab_id, "--out", out, "--json")
        assert pulled.returncode == 1, pulled.stderr[-2000:]
        configs = json.loads(pulled.stdout)["configs"]
        assert configs["h1"]["ok"] and "10.5.1.1" in Path(configs["h1"]["path"]).read_text()
        assert not configs["h2"]["ok"] and "h2" in configs["h2"]["error"]
        (run,) = prefect_server.api("POST", "/flow_runs/filter",
                                    json={"flow_runs": {"name": {"any_": [f"extract-configs/{lab_id}"]}}})
        assert run["state_type"] == "FAILED" and "h2" in run["state"]["message"]
    finally:
        destroyed = cli(prefect_server, "destroy", lab_id, "--json")
        shutil.rmtree(names.configs_root() / f"{lab_id}-out", ignore_errors=True)
    assert destroyed.returncode == 0, destroyed.stderr[-2000:]
    assert leftovers(lab_id) == {}
