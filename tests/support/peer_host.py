"""A second lab host on this machine, for migration tests of the libvirt provider: its own
libvirtd, virtlogd and Open vSwitch in a mount + network + UTS namespace, reached over a
veth underlay (HOST-FACTS, "Several hosts on one machine").

Inside the namespace, per-host folders are bound over the daemons' default paths
(``/run/libvirt``, ``/etc/libvirt`` (a copy), ``/run/openvswitch``, ...) and over the
workspace (``/var/lib/archetype``, with the host's images bound read-only inside it), so
that the project's code, run there with ``PeerHost.python``, uses its default paths and
finds the peer's daemons and files.

Every process is ended by the pid it recorded (never by name); ``stop`` also removes the
folders. The simulated fleet of the multi-host work (``make sim-up``) supersedes this for
flow tests; this stands alone so that the provider layer can be tested first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST_IMAGES = Path("/var/lib/archetype/images")

# Folder on the peer -> where the per-host copy lives under its root.
_BOUND = {
    "/run/libvirt": "run/libvirt",
    "/var/lib/libvirt": "var/lib/libvirt",
    "/var/log/libvirt": "var/log/libvirt",
    "/var/cache/libvirt": "var/cache/libvirt",
    "/etc/libvirt": "etc/libvirt",
    "/run/openvswitch": "run/openvswitch",
    "/etc/openvswitch": "etc/openvswitch",
    "/var/log/openvswitch": "var/log/openvswitch",
    "/var/lib/openvswitch": "var/lib/openvswitch",
    "/var/lib/archetype": "workspace",
}


@dataclass
class PeerHost:
    name: str  # e.g. "mv-peer"; also the prefix of the underlay veth names
    root: Path
    host_address: str  # this (the source) host's end of the underlay
    address: str  # the peer's end: its libvirtd and migrations listen here
    holder_pid: int | None = None
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def libvirt_uri(self) -> str:
        return f"qemu+tcp://{self.address}/system"

    @property
    def migration_uri(self) -> str:
        return f"tcp://{self.address}"

    def path(self, inside: str) -> Path:
        """Where a path as the peer sees it lives on this host (for paths under the binds)."""
        for peer_path, local in sorted(_BOUND.items(), key=lambda kv: -len(kv[0])):
            if inside == peer_path or inside.startswith(peer_path + "/"):
                return self.root / local / inside[len(peer_path) :].lstrip("/")
        raise ValueError(f"{inside} is not a per-host path of {self.name}")

    # running things inside ------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        assert self.holder_pid
        return ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "-u", "--", *args]

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def python(self, code: str, *, timeout: float = 120) -> object:
        """Run ``code`` with the project's Python on the peer; it prints one JSON document
        (the last line of stdout), returned decoded."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            self.argv(sys.executable, "-c", code), capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: python failed: {result.stderr.strip()[-2000:]}")
        lines = result.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    # life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._make_folders()
            self._start_holder()
            self._underlay()
            self._start_ovs()
            self._start_libvirt()
        except BaseException:
            self.stop()
            raise

    def _make_folders(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        for local in _BOUND.values():
            (self.root / local).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/libvirt", self.root / "etc/libvirt", dirs_exist_ok=True, symlinks=True)
        (self.root / "workspace/images").mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        conf = self.root / "etc/libvirt"
        (conf / "libvirtd.conf").write_text(
            f'host_uuid = "{uuid.uuid4()}"\nlisten_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"\n'
            f'listen_addr = "{self.address}"\n'
        )
        (conf / "qemu.conf").write_text(f'security_driver = "none"\nmigration_address = "{self.address}"\n')
        # The host's domain definitions are not the peer's.
        qemu_dir = conf / "qemu"
        for xml in qemu_dir.glob("*.xml"):
            xml.unlink()
        shutil.rmtree(qemu_dir / "autostart", ignore_errors=True)
        shutil.rmtree(qemu_dir / "networks" / "autostart", ignore_errors=True)

    def _start_holder(self) -> None:
        binds = [f"mount --rbind {self.root / local} {peer}" for peer, local in _BOUND.items()]
        script = " && ".join(
            [
                "mount --make-rprivate /",
                f"mount --bind {HOST_IMAGES} {self.root / 'workspace/images'}",
                *binds,
                f"hostname {self.name}",
                "ip link set lo up",
                "exec sleep infinity",
            ]
        )
        holder = subprocess.Popen(  # noqa: S603 - fixed argv, our own paths
            ["unshare", "--mount", "--net", "--uts", "--fork", "--kill-child", "--", "sh", "-c", script],
            start_new_session=True,
        )
        self.pids["holder"] = holder.pid
        # unshare --fork: the namespaces belong to its child; wait for `sleep` to be there.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split()
            if children and Path(f"/proc/{children[0]}/comm").read_text().strip() == "sleep":
                self.holder_pid = int(children[0])
                return
            if holder.poll() is not None:
                raise RuntimeError(f"{self.name}: the namespace holder exited ({holder.returncode})")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: the namespace holder did not come up")

    def _underlay(self) -> None:
        host_if, peer_if = f"{self.name[:10]}-h", f"{self.name[:10]}-p"
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        for argv in (
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if],
            ["ip", "link", "set", peer_if, "netns", str(self.holder_pid)],
            ["ip", "addr", "add", f"{self.host_address}/30", "dev", host_if],
            ["ip", "link", "set", host_if, "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        self.run("ip", "addr", "add", f"{self.address}/30", "dev", peer_if)
        self.run("ip", "link", "set", peer_if, "up")
        self.underlay_if = host_if

    def _pidfile(self, local: str, name: str, timeout: float = 30) -> int:
        path = self.root / local
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                pid = int(path.read_text().strip())
                self.pids[name] = pid
                return pid
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: {name} wrote no pid file {path}")

    def _start_ovs(self) -> None:
        self.run("ovsdb-tool", "create", "/etc/openvswitch/conf.db", "/usr/share/openvswitch/vswitch.ovsschema")
        self.run(
            "ovsdb-server", "/etc/openvswitch/conf.db", "--remote=punix:/run/openvswitch/db.sock",
            "--pidfile=/run/openvswitch/ovsdb-server.pid", "--detach", "--no-chdir",
            "--log-file=/var/log/openvswitch/ovsdb-server.log",
        )
        self._pidfile("run/openvswitch/ovsdb-server.pid", "ovsdb-server")
        self.run("ovs-vsctl", "--no-wait", "init")
        self.run(
            "ovs-vswitchd", "unix:/run/openvswitch/db.sock", "--pidfile=/run/openvswitch/ovs-vswitchd.pid",
            "--detach", "--no-chdir", "--log-file=/var/log/openvswitch/ovs-vswitchd.log",
        )
        self._pidfile("run/openvswitch/ovs-vswitchd.pid", "ovs-vswitchd")

    def _start_libvirt(self) -> None:
        self.run("virtlogd", "-d", "-p", "/run/libvirt/virtlogd.pid")
        self._pidfile("run/libvirt/virtlogd.pid", "virtlogd")
        self.run("libvirtd", "-d", "--listen", "-p", "/run/libvirt/libvirtd.pid")
        self._pidfile("run/libvirt/libvirtd.pid", "libvirtd")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["virsh", "-c", self.libvirt_uri, "uri"], capture_output=True, text=True, timeout=15, check=False
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: libvirtd does not answer on {self.libvirt_uri}")

    def domains(self) -> list[str]:
        result = subprocess.run(
            ["virsh", "-c", self.libvirt_uri, "list", "--all", "--name"], capture_output=True, text=True, timeout=30
        )
        return result.stdout.split()

    def stop(self) -> None:
        """Every domain of the peer destroyed, every daemon ended by its recorded pid (the
        QEMUs the peer's libvirtd started go with their domains), folders removed."""
        if self.pids.get("libvirtd"):
            for domain in self.domains():
                subprocess.run(["virsh", "-c", self.libvirt_uri, "destroy", domain], capture_output=True, check=False)
        for name in ("libvirtd", "virtlogd", "ovs-vswitchd", "ovsdb-server", "holder"):
            pid = self.pids.pop(name, None)
            if pid:
                _end(pid)
        if self.holder_pid:
            _end(self.holder_pid)
            self.holder_pid = None
        subprocess.run(["ip", "link", "del", f"{self.name[:10]}-h"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _end(pid: int, timeout: float = 10) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
