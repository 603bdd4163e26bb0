"""Pure: which tasks follow a finished task (enqueued in the transaction that completes it)."""

from __future__ import annotations

from typing import Any

from traxd.types import Job, NewTask, Task


def follow_ups(task: Task, result: dict[str, Any] | None, job: Job | None) -> list[NewTask]:
    """The successor tasks of `task` given its result; none by default."""
    return []
