"""The host is set up: the daemons answer and the local images exist and work.

These are what `scripts/setup-host.sh` promises; every later integration test builds
on them. Real daemons, real containers: each container is removed in a finally block.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker]

WORKSPACE = Path("/var/lib/archetype")
REPO = Path(__file__).resolve().parents[2]
FRR_CAPS = ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]  # never privileged: it fails on this host


def _remove(container) -> None:
    with contextlib.suppress(Exception):  # best effort: it may be gone already
        container.remove(force=True)


def _wait_exec(container, cmd: list[str], timeout: float = 30.0) -> str:
    """Run ``cmd`` in the container until it exits 0; return its output."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        code, out = container.exec_run(cmd)
        last = out.decode(errors="replace")
        if code == 0:
            return last
        if time.monotonic() > deadline:
            pytest.fail(
                f"{cmd} did not succeed within {timeout} s; last output: {last!r}\n"
                f"container logs:\n{container.logs().decode(errors='replace')}"
            )
        time.sleep(0.2)


def _processes(container) -> set[str]:
    code, out = container.exec_run(["ps", "-eo", "comm="])
    assert code == 0, out
    return {line.strip() for line in out.decode().splitlines() if line.strip()}


def _wait_processes(container, expected: set[str], timeout: float = 30.0) -> set[str]:
    """The container's process names once all of ``expected`` run (watchfrr starts the
    daemons one after the other: vtysh may answer before the last one is up)."""
    deadline = time.monotonic() + timeout
    while not expected <= (procs := _processes(container)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return procs


def _run_frr(docker_client, name: str, **kwargs):
    return docker_client.containers.run(
        "archetype/frr:latest",
        name=name,
        detach=True,
        network_mode="none",
        cap_add=FRR_CAPS,
        **kwargs,
    )


# ---------------------------------------------------------------- daemons
def test_dockerd_answers(docker_client) -> None:
    assert docker_client.ping()
    info = docker_client.info()
    assert info["Driver"] == "overlay2"


@pytest.mark.libvirt
def test_libvirtd_answers_with_qemu(libvirt_conn) -> None:
    assert libvirt_conn.getType() == "QEMU"
    # KVM does not work on these hosts: domains use TCG (type='qemu').
    assert "<domain type='qemu'" in libvirt_conn.getCapabilities()
    libvirt_conn.listAllDomains()


@pytest.mark.ovs
def test_ovs_answers_and_makes_a_userspace_bridge(ovs, unique_lab_id) -> None:
    bridge = "tb" + unique_lab_id.removeprefix("t-")  # <= 15 chars, an interface name
    try:
        ovs.vsctl("--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev")
        assert bridge in ovs.vsctl("list-br").split()
        # A bridge that failed to come up has no ofport (-1) on its local interface.
        assert ovs.vsctl("get", "interface", bridge, "ofport").strip() not in ("-1", "[]")
    finally:
        ovs.vsctl("--if-exists", "del-br", bridge, check=False)


def test_workspace_exists() -> None:
    for sub in ("images", "disks", "data", "configs", "labs", "vlans", "locks", "logs"):
        assert (WORKSPACE / sub).is_dir(), WORKSPACE / sub
    assert Path("/var/log/libvirt/qemu").is_dir()


# ---------------------------------------------------------------- archetype/linux
def test_linux_image_runs_a_command(docker_client, unique_lab_id) -> None:
    name = f"{unique_lab_id}-hs-linux"
    container = docker_client.containers.run(
        "archetype/linux:latest", ["sh", "-c", "echo ok"], name=name, detach=True
    )
    try:
        assert container.wait(timeout=30)["StatusCode"] == 0
        assert container.logs().decode().strip() == "ok"
    finally:
        _remove(container)


def test_linux_image_stops_promptly(docker_client, unique_lab_id) -> None:
    container = docker_client.containers.run(
        "archetype/linux:latest", name=f"{unique_lab_id}-hs-sleep", detach=True, network_mode="none"
    )
    try:
        container.reload()
        assert container.status == "running"
        t0 = time.monotonic()
        container.stop(timeout=10)
        assert time.monotonic() - t0 < 5, "the default CMD must exit on SIGTERM, not wait for SIGKILL"
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0
    finally:
        _remove(container)


# ---------------------------------------------------------------- archetype/frr
def test_frr_answers_vtysh_with_default_daemons(docker_client, unique_lab_id) -> None:
    container = _run_frr(docker_client, f"{unique_lab_id}-hs-frr")
    try:
        out = _wait_exec(container, ["vtysh", "-c", "show version"], timeout=30)
        assert "FRRouting" in out
        _wait_exec(container, ["vtysh", "-c", "show bgp summary"], timeout=30)
        expected = {"zebra", "staticd", "bgpd", "ospfd", "ospf6d", "isisd", "watchfrr"}
        procs = _wait_processes(container, expected)
        assert expected <= procs, f"{procs}\n{container.logs().decode(errors='replace')}"
        # Stops cleanly (FRR stopped by the entrypoint, exit 0) and quickly.
        t0 = time.monotonic()
        container.stop(timeout=20)
        assert time.monotonic() - t0 < 10
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0
        assert "stopping FRR" in container.logs().decode(errors="replace")
    finally:
        _remove(container)


def test_frr_daemons_follow_env(docker_client, unique_lab_id) -> None:
    container = _run_frr(
        docker_client, f"{unique_lab_id}-hs-frrenv", environment={"FRR_DAEMONS": "zebra staticd ospfd"}
    )
    try:
        _wait_exec(container, ["vtysh", "-c", "show ip ospf"], timeout=30)
        procs = _wait_processes(container, {"zebra", "staticd", "ospfd"})
        assert {"zebra", "staticd", "ospfd"} <= procs, procs
        assert not {"bgpd", "ospf6d", "isisd"} & procs, procs
    finally:
        _remove(container)


def test_frr_reads_a_read_only_bind_mounted_config(docker_client, unique_lab_id, tmp_path) -> None:
    conf = tmp_path / "frr.conf"
    conf.write_text("router bgp 65042\n bgp router-id 10.0.0.42\nexit\n")
    conf.chmod(0o644)
    container = _run_frr(
        docker_client,
        f"{unique_lab_id}-hs-frrconf",
        volumes={str(conf): {"bind": "/etc/frr/frr.conf", "mode": "ro"}},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            out = _wait_exec(container, ["vtysh", "-c", "show running-config"], timeout=30)
            if "router bgp 65042" in out:
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.2)
        assert "bgp router-id 10.0.0.42" in out
    finally:
        _remove(container)


def test_frr_refuses_an_unknown_daemon(docker_client, unique_lab_id) -> None:
    container = _run_frr(
        docker_client, f"{unique_lab_id}-hs-frrbad", environment={"FRR_DAEMONS": "zebra bgp"}
    )
    try:
        assert container.wait(timeout=30)["StatusCode"] != 0
        assert "unknown FRR daemon 'bgp'" in container.logs().decode(errors="replace")
    finally:
        _remove(container)


# ---------------------------------------------------------------- mini-ios VM image
def test_mini_ios_image_files() -> None:
    image_dir = WORKSPACE / "images" / "mini-ios"
    if not (REPO / "images/mini-ios/build.sh").exists() and not image_dir.exists():
        pytest.skip("no mini-ios image on this host (images/mini-ios/build.sh not present)")
    for name in ("vmlinuz", "initrd.img"):
        path = image_dir / name
        assert path.is_file(), path
        assert path.stat().st_size > 100_000, path


# ---------------------------------------------------------------- setup again
SETUP_LOCK = "/run/lock/archetype-setup-host.lock"


def _setup_lock_holders() -> list[str]:
    """Command lines of the processes that have the setup lock file open."""
    holders = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == SETUP_LOCK for fd in fd_dir.iterdir()):
                holders.append((fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # the process ended meanwhile, or a kernel thread
            continue
    return holders


def test_setup_runs_again_and_leaves_its_lock_free() -> None:
    """`make demo` after `make test` (or any second setup) must not wait forever on a lock
    that the daemons the first setup started inherited."""
    assert not _setup_lock_holders(), "processes hold the setup lock after setup ended"
    result = subprocess.run(["bash", str(REPO / "scripts" / "setup-host.sh")], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "host setup done" in (result.stdout + result.stderr)
    assert not _setup_lock_holders()
