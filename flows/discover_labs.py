"""discover-labs: what Archetype-owned labs run on this host, from live markers."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.labs import discover_labs_live


@flow(name="discover-labs", flow_run_name="discover-labs")
def discover_labs() -> dict[str, Any]:
    """List every lab on this host with its nodes and their live state."""
    labs = [lab.as_dict() for lab in discover_labs_live()]
    rows = [{"lab": lab["lab_id"], **node} for lab in labs for node in lab["nodes"]]
    create_table_artifact(rows, key="discovered-labs", description=f"{len(labs)} labs on this host")
    return {"labs": labs}
