"""A TaskContext for handler tests whose checkpoints are kept between runs, like the store keeps them."""

from __future__ import annotations

import json
from typing import Any

from traxd.config import Settings
from traxd.handlers.registry import TaskContext
from traxd.types import Job, Task, TaskState, TaskType


class Ctx:
    """A TaskContext whose checkpoints are kept, like the store would."""

    def __init__(self, settings: Settings, options: dict[str, Any] | None = None, previous: dict[str, Any] | None = None) -> None:
        self.saved: dict[str, Any] | None = previous
        self.paid: list[bool] = []  # the `paid` flag of every checkpoint, in order
        self.settings = settings
        self.options = options or {}

    def make(self, payload: dict[str, Any]) -> TaskContext:
        task = Task(1, TaskType.TRANSCRIBE, payload, TaskState.RUNNING, 6, 1, 3, 0.0, "me", None, None, None, [],
                    self.saved, None, 1, 0.0, 0.0, None, None)  # fmt: skip
        out = self.settings.home / "outbox"
        job = Job(1, str(payload.get("path")), "talk", str(out), "test", self.options, 0.0)
        return TaskContext(task, job, self.settings, self.settings.tmp_dir / "job-1", self._checkpoint)

    def _checkpoint(self, data: dict[str, Any], *, paid: bool = False) -> bool:
        self.saved = json.loads(json.dumps(data))
        self.paid.append(paid)
        return True
