"""Open vSwitch through ``ovs-vsctl``: one process per read, one transaction per batch of changes.

Every call passes ``--timeout`` so a dead ovsdb-server or ovs-vswitchd gives a
``NetworkError``, never a hang; arguments are argv lists (never a shell).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lab import names
from lab.errors import NetworkError
from lab.settings import get_settings

OVS_TIMEOUT = 30  # seconds ovs-vsctl waits for ovsdb-server / ovs-vswitchd

Command = list[str]


@dataclass(frozen=True)
class PortInfo:
    name: str
    tag: int | None
    external_ids: dict[str, str] = field(default_factory=dict)

    @property
    def lab_id(self) -> str | None:
        return self.external_ids.get(names.OVS_LAB_KEY)

    @property
    def link_id(self) -> str | None:
        return self.external_ids.get(names.OVS_LINK_KEY)

    @property
    def node(self) -> str | None:
        return self.external_ids.get(names.OVS_NODE_KEY)


def vsctl(args: Sequence[str], *, what: str, wait: bool = True) -> str:
    """Run one ``ovs-vsctl`` and return its stdout; ``what`` names the lab/ports in errors.
    ``wait=False``: return once the database has the change, without waiting for
    ovs-vswitchd to apply it (removals nobody waits on)."""
    argv = ["ovs-vsctl", f"--timeout={OVS_TIMEOUT}", *([] if wait else ["--no-wait"]), *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=OVS_TIMEOUT + 15, check=False)
    except FileNotFoundError:
        raise NetworkError(f"{what}: ovs-vsctl is not installed (Open vSwitch is missing)") from None
    except subprocess.TimeoutExpired:
        raise NetworkError(f"{what}: ovs-vsctl did not answer in {OVS_TIMEOUT + 15} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        if result.returncode < 0:  # killed by SIGALRM: --timeout expired
            detail = f"Open vSwitch did not answer within {OVS_TIMEOUT} s {detail}".strip()
        raise NetworkError(f"{what}: ovs-vsctl failed: {detail}")
    return result.stdout


def transaction(commands: Iterable[Command], *, what: str, wait: bool = True) -> str:
    """Apply every command in ONE ovs-vsctl transaction (all or nothing)."""
    args: list[str] = []
    for command in commands:
        args += ["--", *command]
    if not args:
        return ""
    return vsctl(args, what=what, wait=wait)


class _GroupCommit:
    """Transactions from concurrent threads applied together: while one ``ovs-vsctl`` runs,
    the transactions that arrive wait, and the next of them applies all the waiting ones in
    one process. A lab's nodes wire at about the same time: a deploy spawns a handful of
    ``ovs-vsctl`` (and ovs-vswitchd reconfigures the bridge a handful of times) instead of
    once per node. Each caller still returns only once its own commands are applied, and
    gets its own error: when a merged transaction fails, its parts are applied one by one
    (each all or nothing, as if alone)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._waiting: list[_Pending] = []

    def apply(self, commands: list[Command], what: str) -> str:
        mine = _Pending(commands, what)
        with self._cond:
            self._waiting.append(mine)
            while self._busy and not mine.finished:
                self._cond.wait()
            if mine.finished:
                return mine.outcome()
            self._busy = True
            batch, self._waiting = self._waiting, []
        try:
            _apply_batch(batch)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return mine.outcome()


@dataclass
class _Pending:
    commands: list[Command]
    what: str
    output: str = ""
    error: BaseException | None = None
    finished: bool = False

    def outcome(self) -> str:
        if self.error is not None:
            raise self.error
        return self.output


def _apply_batch(batch: list[_Pending]) -> None:
    try:
        if len(batch) > 1:
            try:
                output = transaction([c for pending in batch for c in pending.commands],
                                     what=f"{len(batch)} transactions merged ({'; '.join(p.what for p in batch)})")
            except NetworkError:
                pass  # one of them is at fault: each alone, so that only its caller gets the error
            else:
                for pending in batch:
                    pending.output = output
                return
        for pending in batch:
            try:
                pending.output = transaction(pending.commands, what=pending.what)
            except BaseException as err:  # noqa: BLE001 - handed to its caller
                pending.error = err
    finally:
        for pending in batch:
            pending.finished = True


_GROUP = _GroupCommit()


def grouped_transaction(commands: Iterable[Command], *, what: str) -> str:
    """``transaction``, merged with those other threads of this process make at the same time
    (``_GroupCommit``). For changes that commute (adding and marking distinct ports)."""
    return _GROUP.apply(list(commands), what)


def quote(value: str) -> str:
    """An OVSDB string atom: quoted, so ':', '=', '/', spaces in link ids survive."""
    return json.dumps(value)


def bridge_commands() -> list[Command]:
    """Commands that make sure the bridge exists with the datapath type from settings."""
    settings = get_settings()
    bridge = settings.ovs_bridge
    return [["--may-exist", "add-br", bridge], ["set", "Bridge", bridge, f"datapath_type={settings.ovs_datapath_type}"]]


def port_commands(name: str, tag: int, external_ids: Mapping[str, str]) -> list[Command]:
    """Add (or keep) port ``name`` on the bridge as an access port of VLAN ``tag``, merging
    ``external_ids`` key by key (keys others put there stay).

    A device recreated under the name of an existing row is NOT reopened by ovs-vswitchd
    (not even by ``del-port`` + ``add-port`` in one transaction: it sees no change): such a
    row must be deleted in an earlier transaction, before the device comes back."""
    ids = [f"external_ids:{quote(key)}={quote(value)}" for key, value in external_ids.items()]
    return [
        ["--may-exist", "add-port", get_settings().ovs_bridge, name],
        ["set", "Port", name, f"tag={int(tag)}", "vlan_mode=access", *ids],
    ]


def del_port_commands(port_names: Iterable[str]) -> list[Command]:
    return [["--if-exists", "del-port", name] for name in port_names]


def ensure_bridge() -> None:
    """Create the bridge from settings (datapath type too) if it is missing. Idempotent."""
    transaction(bridge_commands(), what=f"bridge {get_settings().ovs_bridge}")


# Reading -----------------------------------------------------------------------------


def _atom_set(value: object) -> list:
    """OVSDB JSON: a set is ``["set", [...]]``, a one-element set is the bare atom."""
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        return list(value[1])
    return [value]


def _uuid(value: object) -> str | None:
    if isinstance(value, list) and len(value) == 2 and value[0] == "uuid":
        return str(value[1])
    return None


def parse_port_table(text: str) -> dict[str, tuple[str | None, PortInfo]]:
    """Parse ``--format=json --columns=_uuid,name,tag,external_ids list Port`` output:
    port name -> (row uuid, PortInfo)."""
    table = json.loads(text)
    columns = table["headings"]
    rows: dict[str, tuple[str | None, PortInfo]] = {}
    for raw in table["data"]:
        row = dict(zip(columns, raw, strict=True))
        tags = [t for t in _atom_set(row.get("tag")) if isinstance(t, int)]
        ids_value = row.get("external_ids", ["map", []])
        pairs = ids_value[1] if isinstance(ids_value, list) and ids_value and ids_value[0] == "map" else []
        info = PortInfo(name=str(row["name"]), tag=tags[0] if tags else None, external_ids={str(k): str(v) for k, v in pairs})
        rows[info.name] = (_uuid(row.get("_uuid")), info)
    return rows


def parse_bridge_ports(text: str) -> set[str] | None:
    """Parse ``--if-exists --columns=ports list Bridge BR``: the bridge's port row uuids,
    or None when the bridge does not exist."""
    table = json.loads(text)
    if not table["data"]:
        return None
    (ports_value,) = table["data"][0]
    return {u for u in (_uuid(v) for v in _atom_set(ports_value)) if u}


@dataclass(frozen=True)
class OvsState:
    """One read of the switch: the bridge's ports, and every port of every bridge."""

    bridge_exists: bool
    bridge: dict[str, PortInfo]  # ports on our bridge
    everywhere: dict[str, PortInfo]  # ports on any bridge (markers are trusted wherever they are)


def read_state() -> OvsState:
    """The bridge's ports with tags and external_ids, and all other ports: ONE ovs-vsctl."""
    bridge = get_settings().ovs_bridge
    out = vsctl(
        ["--format=json", "--", "--if-exists", "--columns=ports", "list", "Bridge", bridge,
         "--", "--columns=_uuid,name,tag,external_ids", "list", "Port"],
        what=f"bridge {bridge}: reading ports",
    )
    lines = [line for line in out.splitlines() if line.strip()]
    if len(lines) != 2:
        raise NetworkError(f"bridge {bridge}: unexpected ovs-vsctl output: {out[:200]!r}")
    try:
        on_bridge = parse_bridge_ports(lines[0])
        rows = parse_port_table(lines[1])
    except (ValueError, KeyError, TypeError) as err:
        raise NetworkError(f"bridge {bridge}: cannot parse ovs-vsctl output: {err}") from err
    everywhere = {name: info for name, (_, info) in rows.items()}
    mine = {name: info for name, (uuid, info) in rows.items() if on_bridge and uuid in on_bridge}
    return OvsState(bridge_exists=on_bridge is not None, bridge=mine, everywhere=everywhere)


def bridge_ports() -> dict[str, PortInfo]:
    """Every port of the bridge with its tag and external_ids, read in one call
    (empty when the bridge does not exist yet)."""
    return read_state().bridge
