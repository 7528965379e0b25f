"""The work of a host's steps of moving a node (flows.migrate_steps runs them, one per
child run): plain functions over the providers, each given the step's arguments as
migrate-node sends them, each returning a JSON-able report. Also where the placed topology
of a multi-host lab is kept on the server (a container's cold move re-creates it from it).
"""

from __future__ import annotations

import base64
import signal
import threading
from contextvars import ContextVar
from typing import Any

from lab.errors import ArchetypeError
from lab.settings import get_settings
from providers import network
from providers.base import LinkEnd
from providers.network import vlans as vlan_records
from providers.network.vxlan import Tunnel, ensure_tunnels

TOPOLOGY_KEY = "lab-{lab}-placed-topology"
FENCE = "~~~~"
# Set when the step's run is cancelled, by the worker that runs it in-process
# (deployments/step_runner.py); a step run in a process of its own gets SIGTERM instead.
CANCEL: ContextVar[threading.Event | None] = ContextVar("archetype_step_cancel", default=None)


def _warn(message: str, *args: object) -> None:
    import logging

    logging.getLogger("archetype.migrate").warning(message, *args)


def _libvirt() -> Any:
    from providers.libvirt import LibvirtProvider

    return LibvirtProvider()


def _describe(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    from providers.libvirt.migration import serial_log_tail

    provider = _libvirt()
    try:
        plan = provider.describe_migration(lab_id, args["node"])
    finally:
        provider.close()
    return {"plan": plan.to_dict(), "seed": base64.b64encode(serial_log_tail(plan)).decode()}


def tunnels_here(lab_id: str, entries: list[dict[str, Any]]) -> list[str]:
    tunnels = [Tunnel(**entry) for entry in entries]
    if not tunnels:
        return []
    address = get_settings().data_address
    if not address:
        raise ArchetypeError(f"lab {lab_id}: this host has no data-plane address (ARCHETYPE_DATA_ADDRESS)")
    return ensure_tunnels(lab_id, tunnels, local=address)


def _prepare(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """VLANs, tunnels, disks; on any failure what this step made is undone."""
    from providers.libvirt.migration import MigrationPlan

    plan = MigrationPlan.from_dict(args["plan"])
    links: list[dict[str, Any]] = args["links"]  # link_id, port, vlan (None: a new tag here), tunnel
    before = vlan_records.load_reservation(lab_id)
    had = before.tags() if before else {}
    made: list[str] = []
    devices: list[str] = []
    provider = _libvirt()
    try:
        wanted = [entry["link_id"] for entry in links if entry["vlan"] is None]
        tags = network.allocate_vlans(lab_id, sorted({*had, *wanted}), had) if wanted else dict(had)
        for entry in links:
            entry["vlan"] = entry["vlan"] if entry["vlan"] is not None else tags[entry["link_id"]]
        devices = tunnels_here(lab_id, [
            {**entry["tunnel"], "link_id": entry["link_id"], "node": plan.node, "vlan": entry["vlan"]}
            for entry in links if entry.get("tunnel")
        ])
        _ensure_mgmt_network(lab_id, plan.xml)
        made = provider.prepare_migration(plan, base64.b64decode(args.get("seed") or ""))
    except BaseException:
        _undo_destination(lab_id, provider, plan, made, devices, list(had))
        raise
    finally:
        provider.close()
    return {"tags": {entry["port"]: entry["vlan"] for entry in links},
            "vlans": {entry["link_id"]: entry["vlan"] for entry in links}, "made": made, "devices": devices,
            "had_links": sorted(had)}


def _ensure_mgmt_network(lab_id: str, domain_xml: str) -> None:
    """A VM whose management NIC is on the lab's management bridge needs that bridge here:
    on a host where the lab had nothing yet, the lab's management network is made first, as
    a deploy there would make it (without it libvirt cannot plug the NIC: "Cannot get
    interface MTU on 'arm...'")."""
    from lab import names

    if names.mgmt_bridge_name(lab_id) not in domain_xml:  # no management NIC, or not on the lab's network
        return
    text = placed_topology(lab_id)
    if text is None:
        raise ArchetypeError(f"lab {lab_id}: its placed topology is not on the server: deploy it again, then move the node")
    from providers import get_provider
    from topology import load_topology
    from vendors.model import Provider

    lab = load_topology(text)
    get_provider(Provider.DOCKER).ensure_mgmt_network(lab.id, lab.mgmt, len(lab.nodes))  # type: ignore[attr-defined]


def _undo_destination(lab_id: str, provider: Any, plan: Any, made: list[str] | None, devices: list[str],
                      keep_links: list[str]) -> list[str]:
    """Nothing of the node stays here: its files, the new tunnels, the new VLAN records."""
    errors = []
    for undo in (
        lambda: provider.clean_migration(plan, made),
        lambda: network.remove_ports(devices, lab_id=lab_id),
        lambda: release_links_not_in(lab_id, keep_links),
    ):
        try:
            undo()
        except Exception as err:  # noqa: BLE001 - every undo is tried; failures are reported
            errors.append(str(err))
            _warn("lab %s: undo on this host: %s", lab_id, err)
    return errors


def release_links_not_in(lab_id: str, keep: list[str]) -> None:
    if keep:
        network.release_links_not_in(lab_id, keep)
    else:  # the lab had nothing here before: everything it has here goes
        network.release_lab(lab_id)


def _send(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """The switch, then what the source no longer has (make before break: the new tunnels
    exist already; the old ones go only now)."""
    from providers.libvirt.migration import MigrationPlan

    plan = MigrationPlan.from_dict(args["plan"])
    cancel = CANCEL.get() or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        # A cancelled run gets SIGTERM: the source daemon drives a p2p migration and would
        # finish it without us; abort it instead, so that the VM stays here.
        previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    provider = _libvirt()
    try:
        result = provider.migrate(plan, dest_uri=args["dest_uri"], migration_uri=args["migration_uri"],
                                  tags={k: int(v) for k, v in args["tags"].items()}, cancel=cancel,
                                  timeout=float(args.get("timeout") or 600), bandwidth_mib=args.get("bandwidth_mib"))
        errors = provider.leave_source(lab_id, plan.node).errors
    finally:
        provider.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        release_links_not_in(lab_id, args["keep_links"])
    except Exception as err:  # noqa: BLE001 - the VM has moved; a leftover port is reported
        errors.append(f"releasing the links that left this host: {err}")
    return {"seconds": result.seconds, "downtime_ms": result.downtime_ms, "downtime_source": result.downtime_source,
            "data_mb": result.data_mb, "errors": errors}


def _finish(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    """Our markers on the VM's ports here, and the old tunnels of links now local go. An
    end without a VLAN (a run that lost its plan) takes the tag libvirt gave its tap.
    With ``arrival`` (uuid, timeout), started beside the source's ``send``: first wait for
    the VM to run here; a migration that ends without it (cancelled, failed) leaves
    everything as it is (``arrived`` false)."""
    if args.get("arrival") and not _arrived(lab_id, args["node"], args["arrival"]):
        return {"arrived": False, "errors": [], "vlans": {}, "downtime_ms": None}
    if any(end["vlan"] is None for end in args["ends"]):
        ports = network.bridge_ports()
        for end in args["ends"]:
            port = ports.get(end["port_name"])
            if end["vlan"] is None and port is not None and port.tag is not None:
                end["vlan"] = port.tag
        missing = [end["port_name"] for end in args["ends"] if end["vlan"] is None]
        if missing:
            raise ArchetypeError(f"lab {lab_id}: node {args['node']}: port(s) {', '.join(missing)} not on the bridge here")
    ends = [LinkEnd(**end) for end in args["ends"]]
    errors = []
    downtime_ms = None
    if args.get("downtime"):  # a move that switched and was killed: its downtime, as QEMU kept it here
        provider = _libvirt()
        try:
            downtime_ms = provider.arrived_downtime_ms(lab_id, args["node"])
        finally:
            provider.close()
    network.ensure_vm_ports(lab_id, args["node"], ends)
    try:
        network.remove_ports(_lab_devices(lab_id, args.get("old_devices", [])), lab_id=lab_id)
    except Exception as err:  # noqa: BLE001 - the node works; a leftover tunnel is reported
        errors.append(f"removing the old tunnels: {err}")
    return {"errors": errors, "vlans": {end.link_id: end.vlan for end in ends}, "downtime_ms": downtime_ms}


ARRIVAL_POLL_SECONDS = 0.1


def _arrived(lab_id: str, node: str, arrival: dict[str, Any]) -> bool:
    """Whether the VM runs here within ``arrival['timeout']`` s: False once the migration's
    incoming domain is gone again, or when this step's run is cancelled."""
    import time

    cancel = CANCEL.get() or threading.Event()
    deadline = time.monotonic() + float(arrival.get("timeout") or 600)
    seen = False
    provider = _libvirt()
    try:
        while not cancel.is_set() and time.monotonic() < deadline:
            where = provider.arrival(lab_id, node, arrival["uuid"])
            if where == "running":
                return True
            if where == "absent" and seen:
                return False  # the migration failed or was aborted: the VM runs on at the source
            seen = seen or where == "incoming"
            cancel.wait(ARRIVAL_POLL_SECONDS)
    finally:
        provider.close()
    return False


def _abort(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    from providers.libvirt.migration import MigrationPlan

    provider = _libvirt()
    try:
        errors = _undo_destination(lab_id, provider, MigrationPlan.from_dict(args["plan"]), args.get("made"),
                                   _lab_devices(lab_id, args.get("devices", [])), args.get("keep_links", []))
    finally:
        provider.close()
    return {"errors": errors}


def _untunnel(lab_id: str, args: dict[str, Any]) -> dict[str, Any]:
    network.remove_ports(_lab_devices(lab_id, args.get("devices", [])), lab_id=lab_id)
    return {"errors": []}


def _lab_devices(lab_id: str, devices: list[str]) -> list[str]:
    """Interfaces a step removes by name (a flow parameter): only the lab's own."""
    network.check_lab_ports(lab_id, list(devices))
    return list(devices)


STEP_FUNCTIONS = {
    "describe": _describe,
    "prepare": _prepare,
    "tunnels": lambda lab_id, args: {"devices": tunnels_here(lab_id, args["tunnels"])},
    "send": _send,
    "finish": _finish,
    "abort": _abort,
    "untunnel": _untunnel,
}




def remember_topology(lab_id: str, text: str) -> None:
    """The placed topology of a multi-host lab (what its slices were made of), so that a
    container can be moved cold: re-created elsewhere from its own node fields."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(f"{FENCE}yaml\n{text}\n{FENCE}\n", key=TOPOLOGY_KEY.format(lab=lab_id),
                             description="The placed topology of a multi-host lab (migrate-node reads it back)")


def placed_topology(lab_id: str) -> str | None:
    from prefect.artifacts import Artifact

    artifact = Artifact.get(TOPOLOGY_KEY.format(lab=lab_id))
    if artifact is None or not artifact.data:
        return None
    return str(artifact.data).split(f"{FENCE}yaml\n", 1)[-1].rsplit(f"\n{FENCE}", 1)[0]
