"""The fleet through the Prefect server: hosts' facts (variables), VNIs (from the labs'
state), per-host steps as child runs of the hosts' deployments, and their reports.

A child's return value would need result storage shared by every host; a host's step
leaves its result as an artifact (``lab.names.host_report_key``) instead, read back by the
coordinator only when it was written by that very child run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import Artifact, create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.states import Cancelled

from lab import names
from lab.errors import ArchetypeError
from lab.settings import get_settings
from lab.state import LabState, state_from_rows
from topology.placement import HostFacts

FENCE = "~~~~"


# Host facts --------------------------------------------------------------------------


def publish_host_facts(facts: dict[str, Any]) -> None:
    from prefect.variables import Variable

    text = json.dumps(facts)
    if len(text) > 4900:  # a variable holds 5000 characters: the labs' details go first
        facts = {**facts, "labs": {lab: [] for lab in facts.get("labs", {})}}
    Variable.set(names.host_facts_variable(facts["name"]), facts, overwrite=True)


def publish_this_host() -> None:
    """Gather this host's facts and publish them (the worker, at start and periodically;
    a host's step, when it changed what the host runs)."""
    from providers.host_facts import gather

    publish_host_facts(gather())


def read_hosts() -> list[HostFacts]:
    """Every host that ever published its facts, with liveness (facts fresh enough), whether
    it is lost (not heard from for ``host_lost_seconds``) and whether it is drained."""
    window, lost_after = get_settings().host_alive_seconds, get_settings().host_lost_seconds
    now = datetime.now(UTC)
    with get_client(sync_client=True) as client:
        variables = client.read_variables()
    drained = {v.name.removeprefix(DRAINED_PREFIX) for v in variables if v.name.startswith(DRAINED_PREFIX)}
    hosts = []
    for variable in variables:
        if not variable.name.startswith("archetype-host-") or not isinstance(variable.value, dict):
            continue
        data = variable.value
        try:
            age = (now - datetime.fromisoformat(str(data.get("updated_at")))).total_seconds()
            hosts.append(HostFacts.from_dict(data, alive=age <= min(window, lost_after), lost=age > lost_after,
                                             drained=data.get("name") in drained))
        except (KeyError, ValueError, TypeError):
            continue  # not one of ours
    return sorted(hosts, key=lambda h: h.name)


# A drained host: a variable of its own, set and cleared by the coordinator (the host's worker
# rewrites its facts every few seconds: a mark inside them would race with it).
DRAINED_PREFIX = "archetype-drained-"


def set_drained(host: str, drained: bool, labs: list[str] | None = None) -> None:
    """Mark the host unschedulable (placement skips it), with the labs its drain moves (the
    next drain checks that their moves finished), or schedulable again."""
    from prefect.variables import Variable

    name = f"{DRAINED_PREFIX}{host}"
    if drained:
        since = (drain_record(host) or {}).get("since") or datetime.now(UTC).isoformat(timespec="seconds")
        Variable.set(name, {"since": since, "labs": sorted(labs or [])}, overwrite=True)
    else:
        Variable.unset(name)


def drain_record(host: str) -> dict[str, Any] | None:
    """The host's drain mark (since, labs), or None when it is not drained."""
    from prefect.variables import Variable

    value = Variable.get(f"{DRAINED_PREFIX}{host}")
    return value if isinstance(value, dict) else None


def host_is_alive(host: str) -> bool:
    return any(h.name == host and h.alive for h in read_hosts())


# VNIs ---------------------------------------------------------------------------------


def other_labs(except_lab: str) -> list[LabState]:
    """The state records of the other known labs (the server is the fleet's memory)."""
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(like_="lab-%-state"))
        )
    others = []
    for artifact in latest:
        try:
            rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
            state = state_from_rows(rows)
        except (StopIteration, KeyError, ValueError, TypeError):
            continue
        if state.lab_id != except_lab and state.is_known:
            others.append(state)
    return others


def vnis_in_use(others: list[LabState]) -> set[int]:
    """VNIs the other labs' state records hold."""
    used: set[int] = set()
    for state in others:
        used |= {link.vni for link in state.links if link.vni is not None}
        used |= {vni for link in state.links for vni in link.vnis.values()}  # a segment's, per pair of hosts
    return used


def allocate_vnis(lab_id: str, link_ids: list[str], previous: dict[str, int],
                  others: list[LabState] | None = None, also_used: frozenset[int] = frozenset()) -> dict[str, int]:
    """A VNI per tunnel: the one it had, else the lowest free one (``topology.fleet_plan.
    pick_vnis``); ``also_used``: the lab's own VNIs that stay (a move's new tunnels). Call it
    holding ``tasks.fleet_plan.fleet_allocation()`` and publish the lab's state before
    letting go: the server has no compare-and-set, the lease is the lock."""
    from topology.fleet_plan import pick_vnis

    used = vnis_in_use(other_labs(lab_id) if others is None else others) | also_used
    return pick_vnis(link_ids, previous, used)


# Reports of per-host steps ----------------------------------------------------------------


def publish_report(key: str, report: dict[str, Any]) -> None:
    create_markdown_artifact(
        f"{FENCE}json\n{json.dumps(report, indent=1, default=str)}\n{FENCE}\n", key=key,
        description="A host's step of a multi-host run: its result, read back by the coordinator",
    )


def read_report(key: str, flow_run_id: UUID) -> dict[str, Any] | None:
    artifact = Artifact.get(key)
    if artifact is None or artifact.flow_run_id != flow_run_id or not artifact.data:
        return None
    text = str(artifact.data)
    body = text.split(f"{FENCE}json\n", 1)[-1].rsplit(f"\n{FENCE}", 1)[0]
    return json.loads(body)


# Child runs on a host ------------------------------------------------------------------


class HostStepError(ArchetypeError):
    """A host did not take or finish its step in time; its child run is cancelled."""


def run_on_host(flow_name: str, host: str, parameters: dict[str, Any], *, key: str) -> Any:
    """Run ``flow_name/host`` as a child run, wait for its end, return the final flow run.

    Raises ``HostStepError`` naming the host when the run is not picked up within
    ``host_pickup_timeout``, when the host stops publishing its facts while it runs, or
    when it outlasts ``host_step_timeout``; the run is then cancelled, so that it never
    runs later on its own."""
    from prefect.deployments import run_deployment

    settings = get_settings()
    logger = get_run_logger()
    run = run_deployment(f"{flow_name}/{host}", parameters=parameters, timeout=0, idempotency_key=key)
    logger.info("%s on %s: child run %s", flow_name, host, run.name)
    _CHILDREN[key] = run.id
    try:
        return _wait_for(run, flow_name, host, settings)
    finally:
        _CHILDREN.pop(key, None)


# The child runs this process waits for, by key: another thread of the flow may cancel one.
_CHILDREN: dict[str, UUID] = {}


def cancel_child(key: str, wait: float = 10.0) -> bool:
    """Cancel the child run started with ``key`` (its host's runner sets the step's cancel
    event; the waiting ``run_on_host`` then returns it Cancelled). Waits up to ``wait`` s for
    the run to be started; False when there is none."""
    from prefect.states import Cancelling

    deadline = time.monotonic() + wait
    while (run_id := _CHILDREN.get(key)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if run_id is None:
        return False
    why = "the coordinator no longer needs this step"
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        if state is not None and state.is_running():
            client.set_flow_run_state(run_id, Cancelling(message=why), force=True)
        elif state is None or not state.is_final():  # not taken yet: it never runs (a claim of it is refused)
            client.set_flow_run_state(run_id, Cancelled(message=why), force=True)
    return True


def _wait_for(run: Any, flow_name: str, host: str, settings: Any) -> Any:
    started = time.monotonic()
    running_since: float | None = None
    last_liveness = 0.0
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run.id)
            state = run.state
            now = time.monotonic()
            if state is not None and state.is_final():
                return run
            if state is not None and state.is_running():
                running_since = running_since or now
            elif now - started > settings.host_pickup_timeout:
                _cancel(client, run.id)
                raise HostStepError(f"host {host} did not take its step ({flow_name}) within "
                                    f"{settings.host_pickup_timeout:.0f} s: is its worker running?")
            if running_since is not None and now - last_liveness > 5:
                last_liveness = now
                if not host_is_alive(host):
                    _cancel(client, run.id)
                    raise HostStepError(f"host {host} stopped answering during its step ({flow_name}): "
                                        "no facts published recently")
            if now - started > settings.host_step_timeout:
                _cancel(client, run.id)
                raise HostStepError(f"host {host} did not finish its step ({flow_name}) within "
                                    f"{settings.host_step_timeout:.0f} s")
            # a short step (a move's) ends within a second: asked often at first, then every 1 s
            time.sleep(settings.step_poll_seconds if now - started < 10 else 1)


def _cancel(client: Any, flow_run_id: UUID) -> None:
    try:
        client.set_flow_run_state(flow_run_id, Cancelled(message="the coordinator gave up on this host"), force=True)
    except Exception as err:  # noqa: BLE001 - the failure that follows says what matters
        get_run_logger().warning("could not cancel child run %s: %s", flow_run_id, err)


def child_error(run: Any) -> str | None:
    """Why a finished child run did not complete, or None."""
    state = run.state
    if state is None or state.is_completed():
        return None
    return f"{state.name}: {state.message or 'no message'}"


def ready_for_vms() -> None:
    """libvirtd's QEMU capabilities probed before any VM is started or migrated here (a host
    whose libvirt does not answer yet: the first VM pays for it)."""
    import logging

    from providers.libvirt import LibvirtProvider

    provider = LibvirtProvider()
    try:
        provider.probe_capabilities()
    except Exception as err:  # noqa: BLE001 - logged; nothing depends on it
        logging.getLogger("archetype.fleet").info("libvirt's capabilities not probed: %s", err)
    finally:
        provider.close()
