"""One test per catalog entry: what that kind's real image needs, as ../shared/VENDOR-FACTS.md
gives it (vrnetlab, containerlab, the earlier Archetype), checked against the entry.

Every kind of the catalog must have its test here (a new entry without one fails)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vendors import catalog, get_vendor
from vendors.model import (
    Capability,
    ExtractionMethod,
    Firmware,
    Provider,
    ReadinessMethod,
    VendorConfig,
    VmStartupConfig,
)


def port(vendor: VendorConfig, name: str) -> int | None:
    return vendor.interfaces.port_of(name)


def takes_startup_config(vendor: VendorConfig) -> bool:
    return vendor.startup_config_refusal is None and Capability.STARTUP_CONFIG in vendor.capabilities


def post_boot_claimed_only_with_commands(vendor: VendorConfig) -> None:
    assert (Capability.POST_BOOT in vendor.capabilities) == bool(vendor.post_boot_commands)


def linux(v: VendorConfig) -> None:
    # a plain host: eth1 is the first data port, eth0 management; nothing to run; when it runs
    # archetype/frr (netlab's FRR nodes are linux nodes), ready once frr.conf is applied
    assert v.provider is Provider.DOCKER and port(v, "eth1") == 1
    probe = " ".join(v.readiness.command or [])
    assert v.readiness.method is ReadinessMethod.CLI_PROBE and "/run/archetype-frr-starting" in probe
    assert v.readiness.failed_marker == "/run/archetype-frr-failed" and not v.post_boot_commands
    assert not takes_startup_config(v)  # no file a plain host reads its config from


def frr(v: VendorConfig) -> None:
    # zebra does not start without NET_ADMIN, NET_RAW, SYS_ADMIN (HOST-FACTS); frr.conf is read
    # at start; `show running-config` (and `show bgp summary`) answer before frr.conf is read
    assert {"NET_ADMIN", "NET_RAW", "SYS_ADMIN"} <= set(v.container.cap_add)
    assert v.container.startup_config_path == "/etc/frr/frr.conf" and takes_startup_config(v)
    # ready means configured: the image's verdict (frr-reload.py --test, run by the image), or
    # for another FRR image the same check in the probe; a failed application fails the node
    probe = " ".join(v.readiness.command or [])
    assert "frr-reload.py --test" in probe and "Lines To Add" in probe and "/run/archetype-frr-starting" in probe
    assert v.readiness.failed_marker == "/run/archetype-frr-failed" and "FRR 10.3" in v.description
    assert v.config_extraction.command == "vtysh -c 'show running-config'"
    assert v.container.env["FRR_DAEMONS"].split() >= ["zebra", "staticd", "bgpd"]


def ceos(v: VendorConfig) -> None:
    # containerlab's env, the startup-config in flash, eth1 = Ethernet1, the EOS_FORWARD drop rules gone
    env = v.container.env
    assert {"CEOS": "1", "EOS_PLATFORM": "ceoslab", "INTFTYPE": "eth", "MAPETH0": "1", "MGMT_INTF": "eth0"}.items() <= env.items()
    assert v.container.startup_config_path == "/mnt/flash/startup-config"
    assert port(v, "Ethernet1") == port(v, "eth1") == 1 and v.interfaces.runtime_name(1) == "eth1"
    assert any("EOS_FORWARD" in c for c in v.post_boot_commands)
    assert v.config_extraction.command == "FastCli -p 15 -c 'show running-config'"
    assert v.memory_mb >= 2048


def nokia_srlinux(v: VendorConfig) -> None:
    # Linux e1-N is SR Linux ethernet-1/N; config.json under /etc/opt/srlinux; netns tmpfs; sr_linux as cmd
    assert port(v, "ethernet-1/3") == 3 and v.interfaces.runtime_name(3) == "e1-3"
    assert v.container.startup_config_path == "/etc/opt/srlinux/config.json"
    assert v.container.tmpfs == {"/run/netns": "rw"}
    assert "/opt/srlinux/bin/sr_linux" in " ".join(v.container.cmd or [])
    assert v.readiness.pattern == "running" and "mgmt_server" in " ".join(v.readiness.command or [])
    assert v.config_extraction.command == "sr_cli -d 'info flat'"


def juniper_crpd(v: VendorConfig) -> None:
    assert v.container.startup_config_path == "/config/juniper.conf"
    assert port(v, "eth1") == 1 and v.interfaces.management == "eth0"


def vyos(v: VendorConfig) -> None:
    # the image's own init (a `sleep infinity` would skip VyOS's boot); config.boot
    assert v.container.cmd == ["/sbin/init"]
    assert v.container.startup_config_path == "/opt/vyatta/etc/config/config.boot"


def sonic_vs(v: VendorConfig) -> None:
    # ports step by 4; bgpd is started by post-boot (as containerlab's PostDeploy does),
    # which runs after readiness: readiness must not wait for bgpd
    assert port(v, "Ethernet0") == 1 and port(v, "Ethernet4") == 2 and port(v, "Ethernet1") is None
    assert any("supervisorctl start bgpd" in c for c in v.post_boot_commands)
    assert "bgpd" not in " ".join(v.readiness.command or []) + (v.readiness.pattern or "")


def cisco_iosv(v: VendorConfig) -> None:
    # Gi0/0 is management (vrnetlab, containerlab); the initial configuration dialog is refused;
    # readiness at "Press RETURN"; admin/admin; the startup-config is typed in config mode
    assert v.interfaces.management_nic and v.interfaces.nic_index(port(v, "GigabitEthernet0/1")) == 1
    assert any("initial configuration dialog" in d.expect and d.send == "no" for d in v.console.dialogs)
    assert "Press RETURN to get started" in (v.readiness.pattern or "")
    assert (v.console.username, v.console.password) == ("admin", "admin")
    assert v.vm.nic_model == "e1000"  # virtio passes partial checksums through OVS userspace
    assert v.vm.startup_config is VmStartupConfig.CONSOLE and takes_startup_config(v)
    assert v.startup_config_commands("Building configuration...\n!\nhostname R1\n!\nend\n") == [
        "configure terminal", "hostname R1", "end"]


def mini_ios(v: VendorConfig) -> None:
    # our IOSv stand-in: direct kernel boot, a data disk as nvram, IOSv's dialect and config route
    assert v.vm.kernel and v.vm.initrd and not v.vm.disk_image and v.vm.data_volume_mb > 0
    assert v.console == get_vendor("cisco_iosv").console
    assert v.vm.startup_config is VmStartupConfig.CONSOLE


def cisco_csr1000v(v: VendorConfig) -> None:
    # Gi1 is management, data from Gi2; virtio NICs; 4 GiB
    assert v.interfaces.nic_index(port(v, "GigabitEthernet2")) == 1 and port(v, "GigabitEthernet1") is None
    assert v.vm.nic_model == "virtio" and v.memory_mb >= 4096


def cisco_n9kv(v: VendorConfig) -> None:
    # UEFI only (vrnetlab -bios OVMF.fd); SATA disk, e1000; mgmt0 first NIC, Ethernet1/1 first port; POAP aborted
    assert v.vm.firmware is Firmware.UEFI
    assert v.vm.disk_bus == "sata" and v.vm.nic_model == "e1000"
    assert v.interfaces.management_nic and port(v, "Ethernet1/1") == 1
    assert any("Auto" in d.expect and d.send == "yes" for d in v.console.dialogs)
    assert v.memory_mb >= 10240


def juniper_vjunos_router(v: VendorConfig) -> None:
    # fxp0 first NIC, ge-0/0/0 = eth1; admin/admin@123; Junos config takes a commit: refused, not typed
    assert v.interfaces.management_nic and port(v, "ge-0/0/0") == 1
    assert (v.console.username, v.console.password) == ("admin", "admin@123")
    assert not takes_startup_config(v) and "takes no startup-config" in (v.startup_config_refusal or "")
    assert v.config_extraction.method is ExtractionMethod.CONSOLE


FACTS: dict[str, Callable[[VendorConfig], None]] = {
    "linux": linux, "frr": frr, "ceos": ceos, "nokia_srlinux": nokia_srlinux, "juniper_crpd": juniper_crpd,
    "vyos": vyos, "sonic-vs": sonic_vs, "cisco_iosv": cisco_iosv, "mini-ios": mini_ios,
    "cisco_csr1000v": cisco_csr1000v, "cisco_n9kv": cisco_n9kv, "juniper_vjunos_router": juniper_vjunos_router,
}


def test_every_entry_has_its_facts() -> None:
    assert {v.kind for v in catalog().kinds()} == set(FACTS)


@pytest.mark.parametrize("kind", sorted(FACTS))
def test_entry_gives_what_its_real_image_needs(kind: str) -> None:
    vendor = get_vendor(kind)
    FACTS[kind](vendor)
    post_boot_claimed_only_with_commands(vendor)


def test_the_benchmark_baseline_waits_for_what_the_frr_kind_waits_for() -> None:
    # benchmarks/baseline.py must not import Archetype, so it holds a copy of the probe: the
    # same readiness on both sides, or the ratio compares different work
    from benchmarks.baseline import READY_COMMAND, READY_INTERVAL, STARTING_MARKER

    readiness = get_vendor("frr").readiness
    assert list(readiness.command or []) == READY_COMMAND and readiness.interval == READY_INTERVAL
    assert readiness.starting_marker == STARTING_MARKER  # and both wait for the marker without an exec
