"""A fleet worker's in-process runs of short per-host steps (``migrate-step/<host>``).

Prefect's runner (``serve``) starts each flow run in a fresh process after up to
``runner_poll_seconds``: seconds on this machine, for a step whose work may take 0.1 s. A
live move chains four such steps across hosts, so the move's time was mostly starting
processes (docs/performance.md, "Moving nodes between hosts"). Here the worker's own process
asks the server every ``step_poll_seconds`` for scheduled runs of these deployments, claims
each one (Pending: the server lets one claimant win) and runs it in a thread of this warm
process. They stay flow runs of their deployments: child runs of the coordinator's run, in
the UI, with their logs, states and artifacts, as before.

A run set to Cancelling gets its cancel event set (``tasks.migration.CANCEL``, as
flows.migrate_steps exports it: the live migration aborts, the VM stays), then ends Cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from uuid import UUID

log = logging.getLogger("archetype.steps")


class StepRunner:
    """Serves ``flows`` as deployments named ``host`` and runs their runs in-process."""

    def __init__(self, flows: list[Any], host: str, poll_seconds: float) -> None:
        self.flows = {f.name: f for f in flows}
        self.host = host
        self.poll_seconds = poll_seconds
        self.deployments: dict[UUID, Any] = {}
        self.running: dict[UUID, threading.Event] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def register(self) -> None:
        for flow in self.flows.values():
            deployment_id = flow.to_deployment(name=self.host, tags=["archetype", "fleet"]).apply()
            self.deployments[deployment_id] = flow

    def start(self) -> threading.Thread:
        self.register()
        thread = threading.Thread(target=self.serve, daemon=True, name="step-runner")
        thread.start()
        return thread

    def serve(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not self.stop.is_set():
                try:
                    self._poll(client)
                except Exception as err:  # noqa: BLE001 - the server may be restarting: ask again
                    log.warning("step runner: %s", err)
                    self.stop.wait(min(5.0, self.poll_seconds * 20))
                self.stop.wait(self.poll_seconds)

    def _poll(self, client: Any) -> None:
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterId,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        scheduled = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=list(self.deployments)),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))), limit=32)
        for run in scheduled:
            if self._claim(client, run.id):
                self._start(run)
        with self.lock:
            running = list(self.running)
        if running:  # a cancel asked from the UI or by a test: the step's event
            for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=running))):
                if run.state is not None and run.state.name == "Cancelling":
                    with self.lock:
                        event = self.running.get(run.id)
                    if event is not None and not event.is_set():
                        log.info("run %s: cancelling", run.name)
                        event.set()

    @staticmethod
    def _claim(client: Any, run_id: UUID) -> bool:
        from prefect.exceptions import Abort
        from prefect.states import Pending
        from prefect.utilities.engine import propose_state_sync

        try:
            return propose_state_sync(client, Pending(), flow_run_id=run_id).is_pending()
        except Abort:  # another claimant, or cancelled meanwhile
            return False

    def _start(self, run: Any) -> None:
        flow = self.deployments[run.deployment_id]
        event = threading.Event()
        with self.lock:
            self.running[run.id] = event
        threading.Thread(target=self._run, args=(flow, run, event), daemon=True, name=f"step-{run.name}").start()

    def _run(self, flow: Any, run: Any, cancel: threading.Event) -> None:
        from prefect.client.orchestration import get_client
        from prefect.flow_engine import run_flow
        from prefect.states import Cancelled

        from flows.migrate_steps import CANCEL

        started = time.monotonic()
        token = CANCEL.set(cancel)
        try:
            run_flow(flow, flow_run=run, return_type="state")
        except BaseException as err:  # noqa: BLE001 - the engine records the failure; the thread must not die loudly
            log.warning("run %s: %s", run.name, err)
        finally:
            CANCEL.reset(token)
            with self.lock:
                self.running.pop(run.id, None)
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
            if state is not None and not state.is_final():  # Cancelling refuses any end but Cancelled
                client.set_flow_run_state(run.id, Cancelled(message="cancelled while it ran"), force=True)
        log.info("run %s done in %.2f s", run.name, time.monotonic() - started)
