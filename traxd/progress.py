"""Pure: BatchProgress, its ETA and the one-line progress report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Rates:
    """success_rate and failure_rate (percent of the finished), for anything with the three counts."""

    total_tasks: int
    completed_tasks: int
    failed_tasks: int

    @property
    def counted_tasks(self) -> int:
        """The tasks a rate is out of (all of them, unless a subclass leaves some out)."""
        return self.total_tasks

    @property
    def success_rate(self) -> float:
        """Succeeded tasks as a percentage of the counted tasks."""
        return 100.0 * self.completed_tasks / self.counted_tasks if self.counted_tasks else 0.0

    @property
    def failure_rate(self) -> float:
        """Failed tasks as a percentage of the counted tasks."""
        return 100.0 * self.failed_tasks / self.counted_tasks if self.counted_tasks else 0.0


@dataclass(frozen=True)
class BatchProgress(Rates):
    """A snapshot of a batch (or of the daemon's queue): counts, resources and ETA, under the batch API's names."""

    total_tasks: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    active_tasks: int = 0
    queued_tasks: int = 0
    cancelled_tasks: int = 0
    memory_usage_mb: float = 0.0
    cpu_usage_percent: float = 0.0
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    active_workers: int = 0
    paused_reason: str | None = None
    state: str = "running"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def counted_tasks(self) -> int:
        """Tasks the rates are out of: a cancelled one was the user's choice, not a failure of Trax."""
        return max(0, self.total_tasks - self.cancelled_tasks)

    @property
    def finished_tasks(self) -> int:
        """Tasks that will not run again (succeeded, failed or cancelled)."""
        return self.completed_tasks + self.failed_tasks + self.cancelled_tasks

    @property
    def remaining_tasks(self) -> int:
        """Tasks still queued or running."""
        return max(0, self.total_tasks - self.finished_tasks)

    def as_dict(self) -> dict[str, Any]:
        """The `status --json` keys (plus success_rate, failure_rate and elapsed_seconds)."""
        return {
            "state": self.state, "total": self.total_tasks, "queued": self.queued_tasks,
            "running": self.active_tasks, "succeeded": self.completed_tasks, "failed": self.failed_tasks,
            "cancelled": self.cancelled_tasks, "active_workers": self.active_workers,
            "memory_mb": round(self.memory_usage_mb, 1), "cpu_percent": round(self.cpu_usage_percent, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "paused_reason": self.paused_reason, "success_rate": round(self.success_rate, 1),
            "failure_rate": round(self.failure_rate, 1), "elapsed_seconds": round(self.elapsed_seconds, 1),
        }  # fmt: skip


def format_eta(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `42s`, or `--` when unknown."""
    if seconds is None:
        return "--"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_line(p: BatchProgress) -> str:
    """`Progress: 45/100 (45.0% success) | Active: 8 | Failed: 2 | Memory: 512.3MB | CPU: 75.2% | ETA: 3m05s`."""
    line = (
        f"Progress: {p.completed_tasks}/{p.counted_tasks} ({p.success_rate:.1f}% success) | "
        f"Active: {p.active_tasks} | Failed: {p.failed_tasks} | "
        f"Memory: {p.memory_usage_mb:.1f}MB | CPU: {p.cpu_usage_percent:.1f}% | ETA: {format_eta(p.eta_seconds)}"
    )
    if p.paused_reason:
        line += f" | Paused: {p.paused_reason}"
    return line


@dataclass(frozen=True)
class JobWork:
    """What the ETA needs to know about one input: done or not, time spent, and how much media it holds."""

    done: bool
    seconds: float = 0.0
    media_seconds: float | None = None
    size_bytes: int | None = None
    finished_at: float = 0.0
    predicted_seconds: float | None = None  # wall seconds its queued local work is predicted to take (traxd.costs)


def media_weights(jobs: list[JobWork]) -> list[float]:
    """Each job's media seconds: known, else guessed from its size at the bytes/s seen so far, else the mean."""
    pairs = [(j.size_bytes, j.media_seconds) for j in jobs if j.size_bytes and j.media_seconds]
    total_bytes = sum(b for b, _ in pairs)
    rate = sum(s for _, s in pairs) / total_bytes if total_bytes else None  # media seconds per byte
    out: list[float | None] = []
    for j in jobs:
        if j.media_seconds:
            out.append(j.media_seconds)
        elif j.size_bytes and rate is not None:
            out.append(j.size_bytes * rate)
        else:
            out.append(None)
    known = [w for w in out if w]
    if not known:
        # Nothing measured yet: sizes (when every job has one) still weigh better than counts.
        if all(j.size_bytes for j in jobs):
            return [float(j.size_bytes or 1) for j in jobs]
        return [1.0] * len(jobs)
    mean = sum(known) / len(known)
    return [w if w else mean for w in out]


def estimate_eta(jobs: list[JobWork], slots: int, window: int = 50) -> float | None:
    """Seconds until the batch is done: its remaining media at the cost per media second of the last `window`
    finished jobs (duration-weighted, so one long file counts for what it is), on `slots` parallel slots.

    A job with a prediction of its queued local work counts for that prediction instead (this machine's history of
    runs of the model, by media length). 0 when nothing is left; None while a job left is told by neither.
    """
    weights = media_weights(jobs)
    remaining = [(j.predicted_seconds, w) for j, w in zip(jobs, weights) if not j.done]
    if not remaining:
        return 0.0
    finished = sorted((j.finished_at, j.seconds, w) for j, w in zip(jobs, weights) if j.done)
    recent = [(seconds, w) for _at, seconds, w in finished[-window:] if seconds >= 0 and w > 0]
    media = sum(w for _, w in recent)
    unpredicted = sum(w for p, w in remaining if p is None)
    if media <= 0 and unpredicted > 0:
        return None
    cost = sum(seconds for seconds, _ in recent) / media if media > 0 else 0.0  # wall s per media s in one slot
    total = unpredicted * cost + sum(p for p, _ in remaining if p is not None)
    return total / max(1, min(slots, len(remaining)))


def progress_due(last: float | None, now: float, interval: float) -> bool:
    """True when a progress report is due: never reported yet, or `interval` has passed since the last one."""
    return last is None or now - last >= interval
