"""cleanup-orphans: remove what Archetype owns on this host for labs nobody knows.

Never touches a known lab, nor anything without our markers.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from lab.errors import TopologyError
from lab.names import is_valid_lab_id
from tasks.labs import destroy_lab_everywhere, find_orphan_labs
from tasks.state import known_lab_ids as known_lab_ids_from_state


@flow(name="cleanup-orphans", flow_run_name="cleanup-orphans")
def cleanup_orphans(known_lab_ids: list[str] | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Remove resources of labs that are not known.

    Args:
        known_lab_ids: labs to keep; empty means the labs deployed and not destroyed (from state).
        dry_run: only report what would be removed.
    """
    bad = [lab for lab in known_lab_ids or [] if not is_valid_lab_id(lab)]
    if bad:
        raise TopologyError([f"known_lab_ids: invalid lab id {lab!r}" for lab in bad])
    known = list(known_lab_ids or []) or known_lab_ids_from_state()
    orphans = find_orphan_labs(known)
    logger = get_run_logger()
    logger.info("known labs: %s; orphans: %s", ", ".join(known) or "none", ", ".join(orphans.labs) or "none")
    removed: dict[str, list[str]] = {"labs": orphans.labs}
    errors: list[str] = []
    if not dry_run:
        for lab in orphans.labs:
            report = destroy_lab_everywhere(lab)
            for resource, names in report.removed.items():
                removed.setdefault(resource, []).extend(names)
            errors.extend(report.errors)
    # busy: not known, but a deploy or destroy of it holds its lock: left alone this time
    result = {"removed": removed, "errors": errors, "dry_run": dry_run, "known": known, "busy": orphans.busy}
    if errors:  # the run shows failed (a scheduled cleanup too); its report is its result
        return Failed(message="not all removed: " + "; ".join(errors)[:1000], data=result)
    return result
