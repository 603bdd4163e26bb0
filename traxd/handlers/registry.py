"""The handler contract and registry: a task type maps to a plain function (ctx, payload) -> result."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from traxd.config import Settings
from traxd.types import PAID_KEY, Job, Task, TaskType


class Checkpoint(Protocol):
    """Store a handler's partial progress; `paid=True` when it holds a result we paid for (synced to disk)."""

    def __call__(self, data: dict[str, Any], *, paid: bool = False) -> bool: ...


def _no_checkpoint(data: dict[str, Any], *, paid: bool = False) -> bool:
    return True


def _no_voices() -> dict[str, list[float]]:
    return {}


def bare_settings() -> Settings:
    """Every default, the current folder as home: for contexts built without settings (tests, bare pools)."""
    return _defaults_in(Path.cwd())


@functools.lru_cache(maxsize=8)
def _defaults_in(home: Path) -> Settings:
    # Built once per folder: Settings is frozen, and building it cost a bare pool more than claiming the task.
    return Settings(home=home)


class Cancellation:
    """A task's stop flag: set by the pool (lease lost, shutdown), read by its handler.

    What handlers used of a threading.Event (set, is_set, wait) without building its Condition for every claimed
    task (2.7 µs, of the 70-78 µs the dispatcher spent on a no-op task): a plain flag, and an Event made only for a
    handler that waits on it.
    """

    __slots__ = ("_event", "_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        """True once the task should stop."""
        return self._flag

    def set(self) -> None:
        """Tell the handler to stop (and wake it if it waits)."""
        with self._lock:
            self._flag = True
            if self._event is not None:
                self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or `timeout` seconds pass; True when set."""
        with self._lock:
            if self._flag:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)


@dataclass(frozen=True)
class TaskContext:
    """What a handler may use: its task, its job, settings, a scratch folder, a checkpoint, a stop flag, voices.

    Handlers never touch the database: `checkpoint(data)` stores partial progress (guarded by the lease)
    in the task's `result`, so a retry after a crash finds it in `task.result` and skips paid-for work.
    Call `checkpoint(data, paid=True)` right after each paid call (an API reply, a costly local result) and
    before the next one: that commit is synced to disk, so even a power cut never makes us pay for it twice. When
    the database will not take it (an outage, a held lock, a full disk), the pool spools it and retries until it
    does, so the call may block for that long. Both return False when the lease was lost: stop then, another
    worker owns the task.
    """

    task: Task
    job: Job | None = None
    settings: Settings = field(default_factory=bare_settings)
    work_dir: Path | None = None
    checkpoint: Checkpoint = _no_checkpoint
    cancelled: Cancellation = field(default_factory=Cancellation)
    # The enrolled voice prints (name -> embedding), read from the database by the runner, not the handler.
    voices: Callable[[], dict[str, list[float]]] = _no_voices

    @property
    def previous(self) -> dict[str, Any]:
        """The checkpoint a previous attempt left (empty on a first attempt)."""
        previous = dict(self.task.result or {})
        previous.pop(PAID_KEY, None)  # the queue's fencing mark, not the handler's data
        return previous


Handler = Callable[[TaskContext, dict[str, Any]], dict[str, Any] | None]


class Registry:
    """Task type -> handler."""

    def __init__(self, handlers: dict[TaskType, Handler] | None = None) -> None:
        self._handlers: dict[TaskType, Handler] = {}
        for task_type, fn in (handlers or {}).items():
            self.register(task_type, fn)

    def register(self, task_type: TaskType | str, fn: Handler) -> None:
        """Add or replace the handler of a type."""
        self._handlers[TaskType.parse(task_type)] = fn

    def get(self, task_type: TaskType) -> Handler | None:
        """The handler of a type, or None."""
        return self._handlers.get(task_type)

    def types(self) -> list[TaskType]:
        """The types this registry can run."""
        return list(self._handlers)

    def __contains__(self, task_type: object) -> bool:
        return task_type in self._handlers

    def __iter__(self) -> Iterator[TaskType]:
        return iter(self._handlers)
