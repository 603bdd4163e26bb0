"""Batch inputs: find media files, name the batch's job group, and turn files and URLs into durable jobs.

`discover` is a small private stand-in for `traxd.ingest.scan` (same filters: hidden, partial, symlinks,
non-regular files); switch to the shared scanner once it lands on main.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from traxd.queue.store import Store
from traxd.types import Job, NewJob, NewTask, TaskState, TaskType

MEDIA_EXTENSIONS = frozenset(
    ".mp3 .wav .m4a .aac .flac .ogg .oga .opus .wma .aif .aiff .amr .mp4 .m4v .mov .mkv .webm .avi .wmv .flv .mpeg "
    ".mpg .mpga .3gp .ts .mts".split()
)
PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", "~", ".ytdl")
GROUP_MAX = 128


def is_candidate(entry: os.DirEntry[str]) -> bool:
    """A visible, complete, regular (not symlinked) media file."""
    name = entry.name
    if name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES):
        return False
    if not entry.is_file(follow_symlinks=False):
        return False  # symlinks, FIFOs, sockets, devices and folders
    return Path(name).suffix.lower() in MEDIA_EXTENSIONS


def discover(root: Path, recursive: bool = True, exclude: Path | None = None) -> list[Path]:
    """Media files under `root` (or `root` itself when it is a file), sorted for a stable order."""
    if root.is_file():
        return [root]
    return sorted(_walk(root, recursive, exclude))


def _walk(folder: Path, recursive: bool, exclude: Path | None) -> Iterator[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            if recursive and (exclude is None or Path(entry.path) != exclude):
                yield from _walk(Path(entry.path), recursive, exclude)
        elif is_candidate(entry):
            yield Path(entry.path)


def sha256_file(path: Path) -> str:
    """The content hash that identifies a file (streamed: memory stays flat)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def group_for(root: Path) -> str:
    """The job group of a batch over `root`: stable for the same absolute path, within the column's 128 chars."""
    text = str(root.resolve())
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    head = f"batch:{digest}:"
    return head + text[-(GROUP_MAX - len(head)) :]


def is_url(text: str) -> bool:
    """True for something with a URL scheme (only http(s) will run; others fail with a clear reason)."""
    parsed = urlparse(text)
    return bool(parsed.scheme) and len(parsed.scheme) > 1 and bool(parsed.netloc or parsed.path)


def url_first_task(url: str) -> TaskType:
    """DOWNLOAD for a direct media URL (path ends in a media extension), YOUTUBE (yt-dlp) for the rest."""
    suffix = Path(urlparse(url).path).suffix.lower()
    return TaskType.DOWNLOAD if suffix in MEDIA_EXTENSIONS else TaskType.YOUTUBE


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


@dataclass(frozen=True)
class Input:
    """One thing to process: a file (with its hash) or a URL, and where its outputs go."""

    source: str
    first: TaskType
    payload: dict[str, Any]
    dedupe_key: str
    output_dir: str
    size: int | None = None


def file_input(path: Path, output_dir: Path, first: TaskType = TaskType.PREPROCESS) -> Input:
    """A local file as a job input (hashing it); the dedupe key is the BRIEF's file:<sha256>:<output dir>."""
    path = path.resolve()
    digest = sha256_file(path)
    out = str(output_dir.resolve())
    payload = {"path": str(path), "sha256": digest}
    return Input(str(path), first, payload, f"file:{digest}:{out}", out, path.stat().st_size)


def url_input(url: str, output_dir: Path) -> Input:
    """A URL as a job input."""
    out = str(output_dir.resolve())
    return Input(url, url_first_task(url), {"url": url}, f"url:{url}:{out}", out)


@dataclass(frozen=True)
class Added:
    """The job an input landed in, its first task's id, and what happened: created, reopened, existing or skipped."""

    job: Job
    task_id: int
    status: str


def _new(item: Input, group: str, options: dict[str, Any], priority: int) -> tuple[NewJob, NewTask]:
    name = Path(urlparse(item.source).path).stem if is_url(item.source) else Path(item.source).stem
    job = NewJob(item.source, name or "download", item.output_dir, group, options)
    # A local file can only be read on this machine; a URL may be fetched by any daemon sharing the queue.
    affinity = None if is_url(item.source) else socket.gethostname()
    return job, NewTask(item.first, item.payload, priority=priority, dedupe_key=item.dedupe_key, affinity=affinity)


def enqueue(store: Store, item: Input, group: str, options: dict[str, Any], priority: int, into: Enqueued) -> Added:
    """Create the input's job in `group`; an existing job is reused: done -> skipped, unfinished -> adopted."""
    new_job, first = _new(item, group, options, priority)
    job, tasks, created = store.create_job(new_job, [first])
    return _settle(store, item, job, tasks[0].id if tasks else 0, created, (group, options), into)


def enqueue_many(
    store: Store, items: list[Input], group: str, options: dict[str, Any], priority: int, into: Enqueued
) -> list[Added]:
    """enqueue() for many inputs, with the new jobs created in one bulk transaction."""
    rows = store.create_jobs([_new(item, group, options, priority) for item in items])
    return [_settle(store, item, job, task.id, created, (group, options), into)
            for item, (job, task, created) in zip(items, rows)]  # fmt: skip


def _settle(store: Store, item: Input, job: Job, task_id: int, created: bool, target: tuple[str, dict[str, Any]],
            into: Enqueued) -> Added:  # fmt: skip
    """Classify what happened to one input; an unfinished job is adopted into the group and takes the new options."""
    group, options = target
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
        if item.size is not None:
            into.sizes[job.id] = item.size
    return Added(job, task_id, status)


def option_changes(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """The option names whose values differ (an option left out counts as not given)."""
    return {k for k in set(old) | set(new) if old.get(k) is not None or new.get(k) is not None
            if old.get(k) != new.get(k)}  # fmt: skip


def _finished_ok(store: Store, job: Job) -> bool:
    """True when every task of the job succeeded (nothing left to do for it)."""
    return all(t.state is TaskState.SUCCEEDED for t in store.tasks_of_job(job.id))
