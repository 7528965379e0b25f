"""The lab state record: what a deploy made, published as the artifact ``lab-{lab}-state``.

The live runtime is the ground truth; this record is the memory that recovery and
orphan cleanup start from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class LabStatus(StrEnum):
    ALLOCATED = "allocated"  # VLANs reserved, nothing created yet
    CREATING = "creating"  # nodes being created / wired
    DEPLOYED = "deployed"
    FAILED = "failed"
    DESTROYED = "destroyed"


class NodeRecord(BaseModel):
    name: str
    kind: str
    provider: str
    runtime_name: str
    state: str = "planned"
    ready_seconds: float | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    error: str | None = None


class LinkRecord(BaseModel):
    id: str
    endpoints: list[str]  # "node:interface", as in the topology
    vlan: int
    ports: list[str] = Field(default_factory=list)  # host-side OVS port names


class LabState(BaseModel):
    lab_id: str
    status: LabStatus
    nodes: list[NodeRecord] = Field(default_factory=list)
    links: list[LinkRecord] = Field(default_factory=list)
    updated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    errors: list[str] = Field(default_factory=list)

    def vlans(self) -> dict[str, int]:
        return {link.id: link.vlan for link in self.links}

    @property
    def is_known(self) -> bool:
        """Deployed (or being deployed) and not destroyed: orphan cleanup leaves it alone."""
        return self.status is not LabStatus.DESTROYED
