"""The programmatic batch API, backed by the durable queue: create_batch_processor and friends.

    processor = create_batch_processor(max_workers=4)
    await processor.add_task(TaskType.TRANSCRIBE, {"file_path": "talk.mp3"})
    result = await processor.start(progress_callback=print)

One task here is one input (a file or a URL); its pipeline stages (preprocess, transcribe, enhance) run as
queue tasks of one job in the processor's own job group, so a crash or a re-run continues where it stopped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traxd.batching.inputs import Added
from traxd.batching.result import BatchResult
from traxd.batching.run import NO_HOLD, BatchRun, Hold
from traxd.batching.setup import processor_settings
from traxd.clock import Clock
from traxd.daemon.home import connections_for
from traxd.daemon.pool_setup import resource_monitor
from traxd.database import open_store
from traxd.errors import UserError
from traxd.handlers import load_registry
from traxd.handlers.registry import Registry
from traxd.ingest.enqueue import Skipped
from traxd.ingest.manual import check_path
from traxd.joboptions import OPTION_NAMES, job_options
from traxd.progress import BatchProgress, progress_due
from traxd.resources import Sampler
from traxd.types import TaskType
from traxd.urls import looks_like_url

__all__ = [
    "BatchProcessor",
    "BatchProgress",
    "BatchResult",
    "BatchTask",
    "QueueFullError",
    "TaskInputError",
    "TaskType",
    "create_batch_processor",
]  # fmt: skip

PATH_KEYS = ("path", "file_path", "audio_path", "video_path", "input_path", "file")
DIARIZE_KEYS = ("diarize", "speakers", "min_speakers", "max_speakers")
ProgressCallback = Callable[[BatchProgress], Any]


class TaskInputError(UserError):
    """add_task was given an unknown task type or a malformed payload; nothing was written."""


class QueueFullError(UserError):
    """More inputs were added than the processor's queue_size allows before start()."""


@dataclass(frozen=True)
class BatchTask:
    """One input added to a processor: the queue task that starts its pipeline, and whether it is new."""

    task_id: int
    job_id: int
    task_type: TaskType
    data: dict[str, Any]
    priority: int = 0
    created: bool = True
    source: str = ""
    options: dict[str, Any] = field(default_factory=dict)


class BatchProcessor:
    """Adds inputs to the durable queue and runs them with progress callbacks (`await add_task`, `start`, …)."""

    def __init__(self, run: BatchRun, *, queue_size: int, progress_interval: float, given: dict[str, Any],
                 output_dir: Path | None) -> None:  # fmt: skip
        self._run = run
        self.queue_size = queue_size
        self.progress_interval = progress_interval
        self.given = given  # the job options given to create_batch_processor; a payload's own go over them
        self.output_dir = output_dir
        self.tasks: list[BatchTask] = []
        self._since_start = 0
        self.poll_seconds = 0.05

    @property
    def group(self) -> str:
        """The job group this processor's inputs live in."""
        return self._run.group

    async def add_task(self, task_type: TaskType | str, data: dict[str, Any], priority: int = 0, *,
                       not_before: float | dt.datetime | None = None, after: Sequence[int] = ()) -> BatchTask:  # fmt: skip
        """Queue one input; an unknown type or a malformed payload raises TaskInputError and writes nothing.

        `not_before` (epoch seconds, or a datetime: local when naive): its job starts no earlier; `after` (job ids):
        it starts once those jobs have succeeded, and waits (never runs) while one has failed or was cancelled.
        """
        kind = _task_type(task_type)
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
            raise TaskInputError(f"priority must be a whole number >= 0, got {priority!r}")
        if self._since_start >= self.queue_size:
            raise QueueFullError(f"queue_size {self.queue_size} reached: call start() before adding more")
        options = self._options(data)
        hold = _hold(not_before, after)
        added = await asyncio.to_thread(self._add, kind, data, options, priority, hold)
        tasks = [BatchTask(a.task.id, a.job.id, a.task.type, dict(data), priority, a.status == "created",
                           a.source, options) for a in added]  # fmt: skip
        self.tasks += tasks
        self._since_start += 1
        return tasks[0]

    def _add(self, kind: TaskType, data: dict[str, Any], options: dict[str, Any], priority: int,
             hold: Hold = NO_HOLD) -> list[Added]:  # fmt: skip
        """Validate a payload and queue it through the one ingestion path (a URL list queues each of its URLs)."""
        url = data.get("url")
        path = next((data[k] for k in PATH_KEYS if data.get(k)), None)
        if kind in (TaskType.YOUTUBE, TaskType.DOWNLOAD) or (path is None and url):
            if not isinstance(url, str) or not looks_like_url(url):
                raise TaskInputError(f"{kind.name} task data needs a 'url' (http or https), got {url!r}")
            out = Path(data["output_dir"]).expanduser() if data.get("output_dir") else self._outbox(None)
            return _added(self._run.add_url(url, out, options, priority, hold), kind, url)
        if path is None:
            raise TaskInputError(f"{kind.name} task data needs a 'path' (or file_path/audio_path) or a 'url'")
        try:
            file = check_path(str(path))
        except UserError as exc:
            raise TaskInputError(f"{kind.name} task: {exc}") from None
        if file.is_dir():
            raise TaskInputError(f"{kind.name} task: {path} is a folder (add its files one by one, or use trax batch)")
        out = Path(data["output_dir"]).expanduser() if data.get("output_dir") else self._outbox(file)
        return _added(self._run.add_paths([(file, out)], options, priority, kind, hold), kind, str(path))

    def _options(self, data: Any) -> dict[str, Any]:
        """The job options of one input: the payload's, else the processor's, else the settings (traxd.joboptions)."""
        if not isinstance(data, dict):
            raise TaskInputError(f"task data must be a dict, got {type(data).__name__}")
        try:
            return job_options(self._run.settings, {**self.given, **_given(data)}).as_dict()
        except UserError as exc:
            raise TaskInputError(str(exc)) from None

    def _outbox(self, file: Path | None) -> Path:
        if self.output_dir is not None:
            return self.output_dir
        if file is not None:
            return file.resolve().parent / "transcripts"
        return Path(self._run.settings.watch[0].outbox) if self._run.settings.watch else Path.cwd() / "transcripts"

    async def start(self, progress_callback: ProgressCallback | None = None) -> BatchResult:
        """Run until every input of this processor is settled, calling back every progress_interval."""
        self._since_start = 0
        run = self._run
        run.begin()
        last: float | None = None
        try:
            while run.running():
                await asyncio.sleep(self.poll_seconds)
                now = run.clock.now()
                if progress_callback is not None and progress_due(last, now, self.progress_interval):
                    last = now
                    await _call(progress_callback, await asyncio.to_thread(run.progress, now))
        except BaseException:
            run.stop()
            await asyncio.to_thread(run.wait)
            raise
        if progress_callback is not None:
            await _call(progress_callback, await asyncio.to_thread(run.progress))
        return await asyncio.to_thread(run.result)

    def pause(self) -> None:
        """Stop claiming new tasks; running ones finish. Only this processor is affected."""
        self._run.pause()

    def resume(self) -> None:
        """Claim again after pause()."""
        self._run.resume()

    def stop(self) -> None:
        """Stop: running tasks finish, the rest stay queued for the next start() (nothing is lost)."""
        self._run.stop()

    def get_progress(self) -> BatchProgress:
        """A progress snapshot now."""
        return self._run.progress()

    def close(self) -> None:
        """Release the database connections."""
        self._run.store.engine.dispose()


def _added(taken: list[Added | Skipped], kind: TaskType, raw: str) -> list[Added]:
    """The inputs queued; a file found not to be one once read (it changed since the check) is an input error."""
    skipped = [t for t in taken if isinstance(t, Skipped)]
    if skipped:
        raise TaskInputError(f"{kind.name} task: {raw} is not an input: {skipped[0].reason}")
    return [t for t in taken if isinstance(t, Added)]


async def _call(callback: ProgressCallback, progress: BatchProgress) -> None:
    outcome = callback(progress)
    if inspect.isawaitable(outcome):
        await outcome


def _hold(not_before: float | dt.datetime | None, after: Sequence[int]) -> Hold:
    """add_task's `not_before` as epoch seconds and `after` as job ids, or TaskInputError."""
    if isinstance(not_before, dt.datetime):
        not_before = not_before.timestamp()  # a naive datetime reads as local time, like a typed one
    elif not_before is not None and (isinstance(not_before, bool) or not isinstance(not_before, int | float)):
        raise TaskInputError(f"not_before must be epoch seconds or a datetime, got {not_before!r}")
    if isinstance(after, str | bytes) or not all(isinstance(a, int) and not isinstance(a, bool) for a in after):
        raise TaskInputError(f"after must be job ids (whole numbers), got {after!r}")
    return (None if not_before is None else float(not_before)), tuple(after)


def _task_type(value: TaskType | str) -> TaskType:
    try:
        return TaskType.parse(value)
    except ValueError as exc:
        raise TaskInputError(str(exc)) from None


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The job options among these keywords or payload keys."""
    return {k: values[k] for k in OPTION_NAMES if k in values}


def create_batch_processor(
    max_workers: int = 8,
    queue_size: int = 1000,
    progress_interval: float = 5.0,
    memory_limit_mb: float = 2048,
    cpu_limit_percent: float = 90,
    **kw: Any,
) -> BatchProcessor:
    """A processor on the durable queue. Extra keywords: settings, home, database_url, registry, clock, group,
    output_dir, sampler, follow_ups, and the job options (language, model, chunk_size, enhance, word_timestamps,
    diarize, speakers, min_speakers, max_speakers, translate_to, summarize, formats; see traxd.joboptions)."""
    if max_workers < 1 or queue_size < 1 or progress_interval <= 0:
        raise UserError("max_workers and queue_size must be at least 1 and progress_interval greater than 0")
    settings = processor_settings(kw, workers=max_workers, memory_limit_mb=memory_limit_mb,
                                  cpu_limit_percent=cpu_limit_percent, **{k: kw.get(k) for k in DIARIZE_KEYS})  # fmt: skip
    clock: Clock | None = kw.get("clock")
    store = open_store(settings, pool_size=connections_for(max_workers), clock=clock)
    registry: Registry = kw.get("registry") or load_registry(settings)
    sampler: Sampler | None = kw.get("sampler")
    monitor = resource_monitor(settings, sampler)  # the settings carry max_workers and the limits
    group = kw.get("group") or f"api:{uuid.uuid4().hex[:12]}"
    run = BatchRun(store, registry, settings, group, slots=max_workers, monitor=monitor, clock=clock,
                   follow_ups=kw.get("follow_ups"))  # fmt: skip
    given = _given(kw)
    job_options(settings, given)  # a bad keyword (a model the backend lacks …) fails here, not at the first add_task
    output_dir = Path(kw["output_dir"]).expanduser() if kw.get("output_dir") else None
    return BatchProcessor(run, queue_size=queue_size, progress_interval=progress_interval, given=given,
                          output_dir=output_dir)  # fmt: skip
