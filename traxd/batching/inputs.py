"""Batch glue over `traxd.ingest` (which finds, filters, hashes, dedupes and classifies every input): the batch's job
group, and what re-adding an input that already has a job means for a batch (adopt, reopen, or already done)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traxd.ingest.enqueue import Queued, Skipped
from traxd.queue.store import Store
from traxd.types import Job, Task, TaskState

GROUP_MAX = 128


def group_for(root: Path) -> str:
    """The job group of a batch over `root`: stable for the same absolute path, within the column's 128 chars."""
    text = str(root.resolve())
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    head = f"batch:{digest}:"
    return head + text[-(GROUP_MAX - len(head)) :]


@dataclass
class Enqueued:
    """What adding inputs did: the jobs (by id), their sizes, and how many were new, reopened or already done."""

    jobs: dict[int, Job] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)
    created: int = 0
    reopened: int = 0
    existing: int = 0
    skipped: int = 0
    updated: int = 0  # unfinished inputs that take the new options
    kept: int = 0  # finished inputs that ran with other options and keep their results
    changed: set[str] = field(default_factory=set)  # the option names that differ
    ignored: list[Skipped] = field(default_factory=list)  # files found that are not inputs, with why


@dataclass(frozen=True)
class Added:
    """The job an input landed in, its first task, and what happened: created, reopened, existing or skipped."""

    job: Job
    task: Task
    status: str
    source: str


def settle(store: Store, queued: Queued, target: tuple[str, dict[str, Any]], into: Enqueued) -> Added:
    """What adding one input meant: a new job, or an existing one adopted into this group (taking the new options
    when unfinished), or one already done (kept)."""
    group, options = target
    job, created = queued.job, queued.created
    changed = set() if created else option_changes(job.options, options)
    status = "created"
    if not created and not _finished_ok(store, job):
        requeued = store.reopen_job(job.id, group, options if changed else None)
        status = "reopened" if requeued > 0 or job.group != group else "existing"
        job = store.get_job(job.id) or job
        into.updated += int(bool(changed))
        into.changed |= changed
    elif not created:
        status = "existing" if job.group == group else "skipped"
        into.kept += int(bool(changed))
        into.changed |= changed
    setattr(into, status, getattr(into, status) + 1)
    if status != "skipped":
        into.jobs[job.id] = job
        if "sha256" in queued.task.payload:  # a file: its size stands in for its duration in the ETA
            into.sizes[job.id] = _size(queued.source)
    return Added(job, queued.task, status, queued.source)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def option_changes(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """The option names whose values differ (an option left out counts as not given)."""
    return {k for k in set(old) | set(new) if old.get(k) is not None or new.get(k) is not None
            if old.get(k) != new.get(k)}  # fmt: skip


def _finished_ok(store: Store, job: Job) -> bool:
    """True when every task of the job succeeded (nothing left to do for it)."""
    return all(t.state is TaskState.SUCCEEDED for t in store.tasks_of_job(job.id))
