"""The lab state record: what a deploy made, published as the artifact ``lab-{lab}-state``.

The live runtime is the ground truth; this record is the memory that recovery and
orphan cleanup start from.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from lab.config_errors import ConfigError, dumps, parse_json


class LabStatus(StrEnum):
    ALLOCATED = "allocated"  # VLANs reserved, nothing created yet
    CREATING = "creating"  # nodes being created / wired
    DEPLOYED = "deployed"
    FAILED = "failed"
    DESTROYED = "destroyed"


class NodePhase(StrEnum):
    """How far a deploy brought a node."""

    PLANNED = "planned"  # in the topology, nothing made yet
    RUNNING = "running"  # created and started
    STOPPED = "stopped"  # created, not running
    READY = "ready"  # ready, its post-boot commands run
    FAILED = "failed"  # a stage failed (``NodeRecord.failed_stage``)


class Stage(StrEnum):
    """The steps of a node's deploy, in order."""

    CREATE = "create"
    WIRE = "wire"
    READY = "ready"
    POST_BOOT = "post-boot"


class NodeRecord(BaseModel):
    name: str
    kind: str
    provider: str
    runtime_name: str
    state: NodePhase = NodePhase.PLANNED
    failed_stage: Stage | None = None
    ready_seconds: float | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    mgmt_ipv4: str | None = None
    host: str | None = None  # the lab host it runs on (multi-host labs)
    exec_lines: list[str] = Field(default_factory=list)  # the topology's `exec`: post-boot again after a restart
    # startup-config lines the device refused (the node is ready all the same; lab.config_errors)
    config_errors: list[ConfigError] = Field(default_factory=list)

    @property
    def shown_state(self) -> str:
        """The state as people (and ``--json``) read it: ``failed (post-boot)``."""
        if self.state is NodePhase.FAILED and self.failed_stage is not None:
            return f"{self.state.value} ({self.failed_stage.value})"
        return self.state.value

    def fail(self, stage: Stage, error: str) -> None:
        self.state, self.failed_stage, self.error = NodePhase.FAILED, stage, error

    @classmethod
    def parse_state(cls, shown: str) -> tuple[NodePhase, Stage | None]:
        """The inverse of ``shown_state``."""
        phase, _, stage = shown.partition(" (")
        return NodePhase(phase), Stage(stage.rstrip(")")) if stage else None


class LinkConditions(BaseModel):
    """A link's impairment, applied to each direction of the link (``None``: not set)."""

    delay_ms: float | None = Field(None, ge=0)
    jitter_ms: float | None = Field(None, ge=0)
    loss_percent: float | None = Field(None, ge=0, le=100)
    rate_kbit: int | None = Field(None, gt=0)

    @property
    def active(self) -> bool:
        return any(v for v in (self.delay_ms, self.jitter_ms, self.loss_percent, self.rate_kbit))

    def text(self) -> str:
        """``delay=100ms jitter=5ms loss=1% rate=512kbit``: the artifact's column, read back by ``parse``."""
        parts = [(k, v, u) for k, v, u in (("delay", self.delay_ms, "ms"), ("jitter", self.jitter_ms, "ms"),
                                           ("loss", self.loss_percent, "%"), ("rate", self.rate_kbit, "kbit"))]
        return " ".join(f"{k}={v:g}{u}" for k, v, u in parts if v)

    @classmethod
    def parse(cls, text: str) -> LinkConditions:
        fields = {"delay": ("delay_ms", "ms"), "jitter": ("jitter_ms", "ms"), "loss": ("loss_percent", "%"),
                  "rate": ("rate_kbit", "kbit")}
        values: dict[str, float] = {}
        for item in text.split():
            key, _, value = item.partition("=")
            if key in fields:
                name, unit = fields[key]
                values[name] = float(value.removesuffix(unit))
        if "rate_kbit" in values:
            values["rate_kbit"] = int(values["rate_kbit"])
        return cls(**values)


class LinkRecord(BaseModel):
    id: str
    endpoints: list[str]  # "node:interface", as in the topology
    vlan: int
    ports: list[str] = Field(default_factory=list)  # host-side OVS port names
    vni: int | None = None  # a cross-host link's VXLAN id (unique on the server)
    vlans: dict[str, int] = Field(default_factory=dict)  # a multi-host lab: each end host's tag
    # a segment on several hosts: a VXLAN id per pair of them ("host-a+host-b", sorted)
    vnis: dict[str, int] = Field(default_factory=dict)
    state: str = "up"  # "up" | "down": set by `archetype link`, kept across redeploys and restarts
    conditions: LinkConditions = Field(default_factory=LinkConditions)


class LabState(BaseModel):
    lab_id: str
    status: LabStatus
    nodes: list[NodeRecord] = Field(default_factory=list)
    links: list[LinkRecord] = Field(default_factory=list)
    updated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    errors: list[str] = Field(default_factory=list)
    mgmt_ipv4_subnet: str | None = None  # a fleet lab's one management subnet (the coordinator's choice)

    def vlans(self) -> dict[str, int]:
        return {link.id: link.vlan for link in self.links}

    @property
    def is_known(self) -> bool:
        """Deployed (or being deployed) and not destroyed: orphan cleanup leaves it alone."""
        return self.status is not LabStatus.DESTROYED


# The artifact is one table: a person reads it in the UI, and recovery reads the same rows
# back (Artifact.get returns table data as a JSON string). Every row has the same columns.
ROW_COLUMNS = ("item", "name", "kind", "provider", "state", "runtime", "vlan", "endpoints", "ports", "ready_s", "error",
               "host", "vni", "impairment", "exec", "config_errors", "mgmt")


def _row(**values: object) -> dict[str, object]:
    return {column: values.get(column, "") for column in ROW_COLUMNS}


def state_to_rows(state: LabState) -> list[dict[str, object]]:
    rows = [_row(item="lab", name=state.lab_id, state=state.status.value, runtime=state.updated_at,
                 error="; ".join(state.errors), mgmt=state.mgmt_ipv4_subnet or "")]
    rows += [
        _row(item="node", name=n.name, kind=n.kind, provider=n.provider, state=n.shown_state, runtime=n.runtime_name,
             ready_s="" if n.ready_seconds is None else round(n.ready_seconds, 2), error=n.error or "",
             host=n.host or "", exec=json.dumps(n.exec_lines) if n.exec_lines else "",
             config_errors=dumps(n.config_errors), mgmt=n.mgmt_ipv4 or "")
        for n in state.nodes
    ]
    rows += [
        _row(item="link", name=link.id, vlan=link.vlan, endpoints=" ".join(link.endpoints), ports=" ".join(link.ports),
             host=" ".join(f"{h}={v}" for h, v in sorted(link.vlans.items())), vni=_vni_text(link),
             state=link.state, impairment=link.conditions.text())
        for link in state.links
    ]
    return rows


def state_from_rows(rows: list[dict[str, object]]) -> LabState:
    lab_row = next(r for r in rows if r["item"] == "lab")
    return LabState(
        lab_id=str(lab_row["name"]),
        status=LabStatus(str(lab_row["state"])),
        updated_at=str(lab_row["runtime"]),
        errors=[e for e in str(lab_row["error"]).split("; ") if e],
        mgmt_ipv4_subnet=str(lab_row.get("mgmt") or "") or None,
        nodes=[_node_record(r) for r in rows if r["item"] == "node"],
        links=[
            LinkRecord(id=str(r["name"]), vlan=int(r["vlan"]), endpoints=str(r["endpoints"]).split(),
                       ports=str(r["ports"]).split(), **_vnis_of(r.get("vni")),
                       vlans={h: int(v) for h, _, v in (p.partition("=") for p in str(r.get("host") or "").split())},
                       state=str(r.get("state") or "up"),
                       conditions=LinkConditions.parse(str(r.get("impairment") or "")))
            for r in rows if r["item"] == "link"
        ],
    )


def _node_record(row: dict[str, object]) -> NodeRecord:
    state, stage = NodeRecord.parse_state(str(row["state"]))
    return NodeRecord(
        name=str(row["name"]), kind=str(row["kind"]), provider=str(row["provider"]), state=state, failed_stage=stage,
        runtime_name=str(row["runtime"]), ready_seconds=float(row["ready_s"]) if row["ready_s"] != "" else None,
        error=str(row["error"]) or None, host=str(row.get("host") or "") or None,
        exec_lines=json.loads(str(row.get("exec") or "[]")),
        config_errors=parse_json(str(row.get("config_errors") or "")),
        mgmt_ipv4=str(row.get("mgmt") or "") or None,
    )


def _vni_text(link: LinkRecord) -> object:
    """The ``vni`` column: a link's VNI, or a segment's ``a+b=VNI`` per pair of hosts."""
    if link.vnis:
        return " ".join(f"{pair}={vni}" for pair, vni in sorted(link.vnis.items()))
    return "" if link.vni is None else link.vni


def _vnis_of(value: object) -> dict[str, object]:
    text = "" if value is None else str(value)
    if "=" in text:
        return {"vnis": {pair: int(vni) for pair, _, vni in (item.partition("=") for item in text.split())}}
    return {"vni": int(text) if text else None}
