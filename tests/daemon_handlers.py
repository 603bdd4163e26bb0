"""Test registries for real `traxd run` subprocesses, chosen with TRAX_TEST_HANDLERS=tests.daemon_handlers:NAME.

Every handler appends its task id to $TRAX_TEST_MARKS (one line per run) so tests can count executions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from traxd.errors import RetryableError
from traxd.handlers.registry import Registry, TaskContext
from traxd.types import TaskType


def _mark(ctx: TaskContext, what: str, number: int | None = None) -> None:
    path = os.environ.get("TRAX_TEST_MARKS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{what} {ctx.task.id if number is None else number}\n")


def _all(handler: Any) -> Registry:
    return Registry({t: handler for t in TaskType})


def noop(_settings: Any) -> Registry:
    """Every task succeeds at once."""

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        _mark(ctx, "done")
        return {"ok": True}

    return _all(handle)


def slow(_settings: Any) -> Registry:
    """Every task takes $TRAX_TEST_SLEEP seconds (default 1), stopping early if cancelled."""
    seconds = float(os.environ.get("TRAX_TEST_SLEEP", "1"))

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        _mark(ctx, "start")
        if ctx.cancelled.wait(seconds):
            raise RetryableError("cancelled")
        _mark(ctx, "done")
        return {"ok": True}

    return _all(handle)


def spawn(_settings: Any) -> Registry:
    """Every task starts a long-lived child process (its command line names the scratch folder) and waits."""

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        assert ctx.work_dir is not None
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", str(ctx.work_dir)])
        (ctx.work_dir / "child.pid").write_text(str(child.pid))
        _mark(ctx, "child", child.pid)
        while not ctx.cancelled.wait(0.2):
            pass
        raise RetryableError("cancelled")

    return _all(handle)


def leaky(_settings: Any) -> Registry:
    """Every task fails with an error that quotes the API key and an Authorization header."""

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        key = os.environ.get("OPENAI_API_KEY", "")
        time.sleep(0.05)
        raise RetryableError(f"HTTP 500 calling API with key {key}; headers={{'Authorization': 'Bearer {key}'}}")

    return _all(handle)


def notifying(_settings: Any) -> Registry:
    """Every stage succeeds at once (noop); NOTIFY runs the real delivery handler."""
    from traxd.handlers.notify import handle_notify

    registry = noop(_settings)
    registry.register(TaskType.NOTIFY, handle_notify)
    return registry


class _SlowEngine:
    """A local-backend transcriber that takes $TRAX_TEST_SLEEP seconds a chunk and marks each chunk it decodes."""

    backend = "local"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def transcribe(self, path: Any, *, model: str, duration: float, **_: Any) -> dict[str, Any]:
        time.sleep(self.seconds)
        with open(os.environ["TRAX_TEST_MARKS"], "a", encoding="utf-8") as fh:
            fh.write(f"chunk {path.name}\n")
        return {"text": path.stem, "language": "en",
                "segments": [{"start": 0.0, "end": duration, "text": path.stem}]}  # fmt: skip


def chunked(_settings: Any) -> Registry:
    """The real PREPROCESS and TRANSCRIBE (chunks, checkpoints, outputs) over a slow fake local engine; the rest noop."""
    from traxd.handlers.preprocess import preprocess
    from traxd.handlers.transcribe import transcribe

    engine = _SlowEngine(float(os.environ.get("TRAX_TEST_SLEEP", "0.5")))
    registry = noop(_settings)
    registry.register(TaskType.PREPROCESS, preprocess)
    registry.register(TaskType.TRANSCRIBE, lambda ctx, payload: transcribe(ctx, payload, engine))
    return registry
