"""Fixtures for the libvirt provider's integration tests: real libvirtd + QEMU (TCG) + OVS,
and the mini-ios test VM (images/mini-ios/build.sh).

Booted VMs are shared by the tests of a module (module-scoped fixtures): a TCG boot costs
5-15 s on this 2-core host. Every lab a test makes is destroyed at teardown, and only
those; other labs on the host are never touched.

Host networking is the real ``providers.network`` on the settings' bridge.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from providers import network
from providers.libvirt import LibvirtProvider
from tests.integration.libvirt.support import require_libvirt, require_mini_ios, unavailable


@pytest.fixture(scope="module")
def net() -> object:
    """``providers.network``, with the bridge there (Open vSwitch must answer)."""
    if shutil.which("ovs-vsctl") is None:
        unavailable("ovs-vsctl is not installed")
    proc = subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True, text=True, timeout=15, check=False)
    if proc.returncode != 0:
        unavailable(f"Open vSwitch does not answer: {proc.stderr.strip()}")
    network.ensure_bridge()
    return network


@pytest.fixture(scope="module")
def provider(net: object) -> Iterator[LibvirtProvider]:
    require_libvirt()
    require_mini_ios()
    prov = LibvirtProvider()
    try:
        yield prov
    finally:
        prov.close()


