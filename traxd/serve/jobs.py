"""The server's side of the queue: a request becomes a durable job (or finds the one it already is), and its state,
partial text and finished transcript are read back from the database, whichever daemon does the work."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traxd import jobviews
from traxd.config import Settings
from traxd.errors import UserError
from traxd.ingest.enqueue import Ingestor, Queued
from traxd.joboptions import job_options
from traxd.queue.reads import Reader
from traxd.queue.store import Store
from traxd.serve.ask import TRANSLATE, ApiError, Ask, request_key
from traxd.serve.form import Upload, keep
from traxd.types import PRIORITY_HIGH, Task, TaskState, TaskType

GROUP = "serve"  # the job group of requests (a daemon's pool claims every group; depth is counted on this one)
ENDED = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)
BAD_INPUT = ("permanent",)  # a failure of the file itself: 400, like OpenAI's invalid file
PART_SECONDS = 3600.0  # an upload still being written has been touched within the hour


@dataclass(frozen=True)
class Progress:
    """Where a request's job is: its state, the text decoded so far (chunk by chunk), and when ended, its outcome."""

    state: TaskState
    pieces: tuple[str, ...] = ()
    doc: dict[str, Any] | None = None
    error: ApiError | None = None


class Requests:
    """Queue requests as jobs and read them back (blocking calls: the app runs them in worker threads)."""

    def __init__(self, settings: Settings, store: Store, open_reader: Callable[[], Reader],
                 retry_job: Callable[[int], int], on_queued: Callable[[Queued], None] | None = None,
                 affinity: str | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.open_reader = open_reader
        self.retry_job = retry_job
        self.folder = settings.home / "serve"
        self.outbox = self.folder / "out"
        self.on_queued = on_queued
        self.affinity = affinity  # uploads are on this machine's disk: their tasks run here unless storage is shared

    @property
    def uploads(self) -> Path:
        """Where uploads are written as they arrive, then kept by content (the job reads its file from there)."""
        return self.folder / "uploads"

    def submit(self, upload: Upload, ask: Ask, idempotency_key: str | None) -> int:
        """The job of this request: a new one, or the one the same request made before (retried if it failed)."""
        try:  # the form's own fields are checked already (read_ask): what is left is the server's configuration
            options = job_options(self.settings, ask.options(self.settings.serve_model_map)).as_dict()
        except UserError as exc:
            raise ApiError(400, str(exc)) from None
        outbox = self._outbox(ask.outbox)
        key = request_key(upload.sha256, {**options, "outbox": str(outbox)}, idempotency_key)
        with closing(self.open_reader()) as reader:
            known = reader.task_by_key(key)
            waiting = reader.tasks_per_state(GROUP)[TaskState.QUEUED.value] if known is None else 0
        if known is None and waiting >= self.settings.serve_max_queue:
            raise ApiError(429, f"the queue holds {waiting} requests (serve_max_queue); try again later",
                           code="queue_full")  # fmt: skip
        ingestor = Ingestor(self.store, group=GROUP, priority=PRIORITY_HIGH, options=options, on_queued=self.on_queued,
                            affinity=self.affinity)  # fmt: skip
        queued = ingestor.ingest_upload(keep(upload, self.uploads), outbox, upload.sha256, key)
        job_id = int(queued.job.id)
        if not queued.created and self.progress(job_id, ask).state in (TaskState.FAILED, TaskState.CANCELLED):
            self.retry_job(job_id)  # the same request again after a failure: try again rather than repeat the error
        return job_id

    def _outbox(self, asked: str | None) -> Path:
        """Where the job's files go: the server's own folder, or (asked for) one of the watch folders' outboxes;
        a client never names any other folder of this machine."""
        if asked is None:
            return self.outbox
        for folder in self.settings.watch:
            if asked in (str(folder.outbox), folder.outbox.name) or Path(asked).expanduser() == folder.outbox:
                return folder.outbox
        raise ApiError(400, f"outbox {asked!r} is not the outbox of a watch folder (traxctl watch list)", param="outbox")

    def sweep_uploads(self, older_than: float, now: float) -> int:
        """Remove kept uploads untouched for `older_than` seconds whose jobs have all succeeded or been cancelled (a
        failed one keeps its file for a retry); how many went. A finished job's answer comes from its NAME.json."""
        removed = 0
        folders = [p for p in self.uploads.iterdir() if p.is_dir()] if self.uploads.is_dir() else []
        for folder in folders:
            if now - folder.stat().st_mtime < older_than:
                continue
            with closing(self.open_reader()) as reader:
                if reader.source_in_use(str(folder) + os.sep):
                    continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        for part in self.uploads.glob(".upload-*.part"):  # left by a server killed mid-upload
            if now - part.stat().st_mtime >= min(older_than, PART_SECONDS):
                part.unlink(missing_ok=True)
        return removed

    def progress(self, job_id: int, ask: Ask, pieces: bool = False) -> Progress:
        """The job's state now (one indexed query while it waits); the text decoded so far when `pieces` (a stream);
        its transcript (in the language asked for) once it succeeded, or its failure."""
        with closing(self.open_reader()) as reader:
            found = reader.job_states([job_id]).get(job_id)
            state = TaskState(found[0]) if found else None
            tasks = reader.tasks_of_job(job_id) if state in ENDED or (pieces and state is not None) else []
        if state is None:
            return Progress(TaskState.FAILED, error=ApiError(404, f"no job {job_id}", code="job_not_found"))
        if state is TaskState.SUCCEEDED:
            return Progress(state, doc=_transcript(tasks, ask))
        if state in ENDED:
            return Progress(state, error=_failure(tasks, state))
        return Progress(state, pieces=_decoded(tasks))

    def job(self, job_id: int) -> dict[str, Any] | None:
        """GET /v1/trax/jobs/{id}: any job's state, stage, error and (when done) transcript."""
        with closing(self.open_reader()) as reader:
            tasks = reader.tasks_of_job(job_id)
            job = reader.job(job_id) if tasks else None
        if job is None:
            return None
        state = jobviews.job_state(tasks)
        out: dict[str, Any] = {"id": job_id, "object": "trax.job", "name": job.name, "state": state.value,
                               "stage": tasks[-1].type.value, "created_at": job.created_at}  # fmt: skip
        if state in (TaskState.FAILED, TaskState.CANCELLED):
            out["error"] = _failure(tasks, state).message
        if state is TaskState.SUCCEEDED:
            try:
                out["result"] = _transcript(tasks, Ask("transcribe", "")) or None
            except ApiError as exc:
                out["error"] = exc.message
        return out


def _decoded(tasks: list[Task]) -> tuple[str, ...]:
    """The text of each chunk decoded so far, in order, up to the first one still missing (a running TRANSCRIBE's
    checkpoint holds them)."""
    for task in tasks:
        done = (task.result or {}).get("done") if task.type is TaskType.TRANSCRIBE else None
        if isinstance(done, dict):
            out: list[str] = []
            while str(len(out)) in done:
                out.append(" ".join(str(done[str(len(out))].get("text") or "").split()))
            return tuple(out)
    return ()


def _transcript(tasks: list[Task], ask: Ask) -> dict[str, Any]:
    """NAME.json of the job (NAME.en.json for a translation), read from where TRANSCRIBE wrote it."""
    from traxd.job_exports import transcript_json

    path = transcript_json(tasks)
    if path is None:
        return {}
    if ask.task == TRANSLATE:
        path = path.with_name(path.name.removesuffix(".json") + ".en.json")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ApiError(500, f"the job's transcript cannot be read: {exc}", code="transcript_missing") from None


def _failure(tasks: list[Task], state: TaskState) -> ApiError:
    """The job's failure as OpenAI would answer it: the file's fault 400, anything else 500 (never a traceback)."""
    failed = next((t for t in reversed(tasks) if t.state is state), tasks[-1])
    message = (failed.error_message or state.value).splitlines()[0][:500]
    if state is TaskState.CANCELLED:
        return ApiError(500, f"the job was cancelled: {message}", code="job_cancelled")
    if failed.error_kind in BAD_INPUT:
        return ApiError(400, message, param="file", code="invalid_file")
    return ApiError(500, message, code="job_failed")
