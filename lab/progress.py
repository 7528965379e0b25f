"""A deploy's progress, node by node: each node's stage as it is reached.

Stages, in order: ``created`` (the container runs / the VM is defined and started),
``wired`` (its link ends are on the bridge), ``ready`` (it answers its readiness check),
``configured`` (its post-boot commands ran; a node with none is configured when ready).

The flow opens one ``DeployProgress`` per run (``tracking``); the node tasks, which run in
the flow's own process, report into it by lab id (``advance`` / ``fail``). Two audiences:

- the terminal: listeners registered in this process (``listen``; the command line's
  live table) are called on every change, in the reporting thread;
- the Prefect UI: whatever ``publish`` writes (``tasks.state.ProgressArtifacts``: a
  progress artifact on the run and the lab's state table), called by one background
  thread at most every ``PUBLISH_INTERVAL`` seconds, so a lab of any size costs a few API
  calls, not one per node and stage.

No Prefect here: the command line imports it to listen.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

STAGES = ("created", "wired", "ready", "configured")
PUBLISH_INTERVAL = 2.0  # seconds between two artifact writes while the deploy runs
SLOWEST_SHOWN = 5  # nodes named in a one-line summary
MARKDOWN_ROWS = 10  # failures, and nodes waiting longest, listed in the UI's progress artifact

log = logging.getLogger("archetype.progress")


@dataclass(frozen=True)
class NodeProgress:
    name: str
    reached: dict[str, float]  # stage -> seconds since the deploy started
    failed: str | None = None  # "stage: error"

    @property
    def stage(self) -> str:
        """The last stage reached ("" before the first)."""
        return max(self.reached, key=STAGES.index, default="")

    @property
    def done(self) -> bool:
        return self.failed is not None or "configured" in self.reached


@dataclass(frozen=True)
class Snapshot:
    lab_id: str
    nodes: tuple[NodeProgress, ...]
    elapsed: float
    finished: bool = False

    def count(self, stage: str) -> int:
        return sum(stage in n.reached for n in self.nodes)

    @property
    def percent(self) -> float:
        total = len(self.nodes) * len(STAGES)
        done = sum(len(STAGES) if n.failed else len(n.reached) for n in self.nodes)
        return 100.0 * done / total if total else 100.0

    def summary(self) -> str:
        counts = ", ".join(f"{stage} {self.count(stage)}/{len(self.nodes)}" for stage in STAGES)
        failed = sum(n.failed is not None for n in self.nodes)
        return counts + (f", failed {failed}" if failed else "")

    def failures(self) -> list[NodeProgress]:
        """The failed nodes, in the order they failed (as far as their stages tell), then by name."""
        failed = [n for n in self.nodes if n.failed is not None]
        return sorted(failed, key=lambda n: (max(n.reached.values(), default=0.0), n.name))

    def waiting(self, node: NodeProgress) -> float:
        """Seconds the unfinished ``node`` has been waiting for its next stage."""
        return max(0.0, self.elapsed - max(node.reached.values(), default=0.0))

    def slowest(self, count: int) -> list[NodeProgress]:
        """The ``count`` unfinished nodes that have waited longest for their next stage, among
        those created (a node not created yet waits its turn under the engines' bound: the
        summary counts those)."""
        started = [n for n in self.nodes if n.reached and not n.done]
        return sorted(started, key=lambda n: (-self.waiting(n), n.name))[:count]

    def next_stage(self, node: NodeProgress) -> str:
        return STAGES[min(len(node.reached), len(STAGES) - 1)]

    def slowest_text(self, count: int = SLOWEST_SHOWN) -> str:
        """``r12 ready? 31 s, r40 created? 28 s``: the slowest nodes, the stage each waits for."""
        return ", ".join(f"{n.name} {self.next_stage(n)}? {self.waiting(n):.0f} s" for n in self.slowest(count))

    def markdown(self, shown: int = MARKDOWN_ROWS) -> str:
        """For the run's progress artifact in the UI, whatever the lab's size: a table of
        the stages (nodes there, the last one's time), the failures first (each with its
        cause, at most ``shown``), then the nodes that have waited longest."""
        total = len(self.nodes)
        lines = [f"Deploy of lab **{self.lab_id}**: {self.summary()} ({self.elapsed:.1f} s)", "",
                 "| stage | nodes | last at |", "|---|---|---|"]
        for stage in STAGES:
            times = [n.reached[stage] for n in self.nodes if stage in n.reached]
            lines.append(f"| {stage} | {len(times)}/{total} | {f'{max(times):.1f} s' if times else '-'} |")
        failures = self.failures()
        if failures:
            lines += ["", f"**Failed ({len(failures)})**", ""]
            lines += [f"- `{n.name}`: {_one_line(n.failed or '')}" for n in failures[:shown]]
            if len(failures) > shown:
                lines.append(f"- ... and {len(failures) - shown} more (the state table has every node)")
        slowest = self.slowest(shown)
        if slowest and not self.finished:
            lines += ["", "**Waiting longest**", "", "| node | waits for | since |", "|---|---|---|"]
            lines += [f"| `{n.name}` | {self.next_stage(n)} | {self.waiting(n):.0f} s |" for n in slowest]
        return "\n".join(lines)


def _one_line(text: str, width: int = 300) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 3] + "..."


Listener = Callable[[Snapshot, NodeProgress | None], None]
_listeners: list[Listener] = []
_active: dict[str, DeployProgress] = {}
_registry_lock = threading.Lock()


def listen(listener: Listener) -> Callable[[], None]:
    """Call ``listener(snapshot, changed_node)`` on every change of any deploy in this
    process (``changed_node`` None: the deploy started or finished). Returns the undo."""
    with _registry_lock:
        _listeners.append(listener)

    def stop() -> None:
        with _registry_lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return stop


def advance(lab_id: str, node: str, stage: str) -> None:
    """Node ``node`` of the deploy of ``lab_id`` running in this process reached ``stage``
    (and every stage before it). No deploy tracked here (a task run on its own): nothing."""
    progress = _active.get(lab_id)
    if progress is not None:
        progress.advance(node, stage)


def fail(lab_id: str, node: str, stage: str, error: str) -> None:
    progress = _active.get(lab_id)
    if progress is not None:
        progress.fail(node, stage, error)


class DeployProgress:
    """The stages of every node of one deploy; thread-safe."""

    def __init__(self, lab_id: str, nodes: list[str], publish: Callable[[Snapshot], None] | None = None) -> None:
        self.lab_id = lab_id
        self.started_at = time.time()  # wall clock, for whoever lines it up with other clocks
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._nodes = {name: NodeProgress(name, {}) for name in nodes}
        self._publish = publish
        self._changed = threading.Event()
        self._stopped = threading.Event()
        self._finished = False

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.lab_id, tuple(self._nodes.values()), time.monotonic() - self._started, self._finished)

    def advance(self, node: str, stage: str) -> None:
        at = round(time.monotonic() - self._started, 3)
        with self._lock:
            current = self._nodes.get(node)
            if current is None or stage in current.reached:
                return
            earlier = {s: current.reached.get(s, at) for s in STAGES[: STAGES.index(stage)]}
            changed = NodeProgress(node, {**earlier, **current.reached, stage: at}, current.failed)
            self._nodes[node] = changed
        self._notify(changed)

    def fail(self, node: str, stage: str, error: str) -> None:
        with self._lock:
            current = self._nodes.get(node)
            if current is None:
                return
            changed = NodeProgress(node, current.reached, f"{stage}: {error}")
            self._nodes[node] = changed
        self._notify(changed)

    def timings(self) -> dict[str, dict[str, float]]:
        """node -> stage -> seconds since the deploy started (for the run's result)."""
        with self._lock:
            return {name: dict(n.reached) for name, n in self._nodes.items()}

    def _notify(self, changed: NodeProgress | None) -> None:
        self._changed.set()
        snapshot = self.snapshot()
        with _registry_lock:
            listeners = list(_listeners)
        for listener in listeners:
            try:
                listener(snapshot, changed)
            except Exception:  # a display must never break a deploy
                log.exception("progress listener failed")

    # -- the UI: one writer thread ------------------------------------------------------

    def _publisher(self) -> None:
        while not self._stopped.is_set():
            self._changed.wait()
            if self._stopped.is_set():
                break
            self._changed.clear()
            self._write()
            self._stopped.wait(PUBLISH_INTERVAL)

    def _write(self) -> None:
        if self._publish is None:
            return
        try:
            self._publish(self.snapshot())
        except Exception as err:  # noqa: BLE001 - the UI view must not fail the deploy
            log.warning("could not publish the deploy's progress: %s", err)

    @contextmanager
    def running(self) -> Iterator[DeployProgress]:
        """Registered for ``advance``/``fail`` by lab id, with the writer thread running
        (in a copy of the caller's context: artifacts belong to the caller's flow run).
        On exit the last state is written before returning, and nothing after."""
        with _registry_lock:
            _active[self.lab_id] = self
        context = contextvars.copy_context()
        writer = threading.Thread(target=context.run, args=(self._publisher,), name=f"progress:{self.lab_id}", daemon=True)
        writer.start()
        self._notify(None)
        try:
            yield self
        finally:
            with _registry_lock:
                _active.pop(self.lab_id, None)
            self._stopped.set()
            self._changed.set()
            writer.join()
            with self._lock:
                self._finished = True
            self._write()
            self._notify(None)
