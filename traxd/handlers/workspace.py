"""Where a handler may write: its job's scratch folder and its job's output folder (names kept inside)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from traxd.handlers.common import work_dir
from traxd.handlers.registry import TaskContext

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def safe_stem(name: str, fallback: str = "download") -> str:
    """A file stem that cannot leave its folder: no separators, no leading dots, no control characters."""
    text = unicodedata.normalize("NFC", Path(str(name).replace("\\", "/")).name)
    text = _UNSAFE.sub("_", text).strip(" ._")[:120]
    return text or fallback


def output_path(ctx: TaskContext, suffix: str) -> Path:
    """NAME + suffix in the job's output folder (or the first outbox), guaranteed to stay inside it."""
    job = ctx.job
    folder = Path(job.output_dir) if job and job.output_dir else _default_outbox(ctx)
    stem = safe_stem(job.name if job else f"task-{ctx.task.id}")
    path = folder / f"{stem}{suffix}"
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"output name {stem!r} leaves {folder}")
    return path


def _default_outbox(ctx: TaskContext) -> Path:
    watch = ctx.settings.watch
    return Path(watch[0].outbox) if watch else work_dir(ctx)
