"""The tunnel's 50 bytes: an underlay that cannot carry a 1500-byte link plus VXLAN is
refused with both sizes named (the simulated fleet's 1550 underlay would hide the problem,
so this runs in a throw-away network namespace with a 1500 one)."""

from __future__ import annotations

import subprocess
import sys

from tests.multihost.conftest import REPO

PROBE = """
from pyroute2 import IPRoute
from lab.errors import NetworkError
from providers.network.vxlan import Tunnel, ensure_tunnels
with IPRoute() as ipr:
    ipr.link("add", ifname="under0", kind="veth", peer="under1", mtu=1500)  # no dummy module here
    (index,) = ipr.link_lookup(ifname="under0")
    ipr.addr("add", index=index, address="10.213.9.1", prefixlen=24)
    ipr.link("set", index=index, state="up")
try:
    ensure_tunnels("mh-mtu", [Tunnel("a:eth1--b:eth1", "a", 5000, "10.213.9.2", 100)], local="10.213.9.1")
except NetworkError as err:
    print(err)
"""


def test_an_underlay_too_small_for_the_tunnel_is_refused_by_name() -> None:
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=60, check=False, env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "underlay MTU 1500 of 10.213.9.1 is below 1500 + 50" in result.stdout, result.stdout + result.stderr
