"""The libvirt provider: VM nodes as QEMU domains, driven over their serial console.

Every libvirt call runs on the provider's one libvirt thread (``LibvirtThread``): the
flows call the provider from many threads, libvirt-python is not thread-safe. The serial
console (``providers.libvirt.console``) and the serial-log readiness watch run in the caller's
thread: they touch no libvirt object.

Identity (DESIGN.md): a domain is ours only if it carries our ``<metadata>`` element, and
it belongs to the lab and node that element names: domain names are never split, and a
domain called ``arch-x-y`` without our metadata is never touched.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import libvirt

from lab import names
from lab.errors import CommandError, ProviderError
from lab.private import private_dir
from lab.settings import get_settings
from providers import network
from providers.base import (
    CleanupReport,
    CommandResult,
    DiscoveredLab,
    LinkEnd,
    NodeProvider,
    NodeState,
    NodeStatus,
)
from providers.libvirt import migration
from providers.libvirt.conn import LibvirtThread
from providers.libvirt.console import ConsoleSession, console_lock, credentials_for
from providers.libvirt.disks import check_images, check_qemu_access, ensure_disks, remove_files
from providers.libvirt.domain_xml import DomainPlan, domain_xml, link_ports, plan_domain
from providers.libvirt.domains import (
    DomainConflictError,
    DomainInfo,
    LinksChangedError,
    define_and_start,
    domain_description,
    inspect_domain,
    lookup_domain,
    our_domains,
    remove_domain,
    set_interface_link,
    start_domain,
)
from providers.libvirt.migration import MigrationPlan, MigrationResult
from providers.libvirt.ready import SerialLogWatcher
from providers.limits import Turn, engine_bound
from topology import Node, NodeRef
from vendors.model import ConfigSaveMethod, ExtractionMethod, Provider, ReadinessMethod

log = logging.getLogger("archetype.libvirt")
LIBVIRT_ENGINE = "libvirt"  # the name of libvirtd's bound in providers.limits

READY_POLL_SECONDS = 0.1  # serial log polling: the pattern-to-ready delay is at most this
STATE_CHECK_SECONDS = 1.0  # while waiting: is the domain still running?


# The provider -----------------------------------------------------------------------------


class LibvirtProvider(NodeProvider):
    name = Provider.LIBVIRT

    def __init__(
        self,
        uri: str | None = None,
        *,
        interface_xml: Callable[..., str] | None = None,
        console_command: Callable[[str], Sequence[str]] | None = None,
    ):
        """``interface_xml`` replaces ``providers.network.vm_interface_xml`` (tests);
        ``console_command(domain)`` replaces the ``virsh console`` argv (tests)."""
        self.uri = uri or get_settings().libvirt_uri
        self._libvirt = LibvirtThread(self.uri)
        self._interface_xml = interface_xml
        self._console_command = console_command

    def close(self) -> None:
        self._libvirt.close()

    def probe_capabilities(self) -> None:
        """Have libvirtd probe QEMU's capabilities now. A daemon does it once, at the first
        call that needs them (4-8 s here): without this, the first VM started on a host, or
        the first one migrated to it, waits for it."""
        self._call(lambda conn: conn.getDomainCapabilities(None, None, None, get_settings().domain_type, 0),
                   "libvirt's QEMU capabilities")

    # names and plans --------------------------------------------------------------------

    def runtime_name(self, lab_id: str, node: str) -> str:
        return names.domain_name(lab_id, node)

    def plan(self, lab_id: str, node: Node, ends: Sequence[LinkEnd]) -> DomainPlan:
        def interface_xml(end: LinkEnd | None, nic_model: str) -> str:
            return (self._interface_xml or network.vm_interface_xml)(end, nic_model)

        return plan_domain(lab_id, node, ends, interface_xml=interface_xml)

    def _status(self, lab_id: str, node_name: str, kind: str, state: NodeState) -> NodeStatus:
        return NodeStatus(lab_id, node_name, kind, self.name, state, self.runtime_name(lab_id, node_name))

    def inspect(self, lab_id: str, node_name: str) -> DomainInfo | None:
        return self._call(inspect_domain(self.runtime_name(lab_id, node_name)), f"node {node_name}")

    def _call(self, fn: Callable[[libvirt.virConnect], object], what: str):  # noqa: ANN202
        try:
            return self._libvirt.run(fn)
        except libvirt.libvirtError as err:
            raise ProviderError(f"{what}: libvirt: {err}") from err

    @staticmethod
    def _check_ours(info: DomainInfo, lab_id: str, node_name: str) -> None:
        if info.marker is None:
            raise DomainConflictError(
                f"domain {info.name} exists without Archetype's metadata: not ours, left alone "
                f"(node {node_name} of lab {lab_id} cannot be created under that name)"
            )
        if (info.marker.lab_id, info.marker.node_name) != (lab_id, node_name):
            raise DomainConflictError(
                f"domain {info.name} belongs to node {info.marker.node_name} of lab {info.marker.lab_id}, "
                f"not to node {node_name} of lab {lab_id}: left alone"
            )

    # nodes -------------------------------------------------------------------------------

    def create_node(self, lab_id: str, node: Node, ends: list[LinkEnd]) -> NodeStatus:
        plan = self.plan(lab_id, node, ends)
        info = self.inspect(lab_id, node.name)
        if info is not None:
            self._check_ours(info, lab_id, node.name)
            if info.state is NodeState.RUNNING:
                self._require_same_links(plan, node.name)
                log.info("%s is running: reused", plan.name)
                return self._status(lab_id, node.name, plan.marker.kind, NodeState.RUNNING)
        check_images(plan)  # before anything is created
        check_qemu_access(plan, self.uri)  # mends the workspace's folders; a clear error for others'
        made = ensure_disks(plan)
        private_dir(plan.serial_log.parent)  # serial logs hold what was typed on the console
        network.unplug_dead_taps(lab_id, node.name, [port for xml in plan.interfaces for port in link_ports(xml) if port])
        started = time.monotonic()
        try:
            with engine_bound(LIBVIRT_ENGINE).slot(measured=True, turn=Turn.CREATE):  # the host's bound on engine calls (providers.limits)
                if info is None:
                    self._call(define_and_start(domain_xml(plan), undo_define=True, fresh_log=plan.serial_log), f"node {node.name}")
                else:  # ours and stopped: redefine (NICs may have changed), same UUID, and start
                    self._call(define_and_start(domain_xml(plan, uuid=info.uuid), undo_define=False, fresh_log=plan.serial_log), f"node {node.name}")
        except BaseException:
            remove_files(made)
            raise
        log.info("%s %s in %.1f s", plan.name, "defined and started" if info is None else "started", time.monotonic() - started)
        return self._status(lab_id, node.name, plan.marker.kind, NodeState.RUNNING)

    def _require_same_links(self, plan: DomainPlan, node_name: str) -> None:
        """A running VM is reused only with the NICs it has: rewiring them would need a
        reboot, which a deploy does not impose on a running device."""
        running = self._call(domain_description(plan.name), f"node {node_name}")
        have = _linked_slots(link_ports(running) if running else [])
        want = _linked_slots([port for xml in plan.interfaces for port in link_ports(xml)])
        if have != want:
            raise LinksChangedError(
                f"node {node_name}: the VM {plan.name} runs with other links than the topology gives it "
                f"(NIC ports {have} -> {want}); its NICs change when it is defined again, which needs it "
                f"stopped: `virsh destroy {plan.name}` (its disks stay) and deploy again, or put the links back"
            )

    def start_node(self, lab_id: str, node_name: str) -> None:
        """Start a stopped node as it is defined (a restart keeps its disks and data)."""
        info = self.inspect(lab_id, node_name)
        if info is None:
            raise ProviderError(f"node {node_name} of lab {lab_id} does not exist")
        self._check_ours(info, lab_id, node_name)
        if info.state is not NodeState.RUNNING:
            defined = self._call(domain_description(info.name), f"node {node_name}")
            network.unplug_dead_taps(lab_id, node_name, [port for port in link_ports(defined) if port] if defined else [])
        self._call(start_domain(info.name, fresh_log=names.serial_log_path(lab_id, node_name)), f"node {node_name}")

    def stop_node(self, lab_id: str, node_name: str) -> None:
        """Force-stop a node, keeping its definition and disks."""
        info = self.inspect(lab_id, node_name)
        if info is None:
            return
        self._check_ours(info, lab_id, node_name)

        def stop(conn: libvirt.virConnect) -> None:
            dom = lookup_domain(conn, info.name)
            if dom is not None and dom.isActive():
                dom.destroy()

        self._call(stop, f"node {node_name}")

    def set_link_state(self, lab_id: str, node_name: str, port_name: str, up: bool) -> None:
        """The guest NIC's link (``<link state='up|down'/>``, live and in the definition, so
        that a restart keeps it): the guest sees carrier go, and QEMU passes no frame."""
        info = self.inspect(lab_id, node_name)
        if info is None:
            raise ProviderError(f"node {node_name} of lab {lab_id} does not exist")
        self._check_ours(info, lab_id, node_name)
        self._call(set_interface_link(info.name, port_name, up), f"node {node_name}")

    def run_command(self, lab_id: str, node: NodeRef, argv: list[str], timeout: float) -> CommandResult:
        """One CLI line per argument over the serial console. Exit status 0 when every line
        answered without the dialect's error marker; 1 at the first that did not (the lines
        after it are not sent); None when one timed out."""
        started = time.monotonic()
        outputs: list[str] = []
        with self.console(lab_id, node) as session:
            session.start()
            for line in argv:
                try:
                    outputs.append(session.send_command(line, timeout=timeout))
                except CommandError as err:
                    outputs.append(err.output)
                    return CommandResult(" ; ".join(argv), err.exit_code, _joined(outputs), time.monotonic() - started)
        return CommandResult(" ; ".join(argv), 0, _joined(outputs), time.monotonic() - started)

    def wire_node(self, lab_id: str, node: Node, ends: list[LinkEnd]) -> None:
        if ends:
            network.ensure_vm_ports(lab_id, node.name, ends)

    def node_status(self, lab_id: str, node_name: str) -> NodeStatus:
        info = self.inspect(lab_id, node_name)
        if info is None:
            return self._status(lab_id, node_name, "", NodeState.MISSING)
        self._check_ours(info, lab_id, node_name)
        assert info.marker is not None
        return self._status(lab_id, node_name, info.marker.kind, info.state)

    def remove_node(self, lab_id: str, node_name: str) -> CleanupReport:
        report = CleanupReport()
        info = self.inspect(lab_id, node_name)
        if info is not None:
            try:
                self._check_ours(info, lab_id, node_name)
            except DomainConflictError as err:
                log.warning("%s", err)
                return report
            self._remove(info, report)
        if not report.errors:
            self._remove_node_files(lab_id, node_name, report)
        return report

    def _remove(self, info: DomainInfo, report: CleanupReport) -> bool:
        try:
            self._call(remove_domain(info.name, info.uuid), f"domain {info.name}")
        except ProviderError as err:
            report.errors.append(f"libvirt: cannot remove domain {info.name}: {err}")
            return False
        report.add("domains", info.name)
        return True

    @staticmethod
    def _remove_node_files(lab_id: str, node_name: str, report: CleanupReport) -> None:
        files = [
            names.disks_dir(lab_id) / f"{node_name}.qcow2",
            names.data_dir(lab_id) / f"{node_name}.qcow2",
            names.serial_log_path(lab_id, node_name),
            # the domain is gone: nobody waits on its console any more
            names.console_lock_path(names.domain_name(lab_id, node_name)),
        ]
        existing = [f for f in files if f.exists()]
        errors = remove_files(existing)
        report.errors.extend(f"libvirt: {e}" for e in errors)
        for path in existing:
            if not path.exists():
                report.add("files", str(path))

    # readiness, post-boot, extraction ---------------------------------------------------

    def console(self, lab_id: str, node: NodeRef, *, timeout: float | None = None) -> ConsoleSession:
        """A console session on the node (a context manager; ``start()`` logs in)."""
        vendor = node.vendor
        domain = self.runtime_name(lab_id, node.name)
        return ConsoleSession(
            domain, vendor.console, node=node.name, credentials=credentials_for(vendor), uri=self.uri,
            timeout=timeout, command=self._console_command(domain) if self._console_command else None,
        )

    def wait_ready(self, lab_id: str, node: NodeRef, timeout: float | None = None) -> float:
        vendor = node.vendor
        readiness = vendor.readiness
        timeout = readiness.timeout if timeout is None else timeout
        started = time.monotonic()
        if readiness.method is ReadinessMethod.LOG_PATTERN:
            assert readiness.pattern
            self._wait_serial_log(lab_id, node, readiness.pattern, timeout)
        elif readiness.method is ReadinessMethod.CONSOLE_PROMPT:
            assert readiness.pattern
            with self.console(lab_id, node) as session:
                session.wait_for(readiness.pattern, timeout)
        elif readiness.method is ReadinessMethod.CLI_PROBE:
            self._wait_cli_probe(lab_id, node, timeout)
        else:
            self._require_running(lab_id, node.name)
        return time.monotonic() - started

    def _require_running(self, lab_id: str, node_name: str, *, unanswered_ok: bool = False) -> None:
        """Raise unless the domain runs. ``unanswered_ok``: libvirt not answering (libvirtd
        restarting: the VM runs on without it) is no proof the VM died; let it pass."""
        try:
            info = self.inspect(lab_id, node_name)
        except ProviderError as err:
            if not unanswered_ok:
                raise
            log.warning("node %s of lab %s: cannot ask libvirt whether it runs: %s", node_name, lab_id, err)
            return
        if info is None or info.state is not NodeState.RUNNING:
            state = "missing" if info is None else info.state.value
            raise ProviderError(f"node {node_name} of lab {lab_id} is {state}, not running")

    def _wait_serial_log(self, lab_id: str, node: NodeRef, pattern: str, timeout: float) -> None:
        watcher = SerialLogWatcher(names.serial_log_path(lab_id, node.name), pattern)
        deadline = time.monotonic() + timeout
        next_check = 0.0
        while True:
            if watcher.poll():
                return
            now = time.monotonic()
            if now >= deadline:
                raise ProviderError(
                    f"node {node.name} not ready within {timeout:.0f} s: {pattern!r} not in its serial log "
                    f"{watcher.path}; last lines: {watcher.last_lines()!r}"
                )
            if now >= next_check:  # a VM that died will never print it
                self._require_running(lab_id, node.name, unanswered_ok=True)
                next_check = now + STATE_CHECK_SECONDS
            time.sleep(READY_POLL_SECONDS)

    def _wait_cli_probe(self, lab_id: str, node: NodeRef, timeout: float) -> None:
        readiness = node.vendor.readiness
        assert readiness.command
        command = " ".join(readiness.command)
        deadline = time.monotonic() + timeout
        with self.console(lab_id, node, timeout=min(timeout, get_settings().console_timeout)) as session:
            session.wake(timeout=max(0.0, deadline - time.monotonic()))  # boot messages, dialogs
            session.start()  # login, enable, paging off
            while True:
                try:
                    output = session.send_command(command)
                    if not readiness.pattern or re.search(readiness.pattern, output, re.MULTILINE | re.IGNORECASE):
                        return
                except CommandError:
                    pass
                if time.monotonic() >= deadline:
                    raise ProviderError(f"node {node.name} not ready within {timeout:.0f} s: probe {command!r} failed")
                time.sleep(readiness.interval)

    def run_post_boot(self, lab_id: str, node: Node, done: list[CommandResult] | None = None) -> list[CommandResult]:
        done = [] if done is None else done
        commands = node.post_boot_commands[len(done):]  # console lines, as written
        if not commands:
            return done
        timeout = get_settings().command_timeout
        tolerated = node.startup_config_lines
        with self.console(lab_id, node) as session:
            session.start()
            for command in _mode_to_resume_in(node, len(done)):  # a fresh session is in exec mode
                session.send_command(command, timeout=timeout)
            for index, command in enumerate(commands, start=len(done)):
                started = time.monotonic()
                try:
                    output = session.send_command(command, timeout=timeout)
                except CommandError as err:
                    if err.exit_code is not None and index in tolerated:  # refused, not timed out
                        # A startup-config line the device refused: reported, the rest applied.
                        log.warning("%s: startup-config line %r refused: %s", node.name, command, err.output.strip())
                        done.append(CommandResult(command, err.exit_code, err.output, time.monotonic() - started))
                        continue
                    log.error("%s: %r failed: %s", node.name, command, err.output)  # noqa: TRY400 - the output is the story
                    raise
                seconds = time.monotonic() - started
                log.info("%s: %r (%.2f s)%s", node.name, command, seconds, f":\n{output}" if output else "")
                done.append(CommandResult(command, 0, output, seconds))
        return done

    def extract_config(self, lab_id: str, node: NodeRef) -> str:
        vendor = node.vendor
        extraction = vendor.config_extraction
        if extraction.method is not ExtractionMethod.CONSOLE or not extraction.command:
            raise ProviderError(f"node {node.name}: kind {vendor.kind} has no console config extraction")
        with self.console(lab_id, node) as session:
            session.start()  # paging off
            tried = []
            for command in filter(None, (extraction.command, extraction.fallback_command)):
                output = session.send_command(command, timeout=extraction.timeout, check=False)
                if _credible(output, session):
                    log.info("%s: %r: %d lines of configuration", node.name, command, output.count("\n") + 1)
                    return extraction.without_preamble(output).rstrip() + "\n"
                tried.append(f"{command!r} gave {output[:200]!r}")
        raise ProviderError(f"node {node.name}: no credible configuration: {'; '.join(tried)}")

    def save_config(self, lab_id: str, node: NodeRef) -> str:
        """The device keeps its running config (``write memory``): its output."""
        save = node.vendor.config_save
        if save.method is not ConfigSaveMethod.CONSOLE or not save.command:
            raise ProviderError(f"node {node.name}: kind {node.kind} has no console config save")
        with self.console(lab_id, node) as session:
            session.start()
            output = session.send_command(save.command, timeout=save.timeout)
        if save.success and not re.search(save.success, output):
            raise CommandError(node.name, save.command, 1, output)
        log.info("%s: %r: %s", node.name, save.command, output.strip()[-200:])
        return output

    def connect_command(self, lab_id: str, node: NodeRef) -> list[str]:
        return ["virsh", "-c", self.uri, "console", "--force", self.runtime_name(lab_id, node.name)]

    def connect_guard(self, lab_id: str, node: NodeRef) -> AbstractContextManager[None]:
        # The console lock: a deploy's post-boot or a configs run waits for the person
        # (and says so when it gives up) instead of `--force`-ing them off the console.
        return console_lock(self.runtime_name(lab_id, node.name), get_settings().console_timeout)

    # live migration (providers.libvirt.migration; the flow runs each step on its host) ----

    def describe_migration(self, lab_id: str, node_name: str) -> MigrationPlan:
        """Source: the running VM as the destination must know it."""
        return self._call(lambda conn: migration.describe(conn, lab_id, node_name), f"node {node_name}")

    def prepare_migration(self, plan: MigrationPlan, serial_log_seed: bytes = b"") -> list[str]:
        """Destination: memory, vendor files, disks, serial log, bridge; the files made."""
        network.ensure_bridge()
        return self._call(lambda conn: migration.prepare(conn, plan, serial_log_seed=serial_log_seed),
                          f"node {plan.node}")

    def migrate(
        self, plan: MigrationPlan, *, dest_uri: str, migration_uri: str, tags: dict[str, int], **options: object
    ) -> MigrationResult:
        """Source: move the VM live; its link NICs get the destination's ``tags`` (port -> VLAN)."""
        dest_xml = migration.destination_xml(plan, tags)
        return migration.migrate(self.uri, plan, dest_uri=dest_uri, migration_uri=migration_uri,
                                 dest_xml=dest_xml, **options)

    def abort_migration(self, lab_id: str, node_name: str) -> bool:
        """Source, from any process: abort the node's migration job if one runs."""
        return self._call(lambda conn: migration.abort(conn, lab_id, node_name), f"node {node_name}")

    def clean_migration(self, plan: MigrationPlan, made: list[str] | None = None) -> list[str]:
        """Destination, after a migration that did not happen: nothing of the node stays."""
        return self._call(lambda conn: migration.clean(conn, plan, made), f"node {plan.node}")

    def arrived_downtime_ms(self, lab_id: str, node_name: str) -> int | None:
        """Destination: the downtime of the migration that brought the node here (QEMU's)."""
        return self._call(lambda conn: migration.arrived_downtime_ms(conn, lab_id, node_name), f"node {node_name}")

    def arrival(self, lab_id: str, node_name: str, uuid: str) -> str:
        """Destination, during a move: ``running``, ``incoming`` or ``absent`` (migration.arrival)."""
        return self._call(lambda conn: migration.arrival(conn, lab_id, node_name, uuid), f"node {node_name}")

    def running_uuid(self, lab_id: str, node_name: str) -> str | None:
        """The node's domain UUID if it runs on this host."""
        return self._call(lambda conn: migration.running_here(conn, lab_id, node_name), f"node {node_name}")

    def leave_source(self, lab_id: str, node_name: str) -> CleanupReport:
        """Source, after the VM runs on the destination: its files here go (disks, serial
        log, console lock), and the domain if libvirt left it defined and stopped. A domain
        of the node still RUNNING here is never touched (the switch did not happen)."""
        report = CleanupReport()
        info = self.inspect(lab_id, node_name)
        if info is not None:
            if info.state is NodeState.RUNNING:
                report.errors.append(f"libvirt: node {node_name} still runs on this host: its files stay")
                return report
            self._check_ours(info, lab_id, node_name)
            if not self._remove(info, report):
                return report
        self._remove_node_files(lab_id, node_name, report)
        return report

    # labs ---------------------------------------------------------------------------------

    def discover_labs(self) -> list[DiscoveredLab]:
        labs: dict[str, list[NodeStatus]] = {}
        for info in self._call(our_domains, "discovery"):
            assert info.marker is not None
            marker = info.marker
            labs.setdefault(marker.lab_id, []).append(
                NodeStatus(marker.lab_id, marker.node_name, marker.kind, self.name, info.state, info.name,
                           mgmt_ipv4=marker.mgmt_ipv4 or None)
            )
        return [DiscoveredLab(lab_id, sorted(nodes, key=lambda n: n.name)) for lab_id, nodes in sorted(labs.items())]

    def remove_lab_nodes(self, lab_id: str) -> CleanupReport:
        """Force-stop and undefine every domain of the lab (by metadata), with its disks,
        data volume and serial log. A domain that fails to go does not stop the others; it
        keeps its files, and (``providers.labs``) the lab keeps its ports and VLANs."""
        report = CleanupReport()
        try:
            domains = [d for d in self._call(our_domains, "discovery") if d.marker and d.marker.lab_id == lab_id]
        except ProviderError as err:
            report.errors.append(f"libvirt: lab {lab_id}: {err}")
            return report
        remaining = []
        for info in domains:
            assert info.marker is not None
            if self._remove(info, report):
                self._remove_node_files(lab_id, info.marker.node_name, report)
            else:
                remaining.append(info.name)
        if remaining:
            report.errors.append(f"libvirt: lab {lab_id}: domains {', '.join(remaining)} remain, with their disks")
        return report


def _mode_to_resume_in(node: Node, start: int) -> list[str]:
    """What a fresh console session types before resuming at command ``start``: config mode
    again if the command was to be typed in it (after a ``config_enter`` with no
    ``config_exit`` since). A sub-mode (``interface ...``) is not re-entered."""
    enter, leave = node.vendor.console.config_enter, node.vendor.console.config_exit
    for command in reversed(node.post_boot_commands[:start]):
        if command == leave:
            return []
        if command == enter:
            return [enter]
    return []


def _linked_slots(ports: list[str | None]) -> list[str | None]:
    """Each NIC's link port, without the unlinked NICs at the end: a VM that runs with fewer
    or more of them (made before its kind had ``vm.data_ports``) has the same links."""
    while ports and ports[-1] is None:
        ports = ports[:-1]
    return ports


def _joined(outputs: list[str]) -> str:
    return "".join(out if out.endswith("\n") or not out else out + "\n" for out in outputs)


def _credible(output: str, session: ConsoleSession) -> bool:
    """A configuration, not an error or a stray prompt: a few lines, no error marker."""
    lines = [line for line in output.splitlines() if line.strip()]
    if len(lines) < 3:
        return False
    return session.error_in(output) is None
