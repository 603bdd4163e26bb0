"""Shared vocabulary of Trax: task types, states, error kinds and frozen rows (stdlib only)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class TaskType(str, enum.Enum):
    """The kinds of work a task can be (TRANSCRIBE, ENHANCE, YOUTUBE, DOWNLOAD, PREPROCESS are the batch API's)."""

    TRANSCRIBE = "transcribe"
    ENHANCE = "enhance"
    YOUTUBE = "youtube"
    DOWNLOAD = "download"
    PREPROCESS = "preprocess"
    DIARIZE = "diarize"
    TRANSLATE = "translate"
    SUMMARIZE = "summarize"
    # Not a stage: one delivery of a job-end event to one target, queued with no job so it never counts in a job.
    NOTIFY = "notify"

    @classmethod
    def parse(cls, value: str | TaskType) -> TaskType:
        """Accept a TaskType, its value or its name (any case)."""
        if isinstance(value, TaskType):
            return value
        text = str(value).strip()
        for member in cls:
            if text.lower() in (member.value, member.name.lower()):
                return member
        raise ValueError(f"unknown task type {value!r} (known: {', '.join(m.value for m in cls)})")


class TaskState(str, enum.Enum):
    """Where a task is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True for states a task never leaves on its own."""
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


class ErrorKind(str, enum.Enum):
    """How a failure is treated by the queue."""

    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    AUTH = "auth"
    POISON = "poison"
    CANCELLED = "cancelled"


class ControlState(str, enum.Enum):
    """The desired state of the daemons, written by traxctl."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"


GLOBAL_SCOPE = "*"

# Priority bands of the spec: lower runs first.
PRIORITY_IMMEDIATE = 0
PRIORITY_HIGH = 1
PRIORITY_NORMAL = 6
PRIORITY_LOW = 11
DEFAULT_MAX_RETRIES = 3


@dataclass(frozen=True)
class NewTask:
    """A task to enqueue."""

    type: TaskType
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = PRIORITY_NORMAL
    dedupe_key: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    run_after: float | None = None
    job_id: int | None = None
    affinity: str | None = None


@dataclass(frozen=True)
class Task:
    """A frozen snapshot of one row of `tasks`."""

    id: int
    type: TaskType
    payload: dict[str, Any]
    state: TaskState
    priority: int
    attempts: int
    max_retries: int
    run_after: float
    lease_owner: str | None
    lease_expires_at: float | None
    error_kind: str | None
    error_message: str | None
    errors: list[dict[str, Any]]
    result: dict[str, Any] | None
    dedupe_key: str | None
    job_id: int | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    affinity: str | None = None

    @property
    def lease(self) -> Lease:
        """The fencing token of this run: only writes carrying it take effect."""
        return Lease(self.id, self.lease_owner or "", self.attempts)


@dataclass(frozen=True)
class Lease:
    """Fencing token: (task id, owner, attempt). A write succeeds only while all three match."""

    task_id: int
    owner: str
    attempt: int


@dataclass(frozen=True)
class TaskCost:
    """What one finished local run cost on a host: its media seconds, wall seconds and peak RSS growth in MB."""

    host: str
    type: TaskType
    model: str
    seconds_audio: float
    wall_seconds: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Job:
    """A frozen snapshot of one row of `jobs`: one input and the tasks it spawned."""

    id: int
    source: str
    name: str
    output_dir: str | None
    group: str
    options: dict[str, Any]
    created_at: float
    not_before: float | None = None  # not started before this moment (epoch seconds), None = at once


@dataclass(frozen=True)
class JobWait:
    """What a queued job waits for besides a slot: its time (`--at`), and its dependencies that have not succeeded
    as (job id, that job's state) (`--after`)."""

    not_before: float | None = None
    after: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class NewJob:
    """A job to create together with its first task: not before `not_before`, only after the jobs in `after`."""

    source: str
    name: str
    output_dir: str | None = None
    group: str = "default"
    options: dict[str, Any] = field(default_factory=dict)
    not_before: float | None = None
    after: tuple[int, ...] = ()


@dataclass(frozen=True)
class Failure:
    """A classified error: what the queue should do about it."""

    kind: ErrorKind
    message: str
    retry_after: float | None = None
    error_type: str = "Error"
    http_status: int | None = None  # the API's answer, when an API refused (recorded in the error history)


@dataclass(frozen=True)
class Control:
    """Desired state for one scope ('*' for the whole queue, or a task type)."""

    scope: str
    state: ControlState
    reason: str | None
    updated_at: float

    def stops(self, started_at: float) -> bool:
        """True when this is a stop request made after `started_at`: a stop is for whatever was running when it
        was made, so a daemon or batch started later ignores a stale one."""
        return self.state is ControlState.STOPPING and self.updated_at >= started_at


@dataclass(frozen=True)
class WorkerInfo:
    """A daemon's heartbeat row."""

    owner: str
    host: str
    pid: int
    started_at: float
    last_seen: float
    active_tasks: int
    rss_mb: float
    cpu_percent: float
    slots: int


@dataclass(frozen=True)
class IngestedFile:
    """A queued inbox file and the stamp it had then: unchanged, a restart neither settles nor hashes it again."""

    host: str
    path: str
    outbox: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None = None


@dataclass(frozen=True)
class SearchHit:
    """One matching segment of an archived transcript, ranked; `marks` are (start, end) offsets in `snippet`."""

    name: str
    source: str
    json_path: str
    start: float
    end: float
    speaker: str | None
    snippet: str
    marks: tuple[tuple[int, int], ...]
    language: str | None
    job_id: int | None
    segment: int
    score: float

    def marked(self, open_mark: str = "«", close_mark: str = "»") -> str:
        """The snippet with each match wrapped in the given marks."""
        out, at = [], 0
        for a, b in self.marks:
            out += [self.snippet[at:a], open_mark, self.snippet[a:b], close_mark]
            at = b
        return "".join(out) + self.snippet[at:]


@dataclass(frozen=True)
class SearchFilters:
    """What narrows a search: finished since (epoch seconds), inbox folder, speaker, language, how many hits."""

    since: float | None = None
    inbox: str | None = None
    speaker: str | None = None
    language: str | None = None
    limit: int = 20


class StopFlag(Protocol):
    """What a long step reads to know its task was told to stop: the pool's Cancellation (or a threading.Event)."""

    def is_set(self) -> bool:
        """True once the task should stop."""
        ...


# The key a paid checkpoint carries in the task's result: the attempt that paid for it. A result spooled by an older
# attempt is never written over one a later attempt paid for (queue.transitions.offer_verdict).
PAID_KEY = "_paid_by_attempt"
