"""One batch run: a Pool on threads working only on the batch's job group until every input is settled."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from traxd import jobviews, pipelines
from traxd.batching.inputs import Added, Enqueued, settle
from traxd.batching.result import (
    BatchResult,
    failures,
    quality_metrics,
    speakers,
    warnings,
)
from traxd.clock import Clock, SystemClock
from traxd.config import Settings
from traxd.costs import Cost
from traxd.daemon.memory_gate import MemoryGate
from traxd.daemon.owner import Owner
from traxd.daemon.pool import FollowUps, Pool, PoolWiring
from traxd.daemon.pool_setup import pool_config
from traxd.handlers.common import DEFAULT_LOCAL_MODEL
from traxd.handlers.registry import Registry
from traxd.ingest.enqueue import Ingestor, Outcome, Queued, Skipped
from traxd.progress import BatchProgress, estimate_eta
from traxd.queue.store import Store
from traxd.resources import ResourceMonitor
from traxd.types import ControlState, Job, TaskState, TaskType

ALL = 10**9
HISTORY_SECONDS = 30.0  # how often the ETA reads this machine's cost history again (it grows once a run)
Hold = tuple[float | None, tuple[int, ...]]  # a new job's start time (`not_before`) and the jobs it waits for
NO_HOLD: Hold = (None, ())


class BatchRun:
    """Adds inputs to the durable queue under one group and runs them on a drain-mode Pool in a thread."""

    def __init__(
        self, store: Store, registry: Registry, settings: Settings, group: str, *, slots: int,
        monitor: ResourceMonitor, clock: Clock | None = None, follow_ups: FollowUps | None = None,
    ) -> None:  # fmt: skip
        self.store, self.registry, self.settings, self.group = store, registry, settings, group
        self.slots, self.monitor = slots, monitor
        self.clock = clock or store.clock or SystemClock()
        self.follow_ups = follow_ups or pipelines.follow_ups
        self.enqueued = Enqueued()
        self.pool: Pool | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.interrupted = False
        self.error: Exception | None = None
        self._paused: str | None = None
        self._thread: threading.Thread | None = None
        self._history: list[Cost] = []
        self._history_read = -1e9

    # -- inputs ---------------------------------------------------------------------------------
    def add_paths(self, items: list[tuple[Path, Path]], options: dict[str, Any], priority: int,
                  stage: TaskType = TaskType.PREPROCESS, hold: Hold = NO_HOLD) -> list[Added | Skipped]:  # fmt: skip
        """Queue (path, outbox) inputs through the one ingestion path into this batch (jobs that exist for the same
        input are reused); files that are not inputs are also kept in `enqueued.ignored`."""
        return self._take(self._ingestor(options, priority, stage, hold).ingest_paths(items), options)

    def add_url(self, url: str, outbox: Path, options: dict[str, Any], priority: int,
                hold: Hold = NO_HOLD) -> list[Added | Skipped]:  # fmt: skip
        """Queue one URL into this batch (a rejected scheme becomes a failed task with the reason)."""
        return self._take([self._ingestor(options, priority, hold=hold).ingest_url(url, outbox)], options)

    def _ingestor(self, options: dict[str, Any], priority: int, stage: TaskType = TaskType.PREPROCESS,
                  hold: Hold = NO_HOLD) -> Ingestor:  # fmt: skip
        pin = None if self.settings.shared_storage else socket.gethostname()
        return Ingestor(self.store, group=self.group, priority=priority, options=options, affinity=pin,
                        file_stage=stage, on_skipped=self.enqueued.ignored.append, not_before=hold[0],
                        after=hold[1])  # fmt: skip

    def _take(self, outcomes: list[Outcome], options: dict[str, Any]) -> list[Added | Skipped]:
        taken = [settle(self.store, o, (self.group, options), self.enqueued) if isinstance(o, Queued) else o
                 for o in outcomes]  # fmt: skip
        if self.pool is not None:
            self.pool.wake()
        return taken

    # -- running --------------------------------------------------------------------------------
    def lift_type_pauses(self) -> dict[str, str]:
        """Lift the pauses of the types this run handles; returns {type: the reason it was paused}.

        Type pauses come only from refused credentials (401/402/403). Starting a batch again is the user's
        "try again": with a fixed key it finishes the inputs an earlier run left queued; with the same bad key
        one unpaid request fails and the type pauses again, so the batch ends reporting them once more.
        """
        lifted = {}
        for scope, control in self.store.controls().items():
            if control.state is ControlState.PAUSED and scope in {t.value for t in self.registry.types()}:
                self.store.set_control(scope, ControlState.RUNNING)
                lifted[scope] = control.reason or "paused"
        return lifted

    def begin(self) -> None:
        """Start the pool thread (a new Pool for every run, so a stopped run can be started again)."""
        self.interrupted, self.ended_at, self.error = False, None, None
        self.started_at = self.clock.now()
        cfg = replace(pool_config(self.settings, self.group), slots=self.slots)
        wiring = PoolWiring(clock=self.clock, gate=self._gate, slot_limit=self.monitor.slot_limit,
                            memory=self.monitor.rss_mb, follow_ups=self.follow_ups,
                            type_gate=MemoryGate(self.store, self.settings, self.monitor.rss_mb, Owner.current().host,
                                                 self.group))  # fmt: skip
        self.pool = Pool(self.store, self.registry, cfg, wiring)
        self._thread = threading.Thread(target=self._run, args=(self.pool,), name="trax-batch", daemon=True)
        self._thread.start()

    def _run(self, pool: Pool) -> None:
        try:
            pool.run(drain=True)
        except Exception as exc:  # noqa: BLE001 - handed to the caller by result(), not lost in a thread
            self.error = exc
        finally:
            self.ended_at = self.clock.now()

    def running(self) -> bool:
        """True while the pool thread works."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running()

    def _gate(self) -> str | None:
        return self._paused or self.monitor.gate()

    def pause(self, reason: str = "paused by the caller") -> None:
        """Stop claiming new tasks (running ones finish); only this batch, never the daemon."""
        self._paused = reason

    def resume(self) -> None:
        """Claim again."""
        self._paused = None
        if self.pool is not None:
            self.pool.wake()

    def stop(self, now: bool = False) -> None:
        """Stop claiming; running tasks finish within the grace period (or are released at once with now)."""
        self.interrupted = True
        if self.pool is not None:
            self.pool.request_stop(now)

    # -- reporting ------------------------------------------------------------------------------
    def views(self) -> list[jobviews.JobView]:
        """The batch's inputs as jobs, from the database (tasks run by a daemon alongside included)."""
        return jobviews.fold(self.store.list_tasks(limit=ALL, group=self.group))

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the run began (up to its end, or up to `now`)."""
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else (now if now is not None else self.clock.now())
        return max(0.0, end - self.started_at)

    def progress(self, now: float | None = None) -> BatchProgress:
        """The progress snapshot (as of `now` for the elapsed time): inputs by state, memory/CPU, ETA, pauses."""
        views = self.views()
        sample = self.monitor.sample()
        slots = self.pool.slots_now() if self.pool is not None else self.slots
        eta = estimate_eta(jobviews.work(views, self.enqueued.sizes, self._predicted(views)), slots)
        return jobviews.snapshot(
            views, self.enqueued.skipped, memory_usage_mb=sample.rss_mb, cpu_usage_percent=sample.cpu_percent,
            elapsed_seconds=self.elapsed(now), eta_seconds=eta, paused_reason=self._pause_reason(),
            state=self._state(), extra={"slots": slots, "group": self.group},
        )  # fmt: skip

    def _predicted(self, views: list[jobviews.JobView]) -> dict[int, float]:
        """Predicted seconds of queued local jobs of known length, from this machine's history of finished runs
        (read again at most every 30 s), as `traxctl status` predicts them."""
        if self.settings.effective_backend != "local":
            return {}
        now = time.monotonic()
        if now - self._history_read >= HISTORY_SECONDS:
            model = self.settings.local_model or DEFAULT_LOCAL_MODEL
            self._history = self.store.cost_history(Owner.current().host, TaskType.TRANSCRIBE, model)
            self._history_read = now
        return jobviews.predicted_seconds(views, self._history)

    def _state(self) -> str:
        if self.running():
            return "stopping" if self.interrupted else ("paused" if self._paused else "running")
        return "stopped" if self.interrupted else ("finished" if self.started_at is not None else "idle")

    def _pause_reason(self) -> str | None:
        if self._paused:
            return self._paused
        return self.pool.stats.paused_reason if self.pool is not None and self.running() else None

    def result(self) -> BatchResult:
        """The BatchResult of everything this batch holds (call after the run ended); re-raises a pool crash."""
        if self.error is not None:
            raise self.error
        views = self.views()
        snap = jobviews.snapshot(views, self.enqueued.skipped)
        jobs = self._jobs(views)
        peaks = self.monitor.peaks
        return BatchResult(
            total_tasks=snap.total_tasks, completed_tasks=snap.completed_tasks, failed_tasks=snap.failed_tasks,
            cancelled_tasks=snap.cancelled_tasks, pending_tasks=snap.queued_tasks + snap.active_tasks,
            skipped_tasks=self.enqueued.skipped, processing_time=self.elapsed(), peak_memory_mb=peaks.rss_mb,
            peak_cpu_percent=peaks.cpu_percent, quality_metrics=quality_metrics(views),
            warnings=warnings(views, jobs), failures=failures(views, jobs), speakers=speakers(views, jobs),
            pending_reason=self.pending_reason(views), interrupted=self.interrupted, group=self.group,
        )  # fmt: skip

    def _jobs(self, views: list[jobviews.JobView]) -> dict[int, Job]:
        jobs = dict(self.enqueued.jobs)
        for v in views:
            if v.job_id not in jobs and (job := self.store.get_job(v.job_id)) is not None:
                jobs[v.job_id] = job
        return jobs

    def pending_reason(self, views: list[jobviews.JobView]) -> str | None:
        """Why inputs are left unfinished after the run: stopped, a paused type, or no handler here."""
        waiting = jobviews.types_waiting(views)
        if not any(not v.state.terminal for v in views):
            return None
        if self.interrupted:
            return "stopped before they finished; run the batch again to continue"
        controls = self.store.controls()
        reasons = []
        for t in sorted(waiting, key=lambda t: t.value):
            c = controls.get(t.value)
            if c is not None and c.state is ControlState.PAUSED:
                reasons.append(f"{t.value} is paused for this database: {c.reason}; fix it, then run the batch "
                               "again to finish them (nothing already paid for is sent again)")  # fmt: skip
            elif t not in self.registry:
                reasons.append(f"no {t.value} handler in this process")
        glob = controls.get("*")
        # A stop request older than this run was for others (see Control.stops).
        if glob is not None and (glob.state is ControlState.PAUSED or glob.stops(self.started_at or 0.0)):
            reasons.append(f"the queue is {glob.state.value}" + (f": {glob.reason}" if glob.reason else ""))
        return "; ".join(reasons) or f"{sum(1 for v in views if v.state is TaskState.QUEUED)} inputs still queued"
