"""What `traxctl status` reports: progress, ETA, heartbeats (stale ones flagged) and why the queue is paused."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from traxd.daemon.owner import Owner, owner_is_dead
from traxd.models_table import model_warning
from traxd.progress import BatchProgress, from_counts
from traxd.queue.store import Store
from traxd.types import GLOBAL_SCOPE, Control, ControlState, WorkerInfo

ETA_WINDOW = 600.0


@dataclass(frozen=True)
class Heartbeat:
    """A daemon's heartbeat row and whether it is still alive."""

    info: WorkerInfo
    age: float
    stale: bool
    dead: bool


@dataclass(frozen=True)
class Status:
    """Everything `status` prints."""

    progress: BatchProgress
    heartbeats: list[Heartbeat]
    controls: dict[str, Control]
    warnings: tuple[str, ...] = ()

    @property
    def type_pauses(self) -> dict[str, str | None]:
        """Task types paused on their own (e.g. after an authentication failure), with the reason."""
        return {s: c.reason for s, c in self.controls.items() if s != GLOBAL_SCOPE and c.state is ControlState.PAUSED}

    def as_dict(self) -> dict[str, Any]:
        """The spec's `status --json` keys, plus daemons and per-type pauses."""
        out = self.progress.as_dict()
        out["paused_types"] = self.type_pauses
        out["warnings"] = list(self.warnings)
        out["daemons"] = [
            {"owner": h.info.owner, "host": h.info.host, "pid": h.info.pid, "started_at": h.info.started_at,
             "last_seen": h.info.last_seen, "age_seconds": round(h.age, 1), "active_tasks": h.info.active_tasks,
             "slots": h.info.slots, "rss_mb": round(h.info.rss_mb, 1), "cpu_percent": round(h.info.cpu_percent, 1),
             "stale": h.stale, "dead": h.dead}
            for h in self.heartbeats
        ]  # fmt: skip
        return out


def heartbeats(workers: list[WorkerInfo], now: float, stale_after: float) -> list[Heartbeat]:
    """Flag rows older than `stale_after` seconds, and same-host rows whose process is gone."""
    host = Owner.current().host
    return [
        Heartbeat(w, now - w.last_seen, now - w.last_seen > stale_after, owner_is_dead(w.owner, host))
        for w in workers
    ]


def collect(store: Store, lease_seconds: float, model: str | None = None) -> Status:
    """Read counts, controls and heartbeats (each its own short read) into a Status; warn about `model`."""
    now = store.clock.now()
    counts = store.counts()
    controls = store.controls()
    beats = heartbeats(store.workers(), now, stale_after=lease_seconds + 5)
    live = [h for h in beats if not h.stale and not h.dead]
    glob = controls.get(GLOBAL_SCOPE)
    state = _state(glob, live)
    progress = from_counts(
        counts,
        memory_usage_mb=sum(h.info.rss_mb for h in live),
        cpu_usage_percent=sum(h.info.cpu_percent for h in live),
        active_workers=sum(h.info.active_tasks for h in live),
        paused_reason=_paused_reason(glob, controls),
        state=state,
    )
    eta = estimate_eta(progress.remaining_tasks, store.finished_since(now - ETA_WINDOW), ETA_WINDOW)
    progress = _with_eta(progress, eta if live else None)
    warning = model_warning(model, dt.date.fromtimestamp(now)) if model else None
    return Status(progress, beats, controls, (warning,) if warning else ())


def _state(glob: Control | None, live: list[Heartbeat]) -> str:
    """The queue's state; `stopping` only while a worker the stop request was made for is still alive."""
    if glob is not None and glob.state is ControlState.STOPPING:
        if any(glob.stops(h.info.started_at) for h in live):
            return "stopping"
    elif glob is not None and glob.state is not ControlState.RUNNING:
        return glob.state.value
    return "running" if live else "stopped"


def _paused_reason(glob: Control | None, controls: dict[str, Control]) -> str | None:
    if glob is not None and glob.state is ControlState.PAUSED:
        return glob.reason or "paused"
    types = [f"{s}: {c.reason or 'paused'}" for s, c in controls.items()
             if s != GLOBAL_SCOPE and c.state is ControlState.PAUSED]  # fmt: skip
    return "; ".join(types) or None


def estimate_eta(remaining: int, finished_recently: int, window: float) -> float | None:
    """Seconds left at the recent finishing rate; None when nothing finished lately."""
    if remaining == 0:
        return 0.0
    if finished_recently <= 0:
        return None
    return remaining * window / finished_recently


def _with_eta(p: BatchProgress, eta: float | None) -> BatchProgress:
    return replace(p, eta_seconds=eta)
