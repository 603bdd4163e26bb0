"""What `traxctl status` reports, in inputs (jobs) rather than internal tasks.

The current work is every unfinished job plus every job that finished since the queue was last idle (no job
queued or running); when the queue is idle it is the last such run. `--since` and `--all` widen it to history.
Counts, the stage of each running job and the ETA all come from the same task rows; a daemon's busy slots are
the leases it holds in those rows, so they always agree with the running count.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from traxd.costs import Cost
from traxd.daemon.owner import owner_is_dead
from traxd.job_waits import wait_reason
from traxd.jobviews import JobView, fold, predicted_seconds, snapshot, work
from traxd.model_catalog import model_warning
from traxd.progress import BatchProgress, estimate_eta
from traxd.queue.reads import JobInfo, Reader
from traxd.queue.transitions import stale_after
from traxd.types import GLOBAL_SCOPE, Control, ControlState, JobWait, TaskState, TaskType, WorkerInfo
from traxd.waiting import Waiting

TRANSCRIBE = TaskType.TRANSCRIBE.value

CURRENT, SINCE, ALL = "current", "since", "all"


@dataclass(frozen=True)
class Heartbeat:
    """A daemon's heartbeat row, whether it is still alive, and how many leases it holds now."""

    info: WorkerInfo
    age: float
    stale: bool
    dead: bool
    busy: int = 0


@dataclass(frozen=True)
class RunningJob:
    """A job with a task running: which stage, which attempt, for how long, under whose lease."""

    job_id: int
    name: str
    stage: str
    attempt: int
    seconds: float
    owner: str | None


@dataclass(frozen=True)
class WaitingJob:
    """A queued job held back by its time (`--at`) or its dependencies (`--after`), and why in words."""

    job_id: int
    name: str
    reason: str


@dataclass(frozen=True)
class Status:
    """Everything `status` prints."""

    progress: BatchProgress
    heartbeats: list[Heartbeat]
    controls: dict[str, Control]
    running: tuple[RunningJob, ...] = ()
    scope: str = CURRENT
    since: float | None = None
    unowned: int = 0
    warnings: tuple[str, ...] = ()
    waiting_jobs: tuple[WaitingJob, ...] = ()  # queued jobs held by their time or dependencies, with why
    waiting: Waiting | None = None  # what this machine's daemon holds back for (power, quiet hours, heat)

    @property
    def type_pauses(self) -> dict[str, str | None]:
        """Task types paused on their own (e.g. after an authentication failure), with the reason."""
        return {s: c.reason for s, c in self.controls.items() if s != GLOBAL_SCOPE and c.state is ControlState.PAUSED}

    def as_dict(self) -> dict[str, Any]:
        """The spec's `status --json` keys (counting jobs), plus scope, running jobs, daemons and per-type pauses."""
        out = self.progress.as_dict()
        out |= {"unit": "jobs", "scope": self.scope, "since": self.since, "paused_types": self.type_pauses,
                "warnings": list(self.warnings), "unowned_running": self.unowned}  # fmt: skip
        out["waiting_reason"] = self.waiting.reason if self.waiting else None
        out["machine"] = self.waiting.as_dict() if self.waiting else None
        out["running_jobs"] = [{"job_id": r.job_id, "name": r.name, "stage": r.stage, "attempt": r.attempt,
                                "seconds": round(r.seconds, 1), "owner": r.owner} for r in self.running]  # fmt: skip
        out["waiting_jobs"] = [{"job_id": w.job_id, "name": w.name, "reason": w.reason} for w in self.waiting_jobs]
        out["daemons"] = [
            {"owner": h.info.owner, "host": h.info.host, "pid": h.info.pid, "started_at": h.info.started_at,
             "last_seen": h.info.last_seen, "age_seconds": round(h.age, 1), "active_tasks": h.busy,
             "slots": h.info.slots, "rss_mb": round(h.info.rss_mb, 1), "cpu_percent": round(h.info.cpu_percent, 1),
             "stale": h.stale, "dead": h.dead}
            for h in self.heartbeats
        ]  # fmt: skip
        return out


def heartbeats(workers: list[WorkerInfo], now: float, stale_after: float, leases: Counter[str]) -> list[Heartbeat]:
    """Flag rows older than `stale_after` seconds and same-host rows whose process is gone; count their leases."""
    host = socket.gethostname()  # not Owner.current(): psutil loads only when a row is this host's
    return [
        Heartbeat(w, now - w.last_seen, now - w.last_seen > stale_after, owner_is_dead(w.owner, host), leases[w.owner])
        for w in workers
    ]


def collect(
    reader: Reader, lease_seconds: float, now: float, model: str | None = None, scope: str = CURRENT,
    since: float | None = None, local_model: str | None = None,
) -> Status:  # fmt: skip
    """Read controls, heartbeats and the tasks of the chosen jobs in one snapshot and fold them into a Status.

    `local_model`: the configured local model, whose history on the live daemons' host predicts queued jobs' time.
    """
    with reader.snapshot():
        controls, workers = reader.controls(), reader.workers()
        start = reader.epoch() if scope == CURRENT else since
        tasks = [] if scope == CURRENT and start is None else reader.tasks_since(None if scope == ALL else start)
        views = fold(tasks)
        waits = reader.waits([v.job_id for v in views if v.state is TaskState.QUEUED])
        names = reader.jobs([v.job_id for v in views if v.state is TaskState.RUNNING] + list(waits))
        hosts = sorted({w.host for w in workers})
        history = [Cost(*r) for h in hosts[:1] for r in reader.cost_history(h, TRANSCRIBE, local_model, 50)] if local_model else []
    leases = Counter(t.lease_owner or "" for t in tasks if t.state is TaskState.RUNNING)
    beats = heartbeats(workers, now, stale_after(lease_seconds), leases)
    live = [h for h in beats if not h.stale and not h.dead]
    glob = controls.get(GLOBAL_SCOPE)
    progress = snapshot(
        views, memory_usage_mb=sum(h.info.rss_mb for h in live), cpu_usage_percent=sum(h.info.cpu_percent for h in live),
        paused_reason=_paused_reason(glob, controls), state=_state(glob, live),
    )  # fmt: skip
    eta = estimate_eta(work(views, {}, predicted_seconds(views, history)), sum(h.info.slots for h in live)) if live else None
    progress = replace(progress, eta_seconds=eta if progress.remaining_tasks else 0.0)
    warning = model_warning(model, dt.date.fromtimestamp(now)) if model else None
    unowned = sum(n for owner, n in leases.items() if owner not in {h.info.owner for h in live})
    return Status(progress, beats, controls, running_jobs(views, names, now), scope, start, unowned,
                  (warning,) if warning else (), waiting_jobs(waits, names, now))  # fmt: skip


def waiting_jobs(waits: dict[int, JobWait], names: dict[int, JobInfo], now: float) -> tuple[WaitingJob, ...]:
    """The queued jobs that wait for a time or for other jobs, oldest first, with why."""
    out = []
    for job_id, wait in sorted(waits.items()):
        reason = wait_reason(wait, now)
        if reason is not None:
            info = names.get(job_id)
            out.append(WaitingJob(job_id, info.name if info else "?", reason))
    return tuple(out)


def running_jobs(views: list[JobView], names: dict[int, JobInfo], now: float) -> tuple[RunningJob, ...]:
    """The stage each running job is in, oldest first."""
    out = []
    for v in views:
        for t in v.tasks:
            if t.state is TaskState.RUNNING:
                info = names.get(v.job_id)
                seconds = max(0.0, now - (t.started_at or now))
                out.append(RunningJob(v.job_id, info.name if info else "?", t.type.value, t.attempts, seconds, t.lease_owner))
    return tuple(out)


def _state(glob: Control | None, live: list[Heartbeat]) -> str:
    """The queue's state; `stopping` only while a worker the stop request was made for is still alive."""
    if glob is not None and glob.state is ControlState.STOPPING:
        if any(glob.stops(h.info.started_at) for h in live):
            return "stopping"
    elif glob is not None and glob.state is not ControlState.RUNNING:
        return str(glob.state.value)
    return "running" if live else "stopped"


def _paused_reason(glob: Control | None, controls: dict[str, Control]) -> str | None:
    if glob is not None and glob.state is ControlState.PAUSED:
        return glob.reason or "paused"
    types = [f"{s}: {c.reason or 'paused'}" for s, c in controls.items()
             if s != GLOBAL_SCOPE and c.state is ControlState.PAUSED]  # fmt: skip
    return "; ".join(types) or None
