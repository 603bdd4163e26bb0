"""Turn an input (a complete file or a URL) into a job, through Store methods only (dedupe and enqueue in one
transaction): the one path of the inbox, `traxctl add`, `trax batch` and the API, so all four name, hash, dedupe
and classify an input the same way and skip what is not one for the same reasons."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from traxd.errors import UserError
from traxd.ingest.scan import GONE, IGNORED, Stamp, sha256_file, skip_reason, stamp_of
from traxd.logging import get_logger
from traxd.queue.store import Store
from traxd.schedule import Window, next_open
from traxd.types import (
    PRIORITY_NORMAL,
    IngestedFile,
    Job,
    NewJob,
    NewTask,
    Task,
    TaskType,
)
from traxd.urls import classify_url, is_url_file, parse_url_file, task_type_for

log = get_logger("ingest")
NOT_URL_LIST = "not a list of URLs"


@dataclass(frozen=True)
class Queued:
    """One input and what the queue made of it (`created` False: the same input was queued before)."""

    source: str
    task: Task
    created: bool
    job: Job


@dataclass(frozen=True)
class Skipped:
    """A file that is not an input, and why (nothing was written for it)."""

    source: str
    reason: str


Outcome = Queued | Skipped


def file_key(sha256: str, outbox: Path | str) -> str:
    """The dedupe key of a file: the same content going to the same outbox is one job, whatever its name."""
    return f"file:{sha256}:{outbox}"


def url_key(url: str, outbox: Path | str) -> str:
    """The dedupe key of a URL going to an outbox."""
    return f"url:{url}:{outbox}"


@dataclass
class Ingestor:
    """Creates jobs for files and URLs; every create is one transaction with its dedupe check."""

    store: Store
    group: str = "daemon"
    priority: int = PRIORITY_NORMAL
    options: dict[str, Any] = field(default_factory=dict)
    on_queued: Callable[[Queued], None] | None = None
    on_skipped: Callable[[Skipped], None] | None = None
    # The host whose disk holds the inbox: its file tasks run only there (None with shared storage).
    affinity: str | None = None
    # Options a watch folder sets for its files, by its outbox's real path (over `options`).
    folder_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A watch folder's own active hours, by its outbox's real path: its files are queued at once (nothing is lost)
    # but start only when the window is open (their first task's run_after).
    folder_windows: dict[str, Window] = field(default_factory=dict)
    # The stage a media file starts at (the API may start one at TRANSCRIBE, which preprocesses inline).
    file_stage: TaskType = TaskType.PREPROCESS
    # An inbox records a complete file that is not an input (not media, a text without URLs) as a failed task with
    # the reason: every file that entered an inbox ends as a transcript or a failed task. Commands and the API skip
    # such a file and tell their caller instead. Hidden, partial, temporary, empty files and links: always skipped.
    record_rejected: bool = False
    # When its jobs may start (`--at` / `--not-before`, epoch seconds; None = at once) and the jobs they wait for.
    not_before: float | None = None
    after: tuple[int, ...] = ()

    def options_for(self, outbox: Path) -> dict[str, Any]:
        """The job options of an input going to `outbox`."""
        extra = self.folder_options.get(str(outbox))
        return {**self.options, **extra} if extra else self.options

    def start_at(self, outbox: str) -> float | None:
        """When an input going to `outbox` may start: its folder window's next opening, None for now."""
        window = self.folder_windows.get(outbox)
        return None if window is None else next_open(window, self.store.clock.now())

    def ingest_path(self, path: Path, outbox: Path) -> list[Outcome]:
        """A media file -> one job; a .url/.webloc/.txt -> one job per URL; anything else -> not an input, with why."""
        return self.ingest_paths([(path, outbox)])

    def ingest_paths(self, items: Sequence[tuple[Path, Path]]) -> list[Outcome]:
        """ingest_path for many (path, outbox): the media files are hashed, then created in one transaction."""
        slots: list[list[Outcome] | None] = []
        hashed: list[tuple[Path, Path, str]] = []
        for path, outbox in items:
            reason = skip_reason(path)
            if reason or is_url_file(path):
                slots.append([self.not_input(path, outbox, reason)] if reason else self.ingest_url_file(path, outbox))
                continue
            try:
                hashed.append((path, outbox, sha256_file(path)))
                slots.append(None)
            except PermissionError as exc:
                slots.append([self.record_unreadable(path, outbox, exc)])
            except FileNotFoundError:  # gone since it was looked at
                slots.append([self.skip(path, GONE)])
        files = iter(self.ingest_files(hashed))
        return [outcome for slot in slots for outcome in (slot if slot is not None else [next(files)])]

    def ingest_files(self, files: Sequence[tuple[Path, Path, str]], stamps: Sequence[Stamp] = ()) -> list[Queued]:
        """Many hashed media files (path, outbox, sha256) in one transaction: the bulk path of the inbox and batches.

        With `stamps` (one per file) the files are remembered in that transaction, so a restart skips them.
        """
        real = {outbox: os.path.realpath(outbox) for outbox in {outbox for _, outbox, _ in files}}
        items = [self._file_job(path, real[outbox], sha) for path, outbox, sha in files]
        known = [self._file(path, outbox, stamp, sha) for (path, outbox, sha), stamp in zip(files, stamps)]
        results = self.store.create_jobs(items, known)
        return [self._done(Queued(str(path), task, created, job), "file_ingested", sha256=sha)
                for (path, _, sha), (job, task, created) in zip(files, results)]  # fmt: skip

    def ingest_upload(self, path: Path, outbox: Path, sha: str, key: str) -> Queued:
        """A file sent to the server: one job like any media file's, deduplicated by the request's own `key` (its
        Idempotency-Key, or its content and options) instead of content and outbox alone."""
        job, task = self._file_job(path, os.path.realpath(outbox), sha)
        made, tasks, created = self.store.create_job(job, [replace(task, dedupe_key=key)])
        return self._done(Queued(str(path), tasks[0], created, made), "upload_queued", sha256=sha)

    def _file_job(self, path: Path, out: str, sha: str) -> tuple[NewJob, NewTask]:
        """A media file's job and first task; `out` is the outbox's real path (one outbox, one key, however named)."""
        job = NewJob(source=str(path), name=path.stem, output_dir=out, group=self.group,
                     options=self.options_for(Path(out)), not_before=self.not_before, after=self.after)  # fmt: skip
        task = NewTask(self.file_stage, {"path": str(path), "sha256": sha}, priority=self.priority,
                       dedupe_key=file_key(sha, out), affinity=self.affinity, run_after=self.start_at(out))  # fmt: skip
        return job, task

    def remember(self, path: Path, outbox: Path, stamp: Stamp) -> None:
        """Remember a file queued on its own (a URL file) with the stamp it had."""
        self.store.remember_files([self._file(path, outbox, stamp, None)])

    def remembered(self) -> dict[str, tuple[str, Stamp]]:
        """path -> (outbox, stamp) of every inbox file this host has queued before (strings: 50,000 Paths cost)."""
        return {f.path: (f.outbox, Stamp(f.size, f.mtime_ns, f.inode))
                for f in self.store.ingested_files(self.affinity or "")}  # fmt: skip

    def forget(self, paths: list[Path]) -> None:
        """Forget inbox files this host queued before that are gone from their inbox."""
        self.store.forget_files(self.affinity or "", [str(p) for p in paths])

    def _file(self, path: Path, outbox: Path, stamp: Stamp, sha: str | None) -> IngestedFile:
        return IngestedFile(self.affinity or "", str(path), str(outbox), stamp.size, stamp.mtime_ns, stamp.ino, sha)

    def ingest_url(self, url: str, outbox: Path, origin: str | None = None) -> Queued:
        """One URL -> a YOUTUBE or DOWNLOAD job; another scheme -> a job whose task failed with the reason."""
        kind, reason = classify_url(url)
        out = os.path.realpath(outbox)
        job = NewJob(source=url, name=url_name(url), output_dir=out, group=self.group,
                     options=self.options_for(Path(out)), not_before=self.not_before, after=self.after)  # fmt: skip
        task = NewTask(task_type_for(kind), {"url": url}, priority=self.priority, dedupe_key=url_key(url, out),
                       run_after=self.start_at(out))  # fmt: skip
        if reason:
            made, failed, created = self.store.create_failed_job(job, task, f"rejected {url}: {reason}")
            return self._done(Queued(url, failed, created, made), "url_rejected", reason=reason, origin=origin)
        made, tasks, created = self.store.create_job(job, [task])
        return self._done(Queued(url, tasks[0], created, made), "url_ingested", kind=kind, origin=origin)

    def ingest_url_file(self, path: Path, outbox: Path) -> list[Outcome]:
        """Queue every URL of a URL file. A .txt without any is plain text, not an input; a .url/.webloc without
        one is a broken link, recorded as a failed task saying why."""
        urls, problem = read_urls(path)
        if urls:
            return [self.ingest_url(url, outbox, origin=str(path)) for url in urls]
        if path.suffix.lower() == ".txt":
            return [self.not_input(path, outbox, problem or NOT_URL_LIST)]
        return [self._failed_file(path, outbox, problem or NOT_URL_LIST, "rejected", "url_file_empty")]

    def not_input(self, path: Path, outbox: Path, reason: str) -> Outcome:
        """A file that is not an input: skipped, or (an inbox's complete file of the wrong kind) a failed task."""
        if not self.record_rejected or reason in IGNORED:
            return self.skip(path, reason)
        return self._failed_file(path, outbox, f"{path.name} is not an input: {reason}", "rejected", "file_rejected")

    def record_unreadable(self, path: Path, outbox: Path, error: OSError) -> Queued:
        """A file we cannot read still ends as a failed task with its reason (nothing is silently dropped)."""
        reason = f"cannot read {path}: {error.strerror or error} (fix its permissions, then `traxctl retry`)"
        return self._failed_file(path, outbox, reason, "unreadable", "file_unreadable")

    def _failed_file(self, path: Path, outbox: Path, reason: str, kind: str, event: str) -> Queued:
        """A job for a file whose task already failed with `reason`; this version of the file is recorded once."""
        out = os.path.realpath(outbox)
        job = NewJob(source=str(path), name=path.stem, output_dir=out, group=self.group,
                     options=self.options_for(Path(out)))  # fmt: skip
        stamp = stamp_of(path)
        key = f"{kind}:{path}:{stamp.size}:{stamp.mtime_ns}:{out}" if stamp else None
        task = NewTask(self.file_stage, {"path": str(path)}, priority=self.priority, dedupe_key=key)
        made, failed, created = self.store.create_failed_job(job, task, reason)
        return self._done(Queued(str(path), failed, created, made), event, reason=reason)

    def skip(self, path: Path, reason: str) -> Skipped:
        """A file that is not an input: logged with the reason, nothing written."""
        skipped = Skipped(str(path), reason)
        log.info("input_skipped", source=skipped.source, reason=reason)
        if self.on_skipped is not None:
            self.on_skipped(skipped)
        return skipped

    def _done(self, queued: Queued, event: str, **fields: Any) -> Queued:
        name = event if queued.created else "ingest_duplicate"
        log.info(name, source=queued.source, task_id=queued.task.id, job_id=queued.task.job_id, **fields)
        if self.on_queued is not None:
            self.on_queued(queued)
        return queued


def read_urls(path: Path) -> tuple[list[str], str | None]:
    """The URLs of a URL file, or none and why (for a .txt: why it is plain text rather than a list of URLs)."""
    text = path.suffix.lower() == ".txt"
    try:
        urls = parse_url_file(path)
    except UserError as exc:  # malformed plist, not UTF-8: the user still sees why
        return [], f"{NOT_URL_LIST} (not UTF-8 text)" if text else str(exc)
    if urls:
        return urls, None
    return [], f"{NOT_URL_LIST} (no http(s) URL in it)" if text else f"{path.name}: no http(s) URL in it"


def url_name(url: str) -> str:
    """A readable output name for a URL: its last path segment, else its host."""
    parts = urlsplit(url)
    last = Path(unquote(parts.path)).stem if parts.path not in ("", "/") else ""
    return (last or parts.hostname or "url")[:200]
