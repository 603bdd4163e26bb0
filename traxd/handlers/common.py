"""Helpers every media handler shares: settings with per-job overrides, the scratch folder, the output folder."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traxd.errors import PermanentError, RetryableError
from traxd.handlers.registry import TaskContext
from traxd.joboptions import formats_of
from traxd.model_catalog import LOCAL, ModelInfo, model_info
from traxd.types import TaskType

if TYPE_CHECKING:
    from traxd.adapters.deepseek import DeepSeek

DEFAULT_LOCAL_MODEL = "base"


def option(ctx: TaskContext, name: str, fallback: Any) -> Any:
    """The job's own `name` option when it set one, else `fallback` (the setting it overrides)."""
    if ctx.job is not None and ctx.job.options.get(name) is not None:
        return ctx.job.options[name]
    return fallback


def output_formats(ctx: TaskContext) -> tuple[str, ...]:
    """The formats NAME.* are written in: the job's, fixed when it was queued; the settings' for a task without one."""
    return formats_of(ctx.job.options) if ctx.job is not None else tuple(ctx.settings.formats)


def backend(ctx: TaskContext) -> str:
    """`openai` or `local`: the backend the job's own model was given for, else the settings' (`auto` resolved)."""
    if ctx.job is not None and ctx.job.options.get("model") and ctx.job.options.get("backend") in ("openai", "local"):
        return str(ctx.job.options["backend"])
    return ctx.settings.effective_backend


def is_local_transcription(ctx: TaskContext) -> bool:
    """A TRANSCRIBE task on this machine's model (the work a strict run policy stops at its next chunk)."""
    return ctx.task.type is TaskType.TRANSCRIBE and backend(ctx) == "local"


def model_name(ctx: TaskContext) -> str:
    """The transcription model for this job: the job's `model` option, else the backend's configured model."""
    if backend(ctx) == "local":
        return str(option(ctx, "model", ctx.settings.local_model or DEFAULT_LOCAL_MODEL))
    return str(option(ctx, "model", ctx.settings.transcribe_model))


def own_model(ctx: TaskContext) -> bool:
    """True when the job names its own model (a failure of that model is the job's, not everyone's)."""
    return ctx.job is not None and bool(ctx.job.options.get("model"))


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
    watch = ctx.settings.watch
    return watch[0].outbox if watch else ctx.settings.home / "outbox"


def output_name(ctx: TaskContext, payload: dict[str, Any]) -> str:
    """The name the job's outputs are called after (sanitised by `outputs`): the job's, else the input file's stem."""
    if ctx.job is not None and ctx.job.name:
        return ctx.job.name
    return Path(str(payload.get("path") or f"task-{ctx.task.id}")).stem


def transcript_paths(payload: dict[str, Any], stage: TaskType) -> tuple[Path, Path]:
    """NAME.json and NAME.txt from {"json_path", "txt_path"} or the TRANSCRIBE result's {"outputs": {...}}."""
    outputs = payload["outputs"] if isinstance(payload.get("outputs"), dict) else {}
    json_path = payload.get("json_path") or outputs.get("json")
    txt_path = payload.get("txt_path") or outputs.get("txt")
    if not json_path and txt_path:
        json_path = str(Path(txt_path).with_suffix(".json"))
    if not json_path:
        raise PermanentError(f"{stage.name} payload names no transcript (expected json_path/txt_path or outputs)")
    json_p = Path(json_path)
    return json_p, Path(txt_path) if txt_path else json_p.with_suffix(".txt")


def read_transcript(json_path: Path) -> dict[str, Any]:
    """The NAME.json document a later stage works on; PermanentError when it is missing or unreadable."""
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PermanentError(f"transcript {json_path.name} is missing from {json_path.parent}") from None
    except (OSError, ValueError) as exc:
        raise PermanentError(f"transcript {json_path} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("segments"), list):
        raise PermanentError(f"transcript {json_path} has no segments")
    return doc


def save_paid(ctx: TaskContext, state: dict[str, Any]) -> None:
    """Checkpoint what was just paid for (synced to disk); a lost lease stops the task before it pays again."""
    if not ctx.checkpoint(state, paid=True):
        raise RetryableError("lost the lease on this task; stopping so no chunk is sent twice")


def deepseek_client(ctx: TaskContext) -> DeepSeek:
    """The DeepSeek client of the task's settings (enhance, translate and summarize share it)."""
    # Imported here: the SDK loads only when a task needs it.
    from traxd.adapters.deepseek import DeepSeek

    s = ctx.settings
    return DeepSeek(s.deepseek_api_key, s.deepseek_base_url, s.enhance_model, s.api_timeout_seconds)
