"""The pool's memory gate: a local TRANSCRIBE waits while its predicted memory would not fit the limit (issue 27)."""

from __future__ import annotations

import time
from collections.abc import Callable

from traxd import costs
from traxd.config import Settings
from traxd.handlers.common import backend, model_name
from traxd.handlers.registry import TaskContext
from traxd.logging import get_logger
from traxd.queue.store import Store
from traxd.types import TaskType

log = get_logger("pool")

GATED = TaskType.TRANSCRIBE  # the type whose local runs are measured (Pool.MEASURED) and predicted


class MemoryGate:
    """Pool type gate: holds local TRANSCRIBE while RSS now plus the next one's predicted growth passes the limit."""

    def __init__(self, store: Store, settings: Settings, rss_mb: Callable[[], float], host: str,
                 group: str | None = None, refresh_seconds: float = 10.0) -> None:  # fmt: skip
        self.store, self.settings, self.rss_mb, self.host, self.group = store, settings, rss_mb, host, group
        self.refresh_seconds = refresh_seconds
        self._history: dict[str, tuple[float, list[costs.Cost]]] = {}  # model -> (read at, runs)
        self._said: str | None = None
        self._known: set[str] = set()
        self._models_read = -1e9

    def __call__(self, types: list[TaskType], running: int) -> dict[TaskType, str]:
        """The gated type with why it waits, or nothing (no history, not local, fits, or nothing else runs)."""
        if GATED not in types or self.settings.memory_limit_mb <= 0 or not self._models():
            return {}  # a host that never recorded a local run (every API user) reads nothing more each round
        found = self.store.next_queued(GATED, self.host, self.group)
        if found is None:
            return {}
        task, job = found
        ctx = TaskContext(task=task, job=job, settings=self.settings)  # the handler's own reading of the options
        seconds = costs.media_seconds(task.payload)
        if backend(ctx) != "local" or seconds is None or model_name(ctx)[:255] not in self._models():
            return {}
        guess = costs.predict(self._runs(model_name(ctx)), seconds)
        reason = costs.memory_wait(guess, self.rss_mb(), self.settings.memory_limit_mb, running,
                                   f"job {task.job_id}" if task.job_id is not None else f"task {task.id}")  # fmt: skip
        if reason != self._said:  # logged when it changes, not every round
            log.info("memory_gate", reason=reason or "fits", task_id=task.id)
            self._said = reason
        return {GATED: reason} if reason else {}

    def _models(self) -> set[str]:
        """The models this host has history for, read again at most every refresh_seconds."""
        now = time.monotonic()
        if now - self._models_read >= self.refresh_seconds:
            self._known, self._models_read = self.store.cost_models(self.host, GATED), now
        return self._known

    def _runs(self, model: str) -> list[costs.Cost]:
        """This host's history for the model, read again at most every refresh_seconds (it grows once a run)."""
        now = time.monotonic()
        read_at, runs = self._history.get(model, (-1e9, []))
        if now - read_at >= self.refresh_seconds:
            runs = self.store.cost_history(self.host, GATED, model)
            self._history[model] = (now, runs)
        return runs
