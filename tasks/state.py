"""The lab state record as Prefect artifacts: ``lab-{lab}-state`` and the configs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect.artifacts import (
    Artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from lab import names
from lab.progress import Snapshot
from lab.state import LabState, LabStatus, state_from_rows, state_to_rows


def load_lab_state(lab_id: str, key: str | None = None) -> LabState | None:
    """The newest published state of the lab, from any earlier run; None if never published.
    ``key``: another record of it (a host's slice of a multi-host lab)."""
    artifact = Artifact.get(key or names.state_artifact_key(lab_id))
    if artifact is None or not artifact.data:
        return None
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return state_from_rows(rows)


def publish_lab_state(state: LabState, key: str | None = None) -> None:
    """One artifact write (no task run of its own: a task would cost the server a run and
    its state changes for one API call). Called in a flow, the artifact is the run's.
    ``key``: another record than the lab's (a host's slice of a multi-host lab)."""
    create_table_artifact(
        state_to_rows(state),
        key=key or names.state_artifact_key(state.lab_id),
        description=f"Lab **{state.lab_id}**: {state.status.value} at {state.updated_at}",
    )


def known_lab_ids() -> list[str]:
    """Labs deployed (or being deployed) and not destroyed, from the newest state artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(like_="lab-%-state"))
        )
    known = []
    for artifact in latest:
        rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
        try:
            state = state_from_rows(rows)
        except (StopIteration, KeyError, ValueError):
            continue  # not one of ours
        if state.status is not LabStatus.DESTROYED:
            known.append(state.lab_id)
    return sorted(known)


def publish_config(lab_id: str, node: str, text: str) -> None:
    fence = "~~~~"  # configs contain backticks (banners); tildes are rarer
    create_markdown_artifact(
        f"# {node}\n\n{fence}text\n{text}\n{fence}\n",
        key=names.config_artifact_key(lab_id, node),
        description=f"Running configuration of {node} in lab {lab_id}",
    )


@dataclass
class ProgressArtifacts:
    """Writes a snapshot to the run: a progress artifact (made on the first write, then
    updated in place) and, through ``on_snapshot``, whatever else the flow shows (its
    state table)."""

    key: str | None = None
    on_snapshot: Callable[[Snapshot], None] | None = None
    _artifact_id: object = field(default=None, init=False)

    def __call__(self, snapshot: Snapshot) -> None:
        description = snapshot.markdown()  # counts per stage, failures first, the slowest: readable at any size
        if self._artifact_id is None:
            self._artifact_id = create_progress_artifact(snapshot.percent, key=self.key, description=description)
        else:
            update_progress_artifact(self._artifact_id, snapshot.percent, description=description)
        if self.on_snapshot is not None:
            self.on_snapshot(snapshot)
