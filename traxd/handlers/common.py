"""Helpers every media handler shares: settings with per-job overrides, the scratch folder, the output folder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from traxd.handlers.registry import TaskContext
from traxd.models_table import LOCAL, ModelInfo, model_info

DEFAULT_LOCAL_MODEL = "base"


def setting(ctx: TaskContext, name: str, default: Any = None) -> Any:
    """A setting, or `default` when the context carries no settings (tests, the programmatic API)."""
    value = getattr(ctx.settings, name, None) if ctx.settings is not None else None
    return default if value is None else value


def option(ctx: TaskContext, name: str, setting_name: str | None = None, default: Any = None) -> Any:
    """A per-job option first, then the setting of that name, then `default`."""
    if ctx.job is not None and ctx.job.options.get(name) is not None:
        return ctx.job.options[name]
    return setting(ctx, setting_name or name, default)


def backend(ctx: TaskContext) -> str:
    """`openai` or `local`, as the settings resolve `auto`."""
    if ctx.settings is None:
        return "local"
    return str(ctx.settings.effective_backend)


def model_name(ctx: TaskContext) -> str:
    """The transcription model for this job: the job's `model` option, else the backend's configured model."""
    if backend(ctx) == "local":
        return str(option(ctx, "model", "local_model", DEFAULT_LOCAL_MODEL))
    return str(option(ctx, "model", "transcribe_model", "whisper-1"))


def model_caps(ctx: TaskContext) -> ModelInfo:
    """What this job's model returns (segments, words, limits): the local backend's, or the API model's entry."""
    return LOCAL if backend(ctx) == "local" else model_info(model_name(ctx))


def work_dir(ctx: TaskContext) -> Path:
    """The job's scratch folder (created): $TRAX_HOME/tmp/job-N, or a temp folder when there are no settings."""
    folder = ctx.work_dir or Path(tempfile.gettempdir()) / "trax" / f"task-{ctx.task.id}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def output_dir(ctx: TaskContext, payload: dict[str, Any]) -> Path:
    """Where NAME.* go: the job's output folder, else the payload's, else the first watch folder's outbox."""
    if ctx.job is not None and ctx.job.output_dir:
        return Path(ctx.job.output_dir)
    if payload.get("output_dir"):
        return Path(str(payload["output_dir"]))
    watch = setting(ctx, "watch", ())
    if watch:
        return Path(watch[0].outbox)
    return Path(setting(ctx, "home", Path.cwd())) / "outbox"
