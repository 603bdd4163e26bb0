"""Run one handler and turn whatever happens into an Outcome (the only broad except around handler code)."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, replace
from typing import Any

from traxd.errors import PermanentError, classify
from traxd.handlers.registry import Handler, TaskContext
from traxd.logging import redact_text
from traxd.types import ErrorKind, Failure, Task


@dataclass(frozen=True)
class Outcome:
    """How a run ended: a result, or a classified failure."""

    task: Task
    result: dict[str, Any] | None = None
    failure: Failure | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the handler returned."""
        return self.failure is None


def run_task(handler: Handler | None, ctx: TaskContext) -> Outcome:
    """Call the handler with the task's payload; never raises."""
    started = time.monotonic()
    task = ctx.task
    try:
        if handler is None:
            raise PermanentError(f"no handler for task type {task.type.value!r} in this process")
        if not isinstance(task.payload, dict):
            raise PermanentError(f"payload of task {task.id} is not an object")
        result = handler(ctx, task.payload)
        if result is not None and not isinstance(result, dict):
            raise PermanentError(f"handler for {task.type.value} returned {type(result).__name__}, not a dict")
        return Outcome(task, result or {}, None, time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 - any handler failure becomes a classified Outcome, never a dead slot
        failure = classify(exc)
        if failure.kind is ErrorKind.RETRYABLE and type(exc).__module__ != "traxd.errors":
            # Unexpected exceptions keep their stack in the error history for the user to read.
            tail = "".join(traceback.format_exception(exc, limit=-3)).strip()
            failure = replace(failure, message=f"{failure.message}\n{tail}")
        # The message is stored in the DB and shown by `status`: no API key may ride along in it.
        failure = replace(failure, message=redact_text(failure.message))
        return Outcome(task, None, failure, time.monotonic() - started)
