"""Pure: which tasks follow a finished task (enqueued in the transaction that completes it).

The chain: YOUTUBE -> DOWNLOAD -> PREPROCESS -> TRANSCRIBE -> ENHANCE (only when the job's `enhance` option is on).
Each stage's result is the next stage's payload, so a crash after any stage resumes at the next one.
"""

from __future__ import annotations

from typing import Any

from traxd.types import Job, NewTask, Task, TaskType

_NEXT: dict[TaskType, TaskType] = {
    TaskType.YOUTUBE: TaskType.DOWNLOAD,
    TaskType.DOWNLOAD: TaskType.PREPROCESS,
    TaskType.PREPROCESS: TaskType.TRANSCRIBE,
    TaskType.TRANSCRIBE: TaskType.ENHANCE,
}
# What the next stage needs from the result; a stage whose result lacks it ends the chain.
_REQUIRES: dict[TaskType, str] = {
    TaskType.DOWNLOAD: "url",
    TaskType.PREPROCESS: "path",
    TaskType.TRANSCRIBE: "chunks",
    TaskType.ENHANCE: "outputs",
}


def wants_enhance(job: Job | None) -> bool:
    """True when the job asked for the DeepSeek clean-up."""
    return bool(job is not None and job.options.get("enhance"))


def next_type(task_type: TaskType, job: Job | None) -> TaskType | None:
    """The stage after `task_type` for this job, or None at the end of the chain."""
    nxt = _NEXT.get(task_type)
    if nxt is TaskType.ENHANCE and not wants_enhance(job):
        return None
    return nxt


def follow_ups(task: Task, result: dict[str, Any] | None, job: Job | None) -> list[NewTask]:
    """The successor of `task` given its result: the next stage with the result as its payload."""
    nxt = next_type(task.type, job)
    if nxt is None or not result or result.get(_REQUIRES[nxt]) is None:
        return []
    payload = _payload(nxt, result)
    job_id = job.id if job is not None else task.job_id
    dedupe = f"job:{job_id}:{nxt.value}" if job_id is not None else None
    return [NewTask(nxt, payload, priority=_priority(task, job), dedupe_key=dedupe, max_retries=task.max_retries)]


def _priority(task: Task, job: Job | None) -> int:
    """The job's own priority when it has one (retries degrade a task's priority, not its successors')."""
    wanted = job.options.get("priority") if job is not None else None
    return wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else task.priority


def _payload(nxt: TaskType, result: dict[str, Any]) -> dict[str, Any]:
    """What the next stage is given: the whole result, minus bulky fields it does not need."""
    payload = {k: v for k, v in result.items() if k not in ("segments", "text", "index")}
    if nxt is TaskType.PREPROCESS:
        return {k: payload[k] for k in ("path", "sha256", "url", "title") if k in payload}
    return payload
