"""What the dashboard shows, as plain data: built from the read-only queries, shared by the pages and /api."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traxd.exports import FORMATS
from traxd.job_waits import wait_reason
from traxd.queue.reads import JobInfo, Reader
from traxd.queue.transitions import stale_after
from traxd.types import GLOBAL_SCOPE, ControlState, Task, TaskState, TaskType

BUCKET = 60.0
BUCKETS = 60
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
PAGE = 50


def summary(reader: Reader, now: float) -> dict[str, Any]:
    """Job counts by state, tasks finished per minute over the last hour, and the controls."""
    with reader.snapshot():
        counts = reader.job_counts()
        first = int(now // BUCKET) - BUCKETS + 1
        per = reader.finished_per_bucket(first * BUCKET, BUCKET)
        controls = reader.controls()
    series = [{"at": (first + i) * BUCKET, "succeeded": per.get(first + i, (0, 0))[0],
               "failed": per.get(first + i, (0, 0))[1]} for i in range(BUCKETS)]  # fmt: skip
    glob = controls.get(GLOBAL_SCOPE)
    return {
        "jobs": {s: counts.get(s, 0) for s in STATES},
        "total": sum(counts.values()),
        "throughput": series,
        "last_minute": series[-2]["succeeded"] if len(series) > 1 else 0,
        "queue": {"state": glob.state.value if glob else ControlState.RUNNING.value, "reason": glob.reason if glob else None},
        "paused_types": {s: c.reason for s, c in controls.items() if s != GLOBAL_SCOPE and c.state is ControlState.PAUSED},
        "types": [t.value for t in TaskType],
    }


def job_row(job: JobInfo, state: str, stage: str | None, waiting: str | None = None) -> dict[str, Any]:
    """One line of the jobs table; `waiting`: why a queued job is not started yet (its time, its dependencies)."""
    return {"id": job.id, "name": job.name, "source": job.source, "output_dir": job.output_dir,
            "created_at": job.created_at, "state": state, "stage": stage, "waiting": waiting}  # fmt: skip


def waiting_reasons(reader: Reader, rows: list[tuple[JobInfo, str, str | None]], now: float) -> dict[int, str | None]:
    """Why each queued job of these rows waits (scheduled for …, waiting for job N …), from one read of its deps."""
    queued = {info.id: info for info, state, _ in rows if state == "queued"}
    waits = reader.waits(list(queued), queued) if queued else {}
    return {job_id: wait_reason(wait, now) for job_id, wait in waits.items()}


def jobs(reader: Reader, state: str | None, inbox: str | None, task_type: str | None, before: int | None) -> dict[str, Any]:
    """A page of jobs, newest first, and the id the next page starts before."""
    rows = reader.page_jobs(state, inbox, task_type, before, PAGE + 1)
    more = len(rows) > PAGE
    why = waiting_reasons(reader, rows[:PAGE], time.time())
    page = [job_row(*r, why.get(r[0].id)) for r in rows[:PAGE]]
    return {"jobs": page, "next_before": page[-1]["id"] if more and page else None}


def task_dict(t: Task) -> dict[str, Any]:
    """A task for the job page (its payload and result stay out: they may hold paths and long texts)."""
    return {"id": t.id, "type": t.type.value, "state": t.state.value, "attempts": t.attempts,
            "max_retries": t.max_retries, "created_at": t.created_at, "started_at": t.started_at,
            "finished_at": t.finished_at, "lease_owner": t.lease_owner, "lease_expires_at": t.lease_expires_at,
            "error_kind": t.error_kind, "error_message": t.error_message, "errors": t.errors}  # fmt: skip


def job(reader: Reader, job_id: int) -> dict[str, Any] | None:
    """A job in full: its tasks, attempts, error history, outputs and transcript segments."""
    with reader.snapshot():
        info = reader.jobs([job_id]).get(job_id)
        tasks = reader.tasks_of_job(job_id) if info else []
    if info is None:
        return None
    state = reader.job_states([job_id]).get(job_id, ("succeeded", None))[0]
    outputs, segments = outputs_of(info, tasks)
    stage = tasks[-1].type.value if tasks else None
    why = waiting_reasons(reader, [(info, state, stage)], time.time()).get(job_id)
    return {**job_row(info, state, stage, why), "tasks": [task_dict(t) for t in tasks],
            "outputs": sorted(outputs), "segments": segments, "has_media": media_path(info) is not None,
            "exports": list(FORMATS) if "json" in outputs and state not in ("queued", "running") else []}  # fmt: skip


def outputs_of(info: JobInfo, tasks: list[Task]) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """The job's output files that really are inside its outbox, and the transcript's timed segments."""
    found: dict[str, Path] = {}
    for t in tasks:
        if t.type is TaskType.TRANSCRIBE and t.state is TaskState.SUCCEEDED and t.result:
            for kind, path in (t.result.get("outputs") or {}).items():
                safe = inside_outbox(info, path)
                if safe is not None:
                    found[str(kind)] = safe
    segments: list[dict[str, Any]] = []
    if "json" in found:
        try:
            doc = json.loads(found["json"].read_text(encoding="utf-8"))
            segments = [{"start": float(s.get("start", 0)), "end": float(s.get("end", 0)), "text": str(s.get("text", "")),
                         "speaker": s.get("speaker")} for s in doc.get("segments", [])]  # fmt: skip
        except (OSError, ValueError, AttributeError, TypeError):
            segments = []
    return found, segments


def inside_outbox(info: JobInfo, path: Any) -> Path | None:
    """`path` resolved, if it is a regular file inside the job's outbox (no traversal, no symlink out)."""
    if not info.output_dir or not isinstance(path, str):
        return None
    outbox = Path(info.output_dir).resolve()
    target = Path(path).resolve()
    if outbox not in target.parents or not target.is_file():
        return None
    return target


def media_path(info: JobInfo) -> Path | None:
    """The job's original local file, if it still exists (URL jobs have none)."""
    if "://" in info.source:
        return None
    path = Path(info.source)
    return path if path.is_absolute() and path.is_file() else None


def failed(reader: Reader, before: int | None) -> dict[str, Any]:
    """Failed jobs, newest first, each with the reason its failing task gave."""
    page = jobs(reader, "failed", None, None, before)
    for row in page["jobs"]:
        bad = [t for t in reader.tasks_of_job(row["id"]) if t.state is TaskState.FAILED]
        row["reason"] = bad[-1].error_message if bad else None
        row["failed_type"] = bad[-1].type.value if bad else None
    return page


def daemons(reader: Reader, now: float, lease_seconds: float) -> dict[str, Any]:
    """Heartbeats, and the leases each daemon holds."""
    with reader.snapshot():
        workers, running = reader.workers(), reader.running_tasks()
        names = reader.jobs([t.job_id for t in running if t.job_id is not None])
    leases = [{"task_id": t.id, "job_id": t.job_id, "name": names[t.job_id].name if t.job_id in names else None,
               "type": t.type.value, "owner": t.lease_owner, "attempt": t.attempts,
               "expires_in": None if t.lease_expires_at is None else round(t.lease_expires_at - now, 1)}
              for t in running]  # fmt: skip
    out = []
    for w in workers:
        age = now - w.last_seen
        held = [x for x in leases if x["owner"] == w.owner]
        out.append({"owner": w.owner, "host": w.host, "pid": w.pid, "started_at": w.started_at, "last_seen": w.last_seen,
                    "age_seconds": round(age, 1), "stale": age > stale_after(lease_seconds), "slots": w.slots, "busy": len(held),
                    "rss_mb": round(w.rss_mb, 1), "cpu_percent": round(w.cpu_percent, 1), "leases": held})  # fmt: skip
    owners = {w.owner for w in workers}
    return {"daemons": out, "unowned_leases": [x for x in leases if x["owner"] not in owners]}


def search_view(store: Any, query: str, limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
    """Ranked transcript hits (`traxctl search`), each snippet split into plain and matching parts; or the error."""
    from traxd.searchquery import QueryError, make_filters, parse

    try:
        hits = store.search_archive(parse(query), make_filters(None, None, None, None, limit))
    except QueryError as exc:
        return [], str(exc)
    out = []
    for h in hits:
        parts, at = [], 0
        for a, b in h.marks:
            parts += [{"text": h.snippet[at:a], "match": False}, {"text": h.snippet[a:b], "match": True}]
            at = b
        parts.append({"text": h.snippet[at:], "match": False})
        out.append({"name": h.name, "source": h.source, "job_id": h.job_id, "start": h.start, "end": h.end,
                    "speaker": h.speaker, "language": h.language, "score": h.score, "parts": parts})  # fmt: skip
    return out, None


@dataclass(frozen=True)
class Clock:
    """The dashboard's time source (tests may pin it)."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()
