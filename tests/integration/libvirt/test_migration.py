"""Live migration of a mini-ios VM between two libvirtd on this machine (the host's, and a
peer host in its own namespaces with its own libvirtd, virtlogd and OVS:
tests/support/peer_host.py), through the provider layer alone (no Prefect).

What a user relies on: the VM is not rebooted (a config line entered after boot and never
saved, and its uptime, survive), its link works on the destination with the destination's
VLAN tag and our OVS markers, its console works there, its serial log goes on, the source
keeps nothing of it; and a migration that cannot happen (no memory there, cancelled
midway, destination unreachable) leaves it running on the source with its link, and
nothing on the destination.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import names
from providers.base import LinkEnd, NodeState
from providers.labs import destroy_lab
from providers.libvirt import LibvirtProvider
from providers.libvirt.migration import MigrationCancelled, MigrationError, MigrationPlan
from tests.integration.libvirt.support import mini_ios
from tests.support.peer_host import PeerHost

pytestmark = [pytest.mark.libvirt, pytest.mark.ovs, pytest.mark.slow]

V1_ADDRESS, PEER_ADDRESS = "10.78.0.1", "10.78.0.2"
SOURCE_TAG, DEST_TAG = 3901, 3902  # the destination's tag differs: it must come from the XML
PROBE = "mvprobe0"  # the peer's own end of the link: an OVS internal port in its netns


@pytest.fixture(scope="module")
def peer() -> Iterator[PeerHost]:
    host = PeerHost(f"mv{secrets.token_hex(2)}", Path(f"/var/tmp/archetype-mv-peer-{secrets.token_hex(2)}"),
                    "10.99.77.1", "10.99.77.2")
    host.start()
    try:
        host.run("ovs-vsctl", "--may-exist", "add-br", "arch-ovs", "--", "set", "Bridge", "arch-ovs",
                 "datapath_type=netdev")
        host.run("ovs-vsctl", "add-port", "arch-ovs", PROBE, f"tag={DEST_TAG}", "--",
                 "set", "Interface", PROBE, "type=internal")
        host.run("ip", "addr", "add", f"{PEER_ADDRESS}/24", "dev", PROBE)
        host.run("ip", "link", "set", PROBE, "up")
        yield host
    finally:
        host.stop()


def peer_call(peer: PeerHost, code: str, **values: object) -> object:
    """Run provider code on the peer (its own files, libvirtd, OVS); ``values`` arrive as
    JSON in ``args``; the code's ``result`` comes back as JSON."""
    program = (
        "import json, sys\n"
        "from providers.libvirt import LibvirtProvider\n"
        "from providers.libvirt.migration import MigrationPlan\n"
        "from providers import network\n"
        "from providers.base import LinkEnd\n"
        f"args = json.loads({json.dumps(json.dumps(values))})\n"
        "provider = LibvirtProvider()\n"
        "result = None\n"
        f"{code}\n"
        "provider.close()\n"
        "print(json.dumps(result))\n"
    )
    return peer.python(program)


def end_of(lab_id: str, vlan: int) -> LinkEnd:
    link = names.link_id("v1:GigabitEthernet0/1", "p:eth1")
    return LinkEnd(link, "GigabitEthernet0/1", 1, vlan, names.host_port_name(lab_id, "v1", "GigabitEthernet0/1"))


def boot_v1(provider: LibvirtProvider, lab_id: str):  # noqa: ANN201
    node = mini_ios("v1", "configure terminal", "interface GigabitEthernet0/1",
                    f"ip address {V1_ADDRESS} 255.255.255.0", "no shutdown", "end")
    ends = [end_of(lab_id, SOURCE_TAG)]
    provider.create_node(lab_id, node, ends)
    provider.wire_node(lab_id, node, ends)
    provider.wait_ready(lab_id, node)
    provider.run_post_boot(lab_id, node)
    return node


def uptime_seconds(version: str) -> int:
    match = re.search(r"uptime is (.*)", version)
    assert match, version
    total = 0
    for amount, unit in re.findall(r"(\d+) (week|day|hour|minute|second)", match.group(1)):
        total += int(amount) * {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}[unit]
    return total


def peer_ping(peer: PeerHost, count: int = 3) -> bool:
    return peer.run("busybox", "ping", "-c", str(count), "-W", "1", V1_ADDRESS, check=False).returncode == 0


def wait_peer_ping(peer: PeerHost, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if peer_ping(peer, 1):
            return True
    return False


def source_ping(provider: LibvirtProvider, lab_id: str, node) -> str:  # noqa: ANN001
    with provider.console(lab_id, node) as session:
        session.start()
        return session.send_command("show version")


def assert_peer_holds_nothing(peer: PeerHost, lab_id: str) -> None:
    assert not [d for d in peer.domains() if d.startswith(names.domain_name(lab_id, ""))]
    for folder in ("disks", "data", "logs"):
        here = peer.root / "workspace" / folder / lab_id
        assert not here.exists() or not any(here.iterdir()), f"{here}: {list(here.iterdir())}"
    ports = peer.run("ovs-vsctl", "list-ports", "arch-ovs").stdout.split()
    assert ports == [PROBE], ports


@pytest.fixture
def provider() -> Iterator[LibvirtProvider]:
    prov = LibvirtProvider()
    try:
        yield prov
    finally:
        prov.close()


def test_live_migration_keeps_the_running_vm_and_its_link(provider: LibvirtProvider, peer: PeerHost) -> None:
    lab_id = f"mv-{secrets.token_hex(3)}"
    try:
        node = boot_v1(provider, lab_id)
        with provider.console(lab_id, node) as session:  # lives only in the VM's memory
            session.start()
            session.configure(["hostname MV-MEMORY-MARK"])
            before = uptime_seconds(session.send_command("show version"))

        plan = provider.describe_migration(lab_id, "v1")
        assert MigrationPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan  # travels as a parameter
        made = peer_call(peer, "result = provider.prepare_migration(MigrationPlan.from_dict(args['plan']), "
                               "bytes.fromhex(args['seed']))",
                         plan=plan.to_dict(), seed=Path(plan.serial_log).read_bytes().hex())
        port = end_of(lab_id, DEST_TAG).port_name
        result = provider.migrate(plan, dest_uri=peer.libvirt_uri, migration_uri=peer.migration_uri,
                                  tags={port: DEST_TAG})
        peer_call(peer, "network.ensure_vm_ports(args['lab'], 'v1', [LinkEnd(*args['end'])])",
                  lab=lab_id, end=list(end_of(lab_id, DEST_TAG).__dict__.values()))
        print(f"\n[figures] mini-ios live migration: {result.seconds:.2f} s, downtime {result.downtime_ms} ms "
              f"(QEMU), {result.data_mb} MiB moved; files made on the destination: {made}")

        # only on the destination, running; nothing of it on the source
        assert provider.inspect(lab_id, "v1") is None
        assert names.domain_name(lab_id, "v1") in peer.domains()
        report = provider.leave_source(lab_id, "v1")
        assert report.ok, report.errors
        assert not (names.data_dir(lab_id) / "v1.qcow2").exists()
        assert not names.serial_log_path(lab_id, "v1").exists()

        # its link, on the destination's tag with our markers
        row = json.loads(peer.run("ovs-vsctl", "--format=json", "--columns=tag,external_ids", "list", "Port", port).stdout)
        tag, (_, ids) = row["data"][0]
        assert tag == DEST_TAG
        assert dict(ids)[names.OVS_LAB_KEY] == lab_id and dict(ids)[names.OVS_NODE_KEY] == "v1"
        assert wait_peer_ping(peer), "the VM does not answer on its link at the destination"

        # not rebooted: the unsaved line and the uptime survive; the console works there
        remote = LibvirtProvider(peer.libvirt_uri)
        try:
            with remote.console(lab_id, node) as session:
                session.start()
                config = session.send_command("show running-config")
                after = uptime_seconds(session.send_command("show version"))
            assert "hostname MV-MEMORY-MARK" in config
            assert after >= before
            assert remote.node_status(lab_id, "v1").state is NodeState.RUNNING
        finally:
            remote.close()
        # the serial log goes on: the boot banner of the source is still in it
        log_text = peer.path(str(names.serial_log_path(lab_id, "v1"))).read_text(errors="replace")
        assert "Press RETURN to get started" in log_text
    finally:
        tear_down(peer, lab_id)
    assert_peer_holds_nothing(peer, lab_id)


def tear_down(peer: PeerHost, lab_id: str) -> None:
    """The lab removed from both hosts (each by its own code and files)."""
    peer_call(peer, "from providers.workspace import remove_lab_files\n"
                    "result = [*provider.remove_lab_nodes(args['lab']).errors, *network.release_lab(args['lab']).errors,"
                    " *remove_lab_files(args['lab']).errors]", lab=lab_id)
    destroy_lab(lab_id)
    # console locks of the sessions this test opened from here on the peer's VM
    for lock in names.locks_dir().glob(f"console-{names.domain_name(lab_id, '')}*.lock"):
        lock.unlink(missing_ok=True)


def _still_on_source(provider: LibvirtProvider, peer: PeerHost, lab_id: str) -> None:
    assert provider.node_status(lab_id, "v1").state is NodeState.RUNNING
    assert_peer_holds_nothing(peer, lab_id)


def test_failed_migrations_leave_the_vm_on_the_source(provider: LibvirtProvider, peer: PeerHost) -> None:
    lab_id = f"mv-{secrets.token_hex(3)}"
    prepare = ("result = provider.prepare_migration(MigrationPlan.from_dict(args['plan']))")
    try:
        node = boot_v1(provider, lab_id)
        plan = provider.describe_migration(lab_id, "v1")
        port = end_of(lab_id, DEST_TAG).port_name

        # not enough memory on the destination: refused before anything is made there
        with pytest.raises(RuntimeError, match="needs 256 MiB"):
            peer_call(peer, "import os; os.environ['ARCHETYPE_HOST_MEMORY_RESERVE_MB'] = str(10**8)\n"
                            "from lab.settings import get_settings; get_settings.cache_clear()\n" + prepare,
                      plan=plan.to_dict())
        _still_on_source(provider, peer, lab_id)

        # the destination's libvirtd unreachable: the migration fails, the files made go
        # (prepared twice: a run killed after preparing leaves files the next one replaces)
        peer_call(peer, prepare, plan=plan.to_dict())
        made = peer_call(peer, prepare, plan=plan.to_dict())
        assert made
        with pytest.raises(MigrationError):
            provider.migrate(plan, dest_uri=f"qemu+tcp://{peer.address}:1/system", migration_uri=peer.migration_uri,
                             tags={port: DEST_TAG})
        peer_call(peer, "result = provider.clean_migration(MigrationPlan.from_dict(args['plan']), args['made'])",
                  plan=plan.to_dict(), made=made)
        _still_on_source(provider, peer, lab_id)

        # cancelled midway (slowed to 1 MiB/s so that it is still copying)
        made = peer_call(peer, prepare, plan=plan.to_dict())
        cancel = threading.Event()
        seen: list[dict] = []

        def cancel_once_copying(stats: dict) -> None:
            seen.append(stats)
            if stats.get("data_processed", 0) > 0 or len(seen) > 10:
                cancel.set()

        with pytest.raises(MigrationCancelled):
            provider.migrate(plan, dest_uri=peer.libvirt_uri, migration_uri=peer.migration_uri,
                             tags={port: DEST_TAG}, cancel=cancel, progress=cancel_once_copying, bandwidth_mib=1)
        peer_call(peer, "result = provider.clean_migration(MigrationPlan.from_dict(args['plan']), args['made'])",
                  plan=plan.to_dict(), made=made)
        _still_on_source(provider, peer, lab_id)
        assert "IOS" in source_ping(provider, lab_id, node)  # its console answers on the source

        # and with its link: a second migration, done, still works afterwards
        made = peer_call(peer, prepare, plan=plan.to_dict())
        result = provider.migrate(plan, dest_uri=peer.libvirt_uri, migration_uri=peer.migration_uri,
                                  tags={port: DEST_TAG})
        assert result.seconds > 0 and names.domain_name(lab_id, "v1") in peer.domains()
    finally:
        tear_down(peer, lab_id)
    assert_peer_holds_nothing(peer, lab_id)
