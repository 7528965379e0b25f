"""The vendor model: everything Archetype needs to know about one device kind, as data.

Nothing outside ``vendors/`` asks "which kind is this?": providers and flows read the
fields below instead.
"""

from __future__ import annotations

import fnmatch
import re
from enum import StrEnum
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provider(StrEnum):
    DOCKER = "docker"
    LIBVIRT = "libvirt"


class InterfaceFormat(_Model):
    """One accepted spelling of a data interface, e.g. ``Ethernet{n}`` with ``first: 1``.

    ``n = first + (port - 1) * step`` for data port number ``port`` (1-based).
    """

    format: str
    first: int = 1
    step: int = 1

    @field_validator("format")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if value.count("{n}") != 1:
            raise ValueError(f"interface format {value!r} needs exactly one '{{n}}'")
        return value

    @cached_property
    def regex(self) -> re.Pattern[str]:
        head, tail = self.format.split("{n}")
        return re.compile(rf"^{re.escape(head)}(\d+){re.escape(tail)}$", re.IGNORECASE)

    def port_of(self, name: str) -> int | None:
        match = self.regex.match(name)
        if not match:
            return None
        offset = int(match.group(1)) - self.first
        if offset < 0 or offset % self.step:
            return None
        return offset // self.step + 1

    def name_of(self, port: int) -> str:
        return self.format.replace("{n}", str(self.first + (port - 1) * self.step))


class InterfaceNaming(_Model):
    """How a kind names its data interfaces, and what the runtime calls them.

    Data ports are numbered 1..max_ports. The first format is the vendor's own spelling
    (shown to users); the others are accepted too (containerlab's ``eth1`` for cEOS...).
    Containers: port N is the Linux interface ``runtime.name_of(N)`` inside the container.
    VMs: port N is NIC number ``N - 1 + (1 if management_nic else 0)`` in the domain.
    """

    formats: list[InterfaceFormat] = Field(min_length=1)
    max_ports: int = Field(8, ge=1, le=128)
    management: str | None = Field(None, description="The vendor's management interface name")
    management_nic: bool = Field(False, description="VMs: the first NIC is the management interface")
    runtime: InterfaceFormat = InterfaceFormat(format="eth{n}", first=1)

    def port_of(self, name: str) -> int | None:
        """Data port number of an interface name in any accepted spelling, or None."""
        for fmt in self.formats:
            port = fmt.port_of(name)
            if port is not None:
                return port
        return None

    def vendor_name(self, port: int) -> str:
        return self.formats[0].name_of(port)

    def runtime_name(self, port: int) -> str:
        return self.runtime.name_of(port)

    def nic_index(self, port: int) -> int:
        return port - 1 + (1 if self.management_nic else 0)

    def examples(self) -> str:
        return ", ".join(f.name_of(1) for f in self.formats)


# What every lab container may have, whatever its image: docker's default set plus
# NET_ADMIN (a node configures its own interfaces). Anything broader is the catalog's to give.
DEFAULT_CAP_ADD = ("NET_ADMIN",)


class ContainerOptions(_Model):
    image: str
    images: list[str] = Field(
        default_factory=list,
        description="Images (fnmatch patterns) that get cap_add and security_opt beyond the default set; "
        "default: the catalog image's repository with any tag. ARCHETYPE_TRUSTED_IMAGES__<kind> adds more",
    )
    env: dict[str, str] = Field(default_factory=dict)
    cap_add: list[str] = Field(default_factory=lambda: list(DEFAULT_CAP_ADD))
    cap_drop: list[str] = Field(default_factory=list)
    security_opt: list[str] = Field(default_factory=list)
    binds: list[str] = Field(
        default_factory=list, description="host:container[:ro], with {workspace}, {lab} and {node} placeholders"
    )
    sysctls: dict[str, str] = Field(default_factory=dict)
    writable_sysctls: list[Literal["net"]] = Field(
        default_factory=list,
        description="sysctl trees the node may write itself (`sysctl -w net....` in its scripts): "
        "/proc/sys/<tree> is left writable; only the per-namespace `net` tree can be",
    )
    entrypoint: list[str] | None = None
    cmd: list[str] | None = Field(None, description="None keeps the image's own command")
    tmpfs: dict[str, str] = Field(default_factory=dict)
    startup_config_path: str | None = Field(None, description="Where the node's startup config goes inside")
    shell: list[str] = Field(default_factory=lambda: ["sh"], description="What `archetype connect` runs")
    extras_env: dict[str, str] = Field(
        default_factory=dict,
        description="containerlab `extras` keys honoured, as env vars: {'frr.daemons': 'FRR_DAEMONS'}",
    )
    stop_timeout: int = 2
    snapshot_files: list[str] = Field(
        default_factory=list,
        description="Files or folders inside the container that a snapshot keeps besides the running config "
        "(what the device reads at start and a user may have changed, e.g. FRR's /etc/frr/daemons); a restore "
        "binds the saved copies in",
    )

    @field_validator("snapshot_files")
    @classmethod
    def _absolute_plain_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            parts = path.split("/")
            if not path.startswith("/") or not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", p) for p in parts[1:]):
                raise ValueError(f"snapshot_files: {path!r} is not an absolute path of plain names")
        return paths

    @property
    def broad(self) -> bool:
        """Whether this kind asks for more than every container gets."""
        return bool(set(self.cap_add) - set(DEFAULT_CAP_ADD) or self.security_opt)

    def image_patterns(self, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
        repository = self.image.rsplit(":", 1)[0] if ":" in self.image.rsplit("/", 1)[-1] else self.image
        return [*(self.images or [repository, f"{repository}:*", f"{repository}@*"]), *extra]

    def trusts(self, image: str, extra: list[str] | tuple[str, ...] = ()) -> bool:
        """Whether ``image`` is one of the kind's catalog images (DESIGN.md, Security): only
        those get its broad capabilities; another image could be anything."""
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self.image_patterns(extra))


class Firmware(StrEnum):
    BIOS = "bios"  # SeaBIOS, QEMU's default
    UEFI = "uefi"  # OVMF (libvirt picks the firmware image; Debian's `ovmf` package)


class VmStartupConfig(StrEnum):
    """How a VM kind takes a node's ``startup-config``."""

    NONE = "none"  # it cannot: a topology giving one is refused at validation
    CONSOLE = "console"  # day-0: typed in config mode over the serial console after boot


class VmOptions(_Model):
    machine: str = "pc"
    firmware: Firmware = Field(Firmware.BIOS, description="uefi: the image boots only with UEFI firmware")
    disk_bus: Literal["virtio", "ide", "sata", "scsi"] = "virtio"
    nic_model: str = "e1000"
    disk_image: str | None = Field(None, description="Base disk under the image dir (qcow2)")
    kernel: str | None = Field(None, description="Direct kernel boot: kernel under the image dir")
    initrd: str | None = None
    cmdline: str | None = None
    data_volume_mb: int = Field(0, ge=0, description="A blank data disk (vdb) of this size; 0 = none")
    data_ports: int = Field(
        0, ge=0, le=128,
        description="Data NICs the VM always has, linked or not, as the real device has its ports (IOSv "
        "Gi0/1-0/4): a config may name a port before it is linked. A link to a port beyond them adds NICs, "
        "up to interfaces.max_ports",
    )
    serial_ports: int = Field(1, ge=1, le=4)
    management_network: Literal["lab", "none", "user"] = Field(
        "lab",
        description="What the management NIC (if any) is attached to: 'lab' = the lab's management "
        "network (a Linux bridge on the host) when the node has an address there, 'user' = QEMU "
        "user-mode networking (unreachable from outside), 'none' = an unlinked NIC",
    )
    startup_config: VmStartupConfig = Field(
        VmStartupConfig.NONE, description="How a node's startup-config is applied (none: refused at validation)"
    )
    stop: Literal["power_off", "unsupported"] = Field(
        "power_off",
        description="How `archetype node stop|restart` stops it: a power-off (its disks are kept), or not at "
        "all when a power-off can damage the device (`stop_note` says why)",
    )
    stop_note: str = ""

    @model_validator(mode="after")
    def _bootable(self) -> VmOptions:
        if not self.disk_image and not self.kernel:
            raise ValueError("a VM needs a disk_image or a kernel")
        if self.initrd and not self.kernel:
            raise ValueError("initrd without kernel")
        return self


class ReadinessMethod(StrEnum):
    NONE = "none"
    LOG_PATTERN = "log_pattern"  # container log or VM serial log
    CLI_PROBE = "cli_probe"  # exec a command until it succeeds (and matches `pattern`, if any)
    CONSOLE_PROMPT = "console_prompt"  # live serial console shows a prompt


class Readiness(_Model):
    method: ReadinessMethod = ReadinessMethod.NONE
    pattern: str | None = None
    command: list[str] | None = None
    timeout: float = 120.0
    interval: float = 0.2
    starting_marker: str | None = Field(
        None,
        description="A file the image keeps while it starts (absolute path in the container): while it "
        "exists the node is not ready and the probe is not run. Looked up from the host, no exec: a "
        "probe costs ~0.1 CPU-second, and 20 nodes probing every 0.2 s starve the routers they wait for",
    )
    failed_marker: str | None = Field(
        None,
        description="A file the image writes when it could not apply its startup-config (it keeps its "
        "starting_marker then), holding the reason: the node fails at once with that reason, never ready",
    )
    config_errors_file: str | None = Field(
        None,
        description="A file the image writes once its startup-config is applied: the lines the device refused "
        "while it applied the rest, one a line ('line N: % message: text', or 'not applied: text'); "
        "they become the node's config_errors",
    )

    @model_validator(mode="after")
    def _complete(self) -> Readiness:
        if self.method in (ReadinessMethod.LOG_PATTERN, ReadinessMethod.CONSOLE_PROMPT) and not self.pattern:
            raise ValueError(f"readiness {self.method} needs a pattern")
        if self.method is ReadinessMethod.CLI_PROBE and not self.command:
            raise ValueError("readiness cli_probe needs a command")
        if self.starting_marker is not None:
            if self.method is not ReadinessMethod.CLI_PROBE:
                raise ValueError("readiness starting_marker goes with a cli_probe (the probe that follows it)")
            if not self.starting_marker.startswith("/") or ".." in self.starting_marker.split("/"):
                raise ValueError(f"readiness starting_marker {self.starting_marker!r}: an absolute path without '..'")
        if self.failed_marker is not None:
            if self.starting_marker is None:
                raise ValueError("readiness failed_marker goes with a starting_marker (kept when the application fails)")
            if not self.failed_marker.startswith("/") or ".." in self.failed_marker.split("/"):
                raise ValueError(f"readiness failed_marker {self.failed_marker!r}: an absolute path without '..'")
        if self.config_errors_file is not None and (
            not self.config_errors_file.startswith("/") or ".." in self.config_errors_file.split("/")
        ):
            raise ValueError(f"readiness config_errors_file {self.config_errors_file!r}: an absolute path without '..'")
        return self


class ConsoleStep(_Model):
    """A boot dialog answer: when ``expect`` shows up, send ``send``."""

    expect: str
    send: str


class ConsoleDialect(_Model):
    username: str | None = None
    password: str | None = Field(None, description="Default lab credential; settings may override it")
    login_prompt: str = r"(?:[Uu]sername|[Ll]ogin):\s*$"
    password_prompt: str = r"[Pp]assword:\s*$"
    prompt: str = r"[\w.\-@]+(?:\([\w\-]+\))?[>#%$]\s*$"
    privileged_prompt: str = r"#\s*$"
    config_prompt: str = r"\(config[\w\-]*\)#\s*$"
    enable_command: str | None = None
    paging_off: str | None = None
    config_enter: str | None = None
    config_exit: str | None = None
    comment: str | None = Field("!", description="A configuration line starting with this is a comment")
    dialogs: list[ConsoleStep] = Field(default_factory=list)
    error_patterns: list[str] = Field(default_factory=list, description="Output that means the command failed")
    login_failed: str = r"% Login invalid|Login incorrect|Authentication failed"


class ExtractionMethod(StrEnum):
    NONE = "none"
    EXEC = "exec"
    CONSOLE = "console"


class ConfigExtraction(_Model):
    method: ExtractionMethod = ExtractionMethod.NONE
    command: str | None = None
    fallback_command: str | None = None
    timeout: float = 30.0
    # Lines the command prints before the configuration ("Building configuration..."):
    # dropped, so that the extracted text can be given back as a startup-config.
    preamble: list[str] = Field(default_factory=list)

    @field_validator("preamble")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            re.compile(pattern)
        return patterns

    def without_preamble(self, text: str) -> str:
        """``text`` from its first line that is neither blank nor a preamble line."""
        lines = text.splitlines(keepends=True)
        start = 0
        while start < len(lines) and (
            not lines[start].strip() or any(re.fullmatch(p, lines[start].strip()) for p in self.preamble)
        ):
            start += 1
        return "".join(lines[start:])

    @model_validator(mode="after")
    def _has_command(self) -> ConfigExtraction:
        if self.method is not ExtractionMethod.NONE and not self.command:
            raise ValueError(f"config extraction {self.method} needs a command")
        return self


class ConfigSaveMethod(StrEnum):
    NONE = "none"
    EXEC = "exec"  # a command in the container (sh -c)
    CONSOLE = "console"  # CLI lines over the serial console, in privileged mode


class ConfigSave(_Model):
    """How the device keeps its running config as its startup config, on the device itself
    (``archetype save``): FRR ``write memory``, cEOS ``Cli -p 15 -c wr``, IOS ``write memory``."""

    method: ConfigSaveMethod = ConfigSaveMethod.NONE
    command: str | None = None
    success: str | None = Field(None, description="Output that must appear (regex); None: exit status / no error")
    timeout: float = 60.0

    @model_validator(mode="after")
    def _has_command(self) -> ConfigSave:
        if self.method is not ConfigSaveMethod.NONE and not self.command:
            raise ValueError(f"config save {self.method} needs a command")
        return self


class Access(StrEnum):
    """The one way a kind's nodes really serve remote automation (``management.access``)."""

    DOCKER_EXEC = "docker-exec"  # commands through the container's engine (Ansible community.docker.docker)
    SSH = "ssh"  # an SSH server with the device's CLI on the management address
    TELNET = "telnet"  # telnet only: Nornir's *_telnet drivers; Ansible has no CLI connection over telnet
    CONSOLE = "console"  # the serial console alone (archetype exec / connect): nothing on the network


class Management(_Model):
    """How a node is reached and addressed on the lab's management network."""

    commands: list[str] = Field(
        default_factory=list,
        description="VMs: console lines (config mode included) that give the management interface its "
        "address; placeholders {ipv4}, {netmask}, {prefixlen}, {interface}",
    )
    access: Access = Field(
        Access.CONSOLE,
        description="What the kind really serves for automation: the inventories give each node the "
        "connection this says (docker-exec, ssh, telnet, console)",
    )
    ansible_network_os: str | None = Field(None, description="Ansible's network_os for the kind (ssh access)")
    nornir_platform: str | None = Field(
        None, description="netmiko device type for the access: cisco_ios over ssh, cisco_ios_telnet over telnet"
    )
    ansible_connection: str | None = Field(
        None, description="Ansible connection plugin over ssh when not network_cli (netconf, httpapi)"
    )
    cli_port: int | None = Field(None, description="TCP port of the access when not the protocol's own (22, 23)")
    nornir_access: Access | None = Field(
        None,
        description="Nornir's access when it is not `access`: netmiko has no docker transport, so a container "
        "that also serves SSH is docker-exec for Ansible and ssh for Nornir",
    )
    username: str | None = Field(None, description="The network login's user when it is not the console's")
    password: str | None = Field(None, description="The network login's password when it is not the console's")
    inventory_login: bool = Field(
        False,
        description="The login (username/password above, else the console's) is the image's fixed, published "
        "one (our own images): inventories fall back to it when the ARCHETYPE_USERNAME_/PASSWORD_ variables "
        "are unset",
    )

    def render(self, ipv4: str, prefixlen: int, interface: str | None) -> list[str]:
        import ipaddress

        netmask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefixlen}").netmask)
        values = {"ipv4": ipv4, "netmask": netmask, "prefixlen": str(prefixlen), "interface": interface or ""}
        return [line.format(**values) for line in self.commands]


class Capability(StrEnum):
    STARTUP_CONFIG = "startup-config"
    READINESS = "readiness"
    POST_BOOT = "post-boot"
    CONFIG_EXTRACTION = "config-extraction"
    CONFIG_SAVE = "config-save"
    CONSOLE = "console"
    SHELL = "shell"


class VendorConfig(_Model):
    kind: str
    aliases: list[str] = Field(default_factory=list)
    vendor: str
    description: str = ""
    provider: Provider
    notes: str = Field("", description="Why the entry is the way it is (decisions between sources)")
    interfaces: InterfaceNaming
    memory_mb: int = 512
    cpus: int = 1
    container: ContainerOptions | None = None
    vm: VmOptions | None = None
    readiness: Readiness = Readiness()
    console: ConsoleDialect = ConsoleDialect()
    post_boot_commands: list[str] = Field(default_factory=list)
    config_extraction: ConfigExtraction = ConfigExtraction()
    config_save: ConfigSave = ConfigSave()
    management: Management = Management()

    @model_validator(mode="after")
    def _runtime_block_matches_provider(self) -> VendorConfig:
        if self.provider is Provider.DOCKER and self.container is None:
            raise ValueError(f"kind {self.kind}: a docker kind needs a 'container' block")
        if self.provider is Provider.LIBVIRT and self.vm is None:
            raise ValueError(f"kind {self.kind}: a libvirt kind needs a 'vm' block")
        return self

    @model_validator(mode="after")
    def _data_ports_fit(self) -> VendorConfig:
        if self.vm and self.vm.data_ports > self.interfaces.max_ports:
            raise ValueError(f"kind {self.kind}: vm.data_ports {self.vm.data_ports} is beyond "
                             f"interfaces.max_ports {self.interfaces.max_ports}")
        return self

    @model_validator(mode="after")
    def _console_config_can_be_typed(self) -> VendorConfig:
        if self.vm and self.vm.startup_config is VmStartupConfig.CONSOLE and not (
            self.console.config_enter and self.console.config_exit
        ):
            raise ValueError(f"kind {self.kind}: startup_config 'console' needs config_enter and config_exit")
        return self

    @property
    def startup_config_refusal(self) -> str | None:
        """Why a node of this kind cannot take a startup-config, or None if it can."""
        if self.container is not None and not self.container.startup_config_path:
            return f"kind {self.kind} takes no startup-config (its catalog entry names no file for it)"
        if self.vm is not None and self.vm.startup_config is VmStartupConfig.NONE:
            return f"kind {self.kind} takes no startup-config (its catalog entry gives no way to apply one)"
        return None

    def startup_config_commands(self, text: str | None) -> list[str]:
        """A VM's startup-config as console lines typed after boot: config mode, every
        configuration line (no blank line, comment, extraction preamble or final
        ``config_exit``), out of config mode. Empty for a container (a file) or no text."""
        if not text or self.vm is None or self.vm.startup_config is not VmStartupConfig.CONSOLE:
            return []
        console = self.console
        assert console.config_enter and console.config_exit
        lines = []
        for line in self.config_extraction.without_preamble(text).splitlines():
            stripped = line.strip()
            if not stripped or stripped == console.config_exit:
                continue
            if console.comment and stripped.startswith(console.comment):
                continue
            lines.append(line.rstrip())
        return [console.config_enter, *lines, console.config_exit]

    @property
    def default_image(self) -> str:
        if self.container:
            return self.container.image
        assert self.vm is not None
        return self.vm.disk_image or self.vm.kernel or ""

    @property
    def capabilities(self) -> list[Capability]:
        caps: list[Capability] = []
        if self.startup_config_refusal is None:
            caps.append(Capability.STARTUP_CONFIG)
        if self.readiness.method is not ReadinessMethod.NONE:
            caps.append(Capability.READINESS)
        if self.post_boot_commands:  # the kind's own; a node's `exec` runs on every kind
            caps.append(Capability.POST_BOOT)
        if self.config_extraction.method is not ExtractionMethod.NONE:
            caps.append(Capability.CONFIG_EXTRACTION)
        if self.config_save.method is not ConfigSaveMethod.NONE:
            caps.append(Capability.CONFIG_SAVE)
        caps.append(Capability.SHELL if self.provider is Provider.DOCKER else Capability.CONSOLE)
        return caps
