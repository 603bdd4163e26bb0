"""Turn a complete file or a URL into a job, through Store methods only (dedupe and enqueue in one transaction)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from traxd.errors import UserError
from traxd.ingest.scan import Stamp, is_url_file, sha256_file
from traxd.logging import get_logger
from traxd.queue.store import Store
from traxd.types import PRIORITY_NORMAL, IngestedFile, NewJob, NewTask, Task, TaskType
from traxd.urls import classify_url, parse_url_file

log = get_logger("ingest")

_KIND_TYPES = {"youtube": TaskType.YOUTUBE, "download": TaskType.DOWNLOAD}


@dataclass(frozen=True)
class Queued:
    """One input and what the queue made of it."""

    source: str
    task: Task
    created: bool


@dataclass
class Ingestor:
    """Creates jobs for files and URLs; every create is one transaction with its dedupe check."""

    store: Store
    group: str = "daemon"
    priority: int = PRIORITY_NORMAL
    options: dict[str, Any] = field(default_factory=dict)
    on_queued: Callable[[Queued], None] | None = None
    # The host whose disk holds the inbox: its file tasks run only there (None with shared storage).
    affinity: str | None = None
    # Options a watch folder sets for its files, by its outbox's real path (over `options`).
    folder_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options_for(self, outbox: Path) -> dict[str, Any]:
        """The job options of an input going to `outbox`."""
        extra = self.folder_options.get(str(outbox))
        return {**self.options, **extra} if extra else self.options

    def ingest_path(self, path: Path, outbox: Path, sha256: str | None = None) -> list[Queued]:
        """A media file -> one PREPROCESS job; a .url/.webloc/.txt -> one job per URL."""
        if is_url_file(path):
            return self.ingest_url_file(path, outbox)
        sha = sha256 or sha256_file(path)
        job = NewJob(source=str(path), name=path.stem, output_dir=str(outbox), group=self.group,
                     options=self.options_for(outbox))
        first = NewTask(TaskType.PREPROCESS, {"path": str(path), "sha256": sha}, priority=self.priority,
                        dedupe_key=f"file:{sha}:{outbox}", affinity=self.affinity)  # fmt: skip
        _job, tasks, created = self.store.create_job(job, [first])
        return [self._done(Queued(str(path), tasks[0], created), "file_ingested", sha256=sha)]

    def ingest_files(self, files: Sequence[tuple[Path, Path, str]], stamps: Sequence[Stamp] = ()) -> list[Queued]:
        """Many hashed media files (path, outbox, sha256) in one transaction: the watcher's bulk path.

        With `stamps` (one per file) the files are remembered in that transaction, so a restart skips them.
        """
        items = []
        for path, outbox, sha in files:
            job = NewJob(source=str(path), name=path.stem, output_dir=str(outbox), group=self.group,
                         options=self.options_for(outbox))  # fmt: skip
            task = NewTask(TaskType.PREPROCESS, {"path": str(path), "sha256": sha}, priority=self.priority,
                           dedupe_key=f"file:{sha}:{outbox}", affinity=self.affinity)  # fmt: skip
            items.append((job, task))
        known = [self._file(path, outbox, stamp, sha) for (path, outbox, sha), stamp in zip(files, stamps)]
        results = self.store.create_jobs(items, known)
        return [self._done(Queued(str(path), task, created), "file_ingested", sha256=sha)
                for (path, _, sha), (_job, task, created) in zip(files, results)]  # fmt: skip

    def remember(self, path: Path, outbox: Path, stamp: Stamp) -> None:
        """Remember a file queued on its own (a URL file) with the stamp it had."""
        self.store.remember_files([self._file(path, outbox, stamp, None)])

    def remembered(self) -> dict[Path, tuple[Path, Stamp]]:
        """path -> (outbox, stamp) of every inbox file this host has queued before."""
        return {Path(f.path): (Path(f.outbox), Stamp(f.size, f.mtime_ns, f.inode))
                for f in self.store.ingested_files(self.affinity or "")}  # fmt: skip

    def _file(self, path: Path, outbox: Path, stamp: Stamp, sha: str | None) -> IngestedFile:
        return IngestedFile(self.affinity or "", str(path), str(outbox), stamp.size, stamp.mtime_ns, stamp.ino, sha)

    def ingest_url(self, url: str, outbox: Path, origin: str | None = None) -> Queued:
        """One URL -> a YOUTUBE or DOWNLOAD job; another scheme -> a job whose task failed with the reason."""
        kind, reason = classify_url(url)
        job = NewJob(source=url, name=url_name(url), output_dir=str(outbox), group=self.group,
                     options=self.options_for(outbox))
        key = f"url:{url}:{outbox}"
        if kind not in _KIND_TYPES:
            task = NewTask(TaskType.DOWNLOAD, {"url": url}, priority=self.priority, dedupe_key=key)
            _job, failed, created = self.store.create_failed_job(job, task, f"rejected {url}: {reason}")
            return self._done(Queued(url, failed, created), "url_rejected", reason=reason, origin=origin)
        task = NewTask(_KIND_TYPES[kind], {"url": url}, priority=self.priority, dedupe_key=key)
        _job, tasks, created = self.store.create_job(job, [task])
        return self._done(Queued(url, tasks[0], created), "url_ingested", kind=kind, origin=origin)

    def ingest_url_file(self, path: Path, outbox: Path) -> list[Queued]:
        """Queue every URL of a URL file; a file without any is recorded as a failed task saying so."""
        try:
            urls, problem = parse_url_file(path), None
        except UserError as exc:  # malformed plist, not UTF-8: the user still sees why
            urls, problem = [], str(exc)
        if urls:
            return [self.ingest_url(url, outbox, origin=str(path)) for url in urls]
        sha = sha256_file(path)
        job = NewJob(source=str(path), name=path.stem, output_dir=str(outbox), group=self.group,
                     options=self.options_for(outbox))
        task = NewTask(TaskType.PREPROCESS, {"path": str(path), "sha256": sha}, priority=self.priority,
                       dedupe_key=f"file:{sha}:{outbox}")  # fmt: skip
        reason = problem or f"{path.name} holds no http(s) URL (a {path.suffix} file in an inbox must list URLs, one a line)"
        _job, failed, created = self.store.create_failed_job(job, task, reason)
        return [self._done(Queued(str(path), failed, created), "url_file_empty")]

    def record_unreadable(self, path: Path, outbox: Path, error: OSError, stamp_key: str) -> Queued:
        """A file we cannot read still ends as a failed task with its reason (nothing is silently dropped)."""
        job = NewJob(source=str(path), name=path.stem, output_dir=str(outbox), group=self.group,
                     options=self.options_for(outbox))
        task = NewTask(TaskType.PREPROCESS, {"path": str(path)}, priority=self.priority,
                       dedupe_key=f"unreadable:{path}:{stamp_key}:{outbox}")  # fmt: skip
        reason = f"cannot read {path}: {error.strerror or error} (fix its permissions, then `traxctl retry`)"
        _job, failed, created = self.store.create_failed_job(job, task, reason)
        return self._done(Queued(str(path), failed, created), "file_unreadable", error=str(error))

    def _done(self, queued: Queued, event: str, **fields: Any) -> Queued:
        name = event if queued.created else "ingest_duplicate"
        log.info(name, source=queued.source, task_id=queued.task.id, job_id=queued.task.job_id, **fields)
        if self.on_queued is not None:
            self.on_queued(queued)
        return queued


def url_name(url: str) -> str:
    """A readable output name for a URL: its last path segment, else its host."""
    parts = urlsplit(url)
    last = Path(parts.path).stem if parts.path not in ("", "/") else ""
    return (last or parts.hostname or "url")[:200]
