"""Retry and cancel, of one task or a whole job: the one place traxctl, the dashboard and the daemon's owners call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from traxd import notify
from traxd.config import Settings
from traxd.daemon.scratch import remove_if_ended
from traxd.queue.store import Store
from traxd.types import NewTask, Task, TaskState


@dataclass(frozen=True)
class JobControl:
    """Each action is one transaction; a cancel that ends a job removes its scratch folder, as a finished run does."""

    store: Store
    tmp_dir: Path
    settings: Settings | None = None  # its notification targets are told of a job this cancel ends

    def retry(self, task_id: int) -> bool:
        """Queue a failed or cancelled task again with a fresh attempt budget."""
        return self.store.retry(task_id)

    def retry_failed(self) -> int:
        """Queue every failed task again; returns how many."""
        return self.store.retry_failed()

    def retry_job(self, job_id: int) -> int:
        """Queue a job's failed and cancelled tasks again; returns how many."""
        return self.store.retry_job(job_id)

    def cancel(self, task_id: int) -> bool:
        """Cancel a queued or running task; False when it is neither."""
        before = self.store.get(task_id)
        if not self.store.cancel(task_id, self._events(before.job_id if before else None)):
            return False
        if before is not None:
            self._clean_up([before], before.job_id, task_id)
        return True

    def cancel_job(self, job_id: int) -> int:
        """Cancel a job's queued and running tasks; returns how many."""
        before = self.store.tasks_of_job(job_id)
        changed = self.store.cancel_job(job_id, self._events(job_id))
        if changed:
            self._clean_up(before, job_id, 0)
        return changed

    def _events(self, job_id: int | None) -> list[NewTask]:
        """The job's cancel notifications (queued by the store only if the cancel takes)."""
        if job_id is None or self.settings is None or not notify.targets(self.settings):
            return []
        return notify.end_events(self.settings, self.store.get_job(job_id), TaskState.CANCELLED, {}, self.store.clock.now())

    def _clean_up(self, before: list[Task], job_id: int | None, task_id: int) -> None:
        # A task that was running may still be writing into the folder: its daemon removes it when it reports back.
        if not any(t.state is TaskState.RUNNING for t in before):
            remove_if_ended(self.store, self.tmp_dir, job_id, task_id)
