"""BatchResult: counts, time, peaks, quality metrics, de-duplicated warnings, failures; built purely from rows."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traxd.jobviews import JobView
from traxd.progress import Rates
from traxd.types import Job, Task, TaskState, TaskType

# Names that scripts written for the in-memory batch processor read and pass (success_count, …) -> the fields
# that hold them; both work in the constructor and as attributes, so those scripts keep working.
DESIGN_NAMES = {"success_count": "completed_tasks", "failure_count": "failed_tasks", "total_count": "total_tasks",
                "memory_peak_mb": "peak_memory_mb", "cpu_peak_percent": "peak_cpu_percent"}  # fmt: skip


def _design_names(cls: type[Any]) -> type[Any]:
    """Let the dataclass constructor take the DESIGN_NAMES too, and read them back as properties."""
    init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        for old, new in DESIGN_NAMES.items():
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"give {old} or {new}, not both")
                kwargs[new] = kwargs.pop(old)
        init(self, *args, **kwargs)

    __init__.__doc__ = init.__doc__
    cls.__init__ = __init__
    for old, new in DESIGN_NAMES.items():
        setattr(cls, old, property(_reader(new), doc=f"Another name of {new} (see DESIGN_NAMES)."))
    return cls


def _reader(name: str) -> Callable[[Any], Any]:
    """A property getter that reads attribute `name` (one per name: a lambda in the loop would share the last)."""
    return lambda self: getattr(self, name)


@_design_names
@dataclass(frozen=True)
class BatchResult(Rates):
    """The outcome of a batch: counts, time, peaks, quality and failures (one task = one input)."""

    total_tasks: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    cancelled_tasks: int = 0
    pending_tasks: int = 0
    skipped_tasks: int = 0
    processing_time: float = 0.0
    peak_memory_mb: float = 0.0
    peak_cpu_percent: float = 0.0
    quality_metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    speakers: list[dict[str, Any]] = field(default_factory=list)
    pending_reason: str | None = None
    interrupted: bool = False
    group: str = ""

    @property
    def ok(self) -> bool:
        """True when every input succeeded (an empty batch is ok)."""
        return self.completed_tasks == self.total_tasks and not self.interrupted

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the report file and `trax batch --json`)."""
        return {
            "total": self.total_tasks, "succeeded": self.completed_tasks, "failed": self.failed_tasks,
            "cancelled": self.cancelled_tasks, "pending": self.pending_tasks, "skipped": self.skipped_tasks,
            "success_rate": round(self.success_rate, 1), "failure_rate": round(self.failure_rate, 1),
            "processing_time": round(self.processing_time, 3), "peak_memory_mb": round(self.peak_memory_mb, 1),
            "peak_cpu_percent": round(self.peak_cpu_percent, 1), "quality": self.quality_metrics,
            "warnings": self.warnings, "failures": self.failures, "speakers": self.speakers, "pending_reason": self.pending_reason,
            "interrupted": self.interrupted, "group": self.group,
        }  # fmt: skip


def first_line(text: str | None) -> str:
    """The one-line reason of an error message."""
    return (text or "failed").strip().splitlines()[0][:300] if (text or "").strip() else "failed"


def failures(views: list[JobView], jobs: dict[int, Job]) -> list[dict[str, Any]]:
    """One entry per failed or cancelled input: its source, the stage that failed and the one-line reason."""
    out = []
    for v in views:
        if v.state not in (TaskState.FAILED, TaskState.CANCELLED):
            continue
        bad = next(t for t in reversed(v.tasks) if t.state is v.state)
        job = jobs.get(v.job_id)
        out.append({"source": job.source if job else f"task {bad.id}", "task_id": bad.id,
                    "type": bad.type.value, "reason": first_line(bad.error_message)})  # fmt: skip
    return out


def speakers(views: list[JobView], jobs: dict[int, Job]) -> list[dict[str, Any]]:
    """Per diarized input: its speakers with their talk time, or why there are none."""
    out = []
    for v in views:
        for t in v.tasks:
            result = t.result or {}
            if t.type is not TaskType.DIARIZE or t.state is not TaskState.SUCCEEDED or "diarization" not in result:
                continue
            job = jobs.get(v.job_id)
            entry: dict[str, Any] = {"source": job.source if job else f"task {t.id}",
                                     "speakers": result.get("speakers") or []}  # fmt: skip
            if result["diarization"].get("status") != "done":
                entry["unavailable"] = first_line(result["diarization"].get("reason"))
            out.append(entry)
    return out


def speaker_line(entry: dict[str, Any]) -> str:
    """`talk.wav: A 20.1 s, Ann 18.3 s` (or why there are no speakers)."""
    name = Path(str(entry["source"])).name
    if entry.get("unavailable"):
        return f"{name}: no speakers ({entry['unavailable']})"
    listed = ", ".join(f"{s['speaker']} {s['talk_time']:.1f} s" for s in entry["speakers"])
    return f"{name}: {listed or 'no speech'}"


def _quality(task: Task) -> dict[str, Any]:
    result = task.result or {}
    quality = result.get("quality")
    return quality if isinstance(quality, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def quality_metrics(views: list[JobView]) -> dict[str, Any]:
    """Average confidence (media-duration weighted when known) overall and per task type, plus per-type counts."""
    per_type: dict[str, dict[str, Any]] = defaultdict(lambda: {"succeeded": 0, "failed": 0, "seconds": 0.0})
    conf: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for v in views:
        for t in v.tasks:
            row = per_type[t.type.value]
            row["succeeded"] += int(t.state is TaskState.SUCCEEDED)
            row["failed"] += int(t.state is TaskState.FAILED)
            if t.started_at is not None and t.finished_at is not None:
                row["seconds"] += max(0.0, t.finished_at - t.started_at)
            c = _number(_quality(t).get("confidence"))
            if t.state is TaskState.SUCCEEDED and c is not None:
                conf[t.type.value].append((c, v.media_seconds or 1.0))
    for name, row in per_type.items():
        done = row["succeeded"] + row["failed"]
        row["average_seconds"] = round(row.pop("seconds") / done, 3) if done else None
        row["average_confidence"] = _weighted(conf.get(name, []))
    transcribe = conf.get(TaskType.TRANSCRIBE.value, [])
    return {"average_confidence": _weighted(transcribe or [x for xs in conf.values() for x in xs]),
            "per_type": dict(per_type)}  # fmt: skip


def _weighted(pairs: list[tuple[float, float]]) -> float | None:
    total = sum(w for _, w in pairs)
    return round(sum(c * w for c, w in pairs) / total, 4) if total else None


def warnings(views: list[JobView], jobs: dict[int, Job]) -> list[dict[str, Any]]:
    """Quality warnings of every input, de-duplicated by kind: how many inputs and which ones."""
    seen: dict[str, dict[str, Any]] = {}
    for v in views:
        job = jobs.get(v.job_id)
        for t in v.tasks:
            for raw in _quality(t).get("warnings") or []:
                key = _warning_key(raw)
                entry = seen.setdefault(key, {"warning": key, "count": 0, "sources": []})
                source = job.source if job else f"task {t.id}"
                if source not in entry["sources"]:
                    entry["sources"].append(source)
                    entry["count"] += 1
    return sorted(seen.values(), key=lambda e: (-e["count"], e["warning"]))


def _warning_key(raw: Any) -> str:
    """A warning's identity: its kind/message without the per-segment details."""
    if isinstance(raw, dict):
        return str(raw.get("kind") or raw.get("type") or raw.get("message") or raw)
    return str(raw)


def report_path(output: Path, when: float | None = None) -> Path:
    """OUTPUT/trax-batch-<UTC timestamp>.json."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when if when is not None else time.time()))
    return output / f"trax-batch-{stamp}.json"
