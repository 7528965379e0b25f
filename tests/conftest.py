"""Shared fixtures that make the infrastructure a test needs explicit.

A test that needs a daemon asks for its fixture: ``docker_client``, ``libvirt_conn``
or ``ovs``. When the daemon does not answer, the test is skipped on a developer's
machine, and FAILS under CI (env ``CI=true``), where ``make test`` has started every
daemon and a missing one is a bug, not a reason to skip.

Integration tests use the default workspace (/var/lib/archetype); nothing here changes
global state.

`make test` runs the suite in groups: the tests that can share the host in parallel
(pytest-xdist, ``-m "not alone"``) with the fleet's (``tests/multihost``, one at a time)
beside them, then the other ``alone`` ones, one at a time. ``ALONE`` below
says which are alone, in one place (a test may also carry ``@pytest.mark.alone``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _unavailable(what: str) -> None:
    """Fail under CI, skip elsewhere."""
    hint = " (run `make setup` or scripts/start-daemons.sh)"
    if _in_ci():
        pytest.fail(f"{what}{hint}", pytrace=False)
    pytest.skip(f"{what}{hint}")


@pytest.fixture
def docker_client() -> Iterator[object]:
    """A docker SDK client to the local dockerd (API negotiated)."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - dependency of the project
        _unavailable(f"the docker SDK is not installed: {exc}")
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        _unavailable(f"dockerd does not answer: {exc}")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def libvirt_conn() -> Iterator[object]:
    """A libvirt connection to qemu:///system. libvirt calls block and are not
    thread-safe: use it from the test's own thread."""
    try:
        import libvirt
    except ImportError as exc:  # pragma: no cover - dependency of the project
        _unavailable(f"libvirt-python is not installed: {exc}")
    # libvirt prints every error on stderr by default; the exceptions carry them anyway.
    libvirt.registerErrorHandler(lambda *_args: None, None)
    try:
        conn = libvirt.open("qemu:///system")
        conn.listAllDomains()
    except libvirt.libvirtError as exc:
        _unavailable(f"libvirtd (qemu:///system) does not answer: {exc}")
    try:
        yield conn
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


@dataclass(frozen=True)
class Ovs:
    """Open vSwitch on this host; ``vsctl`` runs one ovs-vsctl transaction."""

    vsctl_path: str

    def vsctl(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            [self.vsctl_path, "--timeout=10", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"ovs-vsctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout


@pytest.fixture
def ovs() -> Ovs:
    """Open vSwitch: ovsdb-server answers ``ovs-vsctl show`` and ovs-vswitchd answers."""
    vsctl = shutil.which("ovs-vsctl")
    if vsctl is None:
        _unavailable("ovs-vsctl is not installed")
    checks = (
        [vsctl, "--timeout=5", "show"],
        ["ovs-appctl", "-T", "5", "-t", "ovs-vswitchd", "version"],
    )
    for cmd in checks:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"Open vSwitch does not answer `{' '.join(cmd)}`: {exc}")
        if proc.returncode != 0:
            _unavailable(f"Open vSwitch does not answer `{' '.join(cmd)}`: {proc.stderr.strip()}")
    return Ovs(vsctl_path=vsctl)


# Tests that must not share the host with the parallel group: `make test` runs them serially,
# tests/multihost beside the parallel group (the fleet's daemons are its own), the rest after it. Node id prefixes (a folder, a file or one test).
ALONE = (
    "tests/reliability/",  # restart dockerd, libvirtd and OVS, kill deploys: every other lab sees it
    "tests/multihost/",  # the simulated fleet, one fleet at a time: the fresh-fleet test removes it
    "tests/e2e/test_warm_first_command.py",  # measures a command's first second
    "tests/e2e/test_mixed_lab.py",  # runs the cleanup-orphans flow: a lab another test makes meanwhile is no known lab
    "tests/integration/test_host_setup.py::test_setup_runs_again_and_leaves_its_lock_free",  # the whole setup again
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(ALONE):
            item.add_marker(pytest.mark.alone)


def _xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """One owner for the whole run, xdist's workers included (they inherit it): the local
    Prefect server a CLI run starts is this run's, whichever worker started it."""
    if not _xdist_worker(config) and "PYTEST_XDIST_WORKER" not in os.environ:
        os.environ["ARCHETYPE_SERVER_OWNER"] = f"pytest-{os.getpid()}-{secrets.token_hex(3)}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A CLI run without PREFECT_API_URL starts the long-lived local Prefect server; the run
    that started it ends it, once every test is done (in the controller under xdist, not in
    a worker that finishes while the others still use it), so that CI never waits on it. A
    server someone else started (`make setup`, a person, another run) is left alone."""
    if _xdist_worker(session.config):
        return
    from deployments import local_server

    if local_server.owner() == os.environ.get("ARCHETYPE_SERVER_OWNER"):
        from archetype.handoff import stop_executor

        stop_executor(local_server.prefect_home())  # started with it, by the first flow command
        local_server.stop()


@pytest.fixture
def unique_lab_id() -> str:
    """A fresh lab id, e.g. ``t-3fa9c1``: valid (``^[a-z][a-z0-9-]{0,19}$``) and unlikely
    to meet a leftover from an earlier run on a dirty host."""
    return f"t-{secrets.token_hex(3)}"
