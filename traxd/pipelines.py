"""Pure: which tasks follow a finished task (enqueued in the transaction that completes it).

The chain: YOUTUBE -> DOWNLOAD -> PREPROCESS -> TRANSCRIBE -> DIARIZE -> ENHANCE -> TRANSLATE -> SUMMARIZE; the
stages after TRANSCRIBE run only when the job's `diarize`, `enhance`, `translate_to` or `summarize` option asks for
them. Each stage's result is the next stage's payload, so a crash after any stage resumes at the next one (a kill
while diarizing never re-pays the transcription).
"""

from __future__ import annotations

from typing import Any

from traxd.translate import parse_codes
from traxd.types import Job, NewTask, Task, TaskType

# The stages in order; the optional ones run only when the job asked for them.
_CHAIN: list[TaskType] = [
    TaskType.YOUTUBE, TaskType.DOWNLOAD, TaskType.PREPROCESS, TaskType.TRANSCRIBE,
    TaskType.DIARIZE, TaskType.ENHANCE, TaskType.TRANSLATE, TaskType.SUMMARIZE,
]  # fmt: skip
# What the next stage needs from the result (any of these keys); a stage whose result lacks it ends the chain.
_REQUIRES: dict[TaskType, tuple[str, ...]] = {
    TaskType.DOWNLOAD: ("url",),
    TaskType.PREPROCESS: ("path",),
    TaskType.TRANSCRIBE: ("chunks",),
    TaskType.DIARIZE: ("outputs",),
    TaskType.ENHANCE: ("outputs",),
    TaskType.TRANSLATE: ("outputs", "json_path"),
    TaskType.SUMMARIZE: ("outputs", "json_path"),
}


def wants_enhance(job: Job | None) -> bool:
    """True when the job asked for the DeepSeek clean-up."""
    return bool(job is not None and job.options.get("enhance"))


def wants_diarize(job: Job | None) -> bool:
    """True when the job asked for speaker labels."""
    return bool(job is not None and job.options.get("diarize"))


def wants_translation(job: Job | None) -> bool:
    """True when the job asked for translations (`translate_to`: a list of language codes)."""
    return bool(job is not None and job.options.get("translate_to"))


def wants_summary(job: Job | None) -> bool:
    """True when the job asked for NAME.summary.md."""
    return bool(job is not None and job.options.get("summarize"))


_OPTIONAL = {TaskType.DIARIZE: wants_diarize, TaskType.ENHANCE: wants_enhance,
             TaskType.TRANSLATE: wants_translation, TaskType.SUMMARIZE: wants_summary}


def later_stages(translate_to: Any, summarize: bool) -> dict[str, Any]:
    """The job options that ask for TRANSLATE and SUMMARIZE (absent when off, so other jobs' options stay short)."""
    codes = list(parse_codes(translate_to))
    return {**({"translate_to": codes} if codes else {}), **({"summarize": True} if summarize else {})}


def next_type(task_type: TaskType, job: Job | None) -> TaskType | None:
    """The stage after `task_type` for this job (stages it did not ask for skipped), or None at the end."""
    if task_type not in _CHAIN:
        return None
    for nxt in _CHAIN[_CHAIN.index(task_type) + 1 :]:
        wanted = _OPTIONAL.get(nxt)
        if wanted is None or wanted(job):
            return nxt
    return None


def follow_ups(task: Task, result: dict[str, Any] | None, job: Job | None) -> list[NewTask]:
    """The successor of `task` given its result: the next stage with the result as its payload."""
    nxt = next_type(task.type, job)
    if nxt is None or not result or all(result.get(k) is None for k in _REQUIRES[nxt]):
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
