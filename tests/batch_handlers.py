"""Test handlers for the batch API and `trax batch`: `TRAX_TEST_HANDLERS=tests.batch_handlers:registry`.

Each run appends one JSON line to the file named by TRAX_TEST_SIDE_EFFECTS (so tests count side effects across
processes). A file whose name contains "bad" fails permanently, "flaky" fails once retryably, "quiet" gets a
low-confidence warning. TRAX_TEST_DELAY makes every handler take that many seconds (for interrupt tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from traxd.errors import PermanentError, RetryableError
from traxd.handlers.registry import Registry, TaskContext
from traxd.types import Job, NewTask, Task, TaskType

SIDE_EFFECTS_ENV = "TRAX_TEST_SIDE_EFFECTS"
DELAY_ENV = "TRAX_TEST_DELAY"


def record(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Append what ran to the side-effect file (one line, O_APPEND: safe across threads and processes)."""
    target = os.environ.get(SIDE_EFFECTS_ENV)
    if not target:
        return
    job = ctx.job
    line = {"type": ctx.task.type.value, "source": payload.get("path") or payload.get("url"),
            "options": job.options if job else {}, "output_dir": job.output_dir if job else None,
            "group": job.group if job else None, "attempt": ctx.task.attempts, "pid": os.getpid()}  # fmt: skip
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def read_side_effects(path: Path) -> list[dict[str, Any]]:
    """The lines record() wrote."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def media(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Stand-in for PREPROCESS/TRANSCRIBE: writes NAME.txt into the job's output folder, reports quality."""
    record(ctx, payload)
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    if delay:
        ctx.cancelled.wait(delay)
    path = Path(str(payload.get("path", "")))
    if "bad" in path.name:
        raise PermanentError(f"{path.name} is not a media file")
    if "flaky" in path.name and ctx.task.attempts == 1:
        raise RetryableError("connection reset by the fake server")
    if ctx.job is not None and ctx.job.output_dir:
        Path(ctx.job.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(ctx.job.output_dir) / f"{ctx.job.name}.txt").write_text(f"transcript of {path.name}\n")
    quiet = "quiet" in path.name
    warnings = [{"kind": "low_confidence", "segment": 0}] if quiet else []
    size = path.stat().st_size if path.is_file() else 0
    return {"duration": max(1.0, size / 100.0), "quality": {"confidence": 0.5 if quiet else 0.9, "warnings": warnings}}


def enhance(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Stand-in for ENHANCE: fails permanently without a DeepSeek key, like the real one."""
    record(ctx, payload)
    if not ctx.settings.deepseek_api_key:
        raise PermanentError("DEEPSEEK_API_KEY is not set: cannot enhance")
    return {"enhanced": True}


def net(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Stand-in for YOUTUBE/DOWNLOAD."""
    record(ctx, payload)
    return {}


def registry(settings: Any = None) -> Registry:
    """Every task type with a stand-in handler."""
    return Registry({TaskType.PREPROCESS: media, TaskType.TRANSCRIBE: media, TaskType.ENHANCE: enhance,
                     TaskType.YOUTUBE: net, TaskType.DOWNLOAD: net})  # fmt: skip


def noop_registry(settings: Any = None) -> Registry:
    """Handlers that do nothing at all (the overhead benchmark)."""
    def noop(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    return Registry({t: noop for t in TaskType})


def follow_ups(task: Task, result: dict[str, Any] | None, job: Job | None) -> list[NewTask]:
    """A stand-in pipeline: PREPROCESS -> TRANSCRIBE -> ENHANCE (when the job's enhance option is on)."""
    if task.type is TaskType.PREPROCESS:
        return [NewTask(TaskType.TRANSCRIBE, {"path": task.payload.get("path")}, priority=task.priority)]
    if task.type is TaskType.TRANSCRIBE and job is not None and job.options.get("enhance"):
        return [NewTask(TaskType.ENHANCE, {"path": task.payload.get("path")}, priority=task.priority)]
    return []
