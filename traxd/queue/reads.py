"""Read-only SQL for `traxctl status` and the dashboard, on a plain DB-API connection (no SQLAlchemy).

The same statements run on SQLite ('?' marks) and PostgreSQL ('%s' marks); the few that differ say so.
Everything returns frozen snapshots from `traxd.types`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from traxd.types import Control, ControlState, Task, TaskState, TaskType, WorkerInfo

OPEN_JOBS = "SELECT job_id FROM tasks WHERE state = 'queued' UNION SELECT job_id FROM tasks WHERE state = 'running'"
_DURATION = {
    "?": "COALESCE(json_extract(t.result, '$.duration'), json_extract(t.result, '$.quality.duration'))",
    "%s": "CASE WHEN json_typeof(t.result -> 'duration') = 'number' THEN (t.result ->> 'duration')::float END",
}
_BRIEF = ("t.id, t.job_id, t.type, t.state, t.priority, t.attempts, t.max_retries, t.run_after, t.lease_owner, "
          "t.lease_expires_at, t.error_kind, t.error_message, t.created_at, t.updated_at, t.started_at, "
          "t.finished_at, t.affinity")  # fmt: skip
MAX_EPOCH_STEPS = 20


@dataclass(frozen=True)
class JobInfo:
    """A job's identity as the user knows it."""

    id: int
    name: str
    source: str
    output_dir: str | None
    created_at: float


class Reader:
    """Read-only queries on one DB-API connection; `mark` is its parameter placeholder."""

    def __init__(self, conn: Any, mark: str) -> None:
        self.conn = conn
        self.mark = mark

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """One read transaction, so every query sees the same moment."""
        if self.mark == "?":
            self.conn.execute("BEGIN")
            try:
                yield self
            finally:
                self.conn.execute("COMMIT")
        else:
            with self.conn.transaction():
                yield self

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement written with '?' marks; return its rows."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql.replace("?", self.mark) if self.mark != "?" else sql, tuple(params))
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        found = self.rows(sql, params)
        return found[0][0] if found else None

    # -- controls and daemons -----------------------------------------------------------------
    def controls(self) -> dict[str, Control]:
        """Every control row by scope."""
        return {s: Control(s, ControlState(st), r, u) for s, st, r, u in
                self.rows("SELECT scope, state, reason, updated_at FROM control")}  # fmt: skip

    def workers(self) -> list[WorkerInfo]:
        """Every heartbeat row, most recent first."""
        sql = ("SELECT owner, host, pid, started_at, last_seen, active_tasks, rss_mb, cpu_percent, slots "
               "FROM workers ORDER BY last_seen DESC")  # fmt: skip
        return [WorkerInfo(*r) for r in self.rows(sql)]

    # -- the current work ---------------------------------------------------------------------
    def epoch(self) -> float | None:
        """When the queue was last idle: the start of the running (or, when idle, the last) busy period.

        A busy period is a stretch of time in which some job was always unfinished; it starts at the
        creation of its oldest job. None when there are no jobs at all.
        """
        start = self.scalar(f"SELECT MIN(created_at) FROM jobs WHERE id IN ({OPEN_JOBS})")
        if start is None:
            last = self.scalar("SELECT MAX(finished_at) FROM tasks WHERE job_id IS NOT NULL")
            if last is None:
                return None
            start = last
        # Jobs that finished inside the period but started before it stretch it back, until nothing does.
        for _ in range(MAX_EPOCH_STEPS):
            earlier = self.scalar("SELECT MIN(j.created_at) FROM tasks t JOIN jobs j ON j.id = t.job_id "
                                  "WHERE t.finished_at >= ?", (start,))  # fmt: skip
            if earlier is None or earlier >= start:
                break
            start = earlier
        return float(start)

    def tasks_since(self, since: float | None) -> list[Task]:
        """The tasks of jobs created at or after `since` (every job when None), plus those of unfinished jobs.

        Payloads and error histories are left out; a result carries only its media duration.
        """
        where = "" if since is None else f"WHERE j.created_at >= ? OR t.job_id IN ({OPEN_JOBS})"
        sql = (f"SELECT {_BRIEF}, {_DURATION[self.mark]} FROM tasks t JOIN jobs j ON j.id = t.job_id {where} "
               "ORDER BY t.id")  # fmt: skip
        return [_brief_task(r) for r in self.rows(sql, () if since is None else (since,))]

    def jobs(self, ids: Sequence[int]) -> dict[int, JobInfo]:
        """Name, source and outbox of these jobs."""
        out: dict[int, JobInfo] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = f"SELECT id, name, source, output_dir, created_at FROM jobs WHERE id IN ({', '.join('?' * len(chunk))})"
            out.update({r[0]: JobInfo(*r) for r in self.rows(sql, chunk)})
        return out


def _brief_task(r: tuple[Any, ...]) -> Task:
    (id_, job_id, type_, state, priority, attempts, max_retries, run_after, owner, expires, error_kind,
     error_message, created, updated, started, finished, affinity, duration) = r  # fmt: skip
    result = {"duration": float(duration)} if isinstance(duration, (int, float)) and duration > 0 else None
    return Task(id_, TaskType(type_), {}, TaskState(state), priority, attempts, max_retries, run_after, owner,
                expires, error_kind, error_message, [], result, None, job_id, created, updated, started, finished,
                affinity)  # fmt: skip


def decode(value: Any) -> Any:
    """A JSON column as Python (SQLite hands back text, psycopg already decoded)."""
    return json.loads(value) if isinstance(value, str) else value
