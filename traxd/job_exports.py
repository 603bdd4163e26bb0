"""A finished job's transcript in any format, later, from what is stored (its NAME.json): `traxctl export`, the
dashboard's downloads. Nothing is transcribed again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traxd.errors import PermanentError, UsageError, UserError
from traxd.exports import FORMATS
from traxd.handlers.common import read_transcript
from traxd.types import Task, TaskState, TaskType

MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8", "json": "application/json", "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8", "md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}  # fmt: skip


def check_format(fmt: str) -> str:
    """The format's name as FORMATS spells it (UsageError naming the known ones)."""
    name = fmt.strip().lower().lstrip(".")
    if name not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return name


def transcript_json(tasks: list[Task]) -> Path | None:
    """The NAME.json its TRANSCRIBE task wrote (later stages rewrite that same file), or None before there is one."""
    for task in tasks:
        outputs = (task.result or {}).get("outputs") if task.type is TaskType.TRANSCRIBE else None
        if task.state is TaskState.SUCCEEDED and isinstance(outputs, dict) and outputs.get("json"):
            return Path(str(outputs["json"]))
    return None


def unfinished(job_id: int, tasks: list[Task]) -> str | None:
    """Why the job has nothing to export yet (a stage still to run, no transcript), or None."""
    waiting = [t for t in tasks if not t.state.terminal]
    if waiting:
        return f"job #{job_id} is not finished ({waiting[0].type.value} {waiting[0].state.value}); export it once it is"
    if transcript_json(tasks) is None:
        last = tasks[-1] if tasks else None
        how = f" ({last.type.value} {last.state.value})" if last else ""
        return f"job #{job_id} has no transcript{how}: nothing to export"
    return None


def stored_document(json_path: Path) -> dict[str, Any]:
    """The NAME.json document, read as the later stages read it (UserError when it is gone or is no transcript)."""
    try:
        return read_transcript(json_path)
    except PermanentError as exc:
        raise UserError(f"{exc}: nothing to export") from None


def export_name(json_path: Path, fmt: str) -> str:
    """NAME.FMT: the name the set's own file of that format has."""
    return f"{json_path.name.removesuffix('.json')}.{fmt}"


__all__ = ["MEDIA_TYPES", "check_format", "export_name", "stored_document", "transcript_json", "unfinished"]
