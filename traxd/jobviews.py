"""Pure: fold task rows (a batch's, or the queue's current work) into per-input (job) states, the progress snapshot and
the ETA inputs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from traxd.costs import Cost, predict
from traxd.progress import BatchProgress, JobWork
from traxd.types import Task, TaskState, TaskType

# A job's state from its tasks, most pressing first.
_ORDER = (TaskState.RUNNING, TaskState.QUEUED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SUCCEEDED)


@dataclass(frozen=True)
class JobView:
    """One input of the batch as the user sees it: its state, the time its tasks ran, its media length."""

    job_id: int
    state: TaskState
    tasks: tuple[Task, ...]
    seconds: float
    media_seconds: float | None
    finished_at: float


def job_state(tasks: list[Task]) -> TaskState:
    """Running if any task runs, queued if any waits, else failed/cancelled if any did, else succeeded."""
    states = {t.state for t in tasks}
    return next((s for s in _ORDER if s in states), TaskState.SUCCEEDED)


def media_seconds(tasks: list[Task]) -> float | None:
    """The media duration a PREPROCESS or TRANSCRIBE result reports (read defensively)."""
    for task in tasks:
        result = task.result or {}
        for value in (result.get("duration"), (result.get("quality") or {}).get("duration")):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
    return None


def fold(tasks: list[Task]) -> list[JobView]:
    """Group task rows by job, oldest job first."""
    by_job: dict[int, list[Task]] = defaultdict(list)
    for task in tasks:
        by_job[task.job_id if task.job_id is not None else -task.id].append(task)
    out = []
    for job_id in sorted(by_job):
        ts = sorted(by_job[job_id], key=lambda t: t.id)
        ran = [t for t in ts if t.state.terminal and t.started_at is not None and t.finished_at is not None]
        seconds = sum(max(0.0, (t.finished_at or 0.0) - (t.started_at or 0.0)) for t in ran)
        finished = max((t.finished_at or 0.0 for t in ts), default=0.0)
        out.append(JobView(job_id, job_state(ts), tuple(ts), seconds, media_seconds(ts), finished))
    return out


def work(views: list[JobView], sizes: dict[int, int], predicted: dict[int, float] | None = None) -> list[JobWork]:
    """ETA inputs: done or not, time spent, media seconds, size and predicted remaining seconds of each job."""
    guess = predicted or {}
    return [JobWork(v.state.terminal, v.seconds, v.media_seconds, sizes.get(v.job_id), v.finished_at, guess.get(v.job_id))
            for v in views]  # fmt: skip


def snapshot(views: list[JobView], skipped: int = 0, **rest: Any) -> BatchProgress:
    """A BatchProgress counting inputs (jobs): inputs already done elsewhere count as completed."""
    count = {s: 0 for s in TaskState}
    for v in views:
        count[v.state] += 1
    running = sum(1 for v in views for t in v.tasks if t.state is TaskState.RUNNING)
    return BatchProgress(
        total_tasks=len(views) + skipped, completed_tasks=count[TaskState.SUCCEEDED] + skipped,
        failed_tasks=count[TaskState.FAILED], active_tasks=count[TaskState.RUNNING],
        queued_tasks=count[TaskState.QUEUED], cancelled_tasks=count[TaskState.CANCELLED],
        active_workers=running, **rest,
    )  # fmt: skip


def types_waiting(views: list[JobView]) -> set[TaskType]:
    """Task types that still have queued tasks (for explaining a batch that ended with work left)."""
    return {t.type for v in views for t in v.tasks if t.state is TaskState.QUEUED}


def predicted_seconds(views: list[JobView], history: list[Cost]) -> dict[int, float]:
    """Predicted wall seconds of each queued job whose media length is known (its local TRANSCRIBE waits)."""
    out = {}
    for v in views:
        guess = predict(history, v.media_seconds) if v.state is TaskState.QUEUED and v.media_seconds else None
        if guess is not None:
            out[v.job_id] = guess.wall_seconds
    return out
