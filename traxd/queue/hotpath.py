"""The claim and completion statements on the raw DB-API connection.

These two run once per task, so they skip SQLAlchemy's per-execution machinery (which cost three quarters of
a claim round when measured); the SQL is written out once per dialect here, next to the rest of the queue's SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from traxd.errors import InvalidTaskError
from traxd.types import Lease, NewTask, Task, TaskState, TaskType

COLUMNS = (
    "id", "job_id", "type", "payload", "state", "priority", "attempts", "max_retries", "run_after",
    "lease_owner", "lease_expires_at", "error_kind", "error_message", "errors", "result", "dedupe_key",
    "created_at", "updated_at", "started_at", "finished_at", "affinity",
)  # fmt: skip
_RETURNING = ", ".join(COLUMNS)


@dataclass(frozen=True)
class Claim:
    """What one claim asks for: owner, how many, lease expiry, now, types, and optional host/group filters."""

    owner: str
    limit: int
    expires: float
    now: float
    types: tuple[str, ...]
    host: str | None = None
    group: str | None = None


class HotPath:
    """SQLite flavour: qmark parameters, JSON stored as text, transactions opened with BEGIN IMMEDIATE."""

    mark = "?"
    json_param = "?"
    lock_clause = ""
    begin_sql: str | None = "BEGIN IMMEDIATE"
    decodes_json = False

    def __init__(self) -> None:
        self._claim_sql: dict[tuple[int, bool, bool], str] = {}

    def complete_sql(self) -> str:
        """Guarded completion of one run (executemany-able)."""
        m = self.mark
        return (
            f"UPDATE tasks SET state = 'succeeded', result = {self.json_param}, lease_expires_at = NULL, "
            f"finished_at = {m}, updated_at = {m}, error_kind = NULL, error_message = NULL "
            f"WHERE id = {m} AND lease_owner = {m} AND attempts = {m} AND state = 'running'"
        )

    def claim_sql(self, n_types: int, host: bool, group: bool) -> str:
        """Lease the best runnable rows of the given types (not pinned elsewhere, of one group) in one statement."""
        key = (n_types, host, group)
        sql = self._claim_sql.get(key)
        if sql is None:
            m = self.mark
            types = ", ".join([m] * n_types)
            pinned = f"AND (affinity IS NULL OR affinity = {m}) " if host else ""
            pinned += f"AND job_id IN (SELECT id FROM jobs WHERE group_name = {m}) " if group else ""
            sql = self._claim_sql[key] = (
                f"UPDATE tasks SET state = 'running', attempts = attempts + 1, lease_owner = {m}, "
                f"lease_expires_at = {m}, started_at = {m}, updated_at = {m} WHERE id IN ("
                f"SELECT id FROM tasks WHERE state = 'queued' AND run_after <= {m} AND type IN ({types}) {pinned}"
                f"ORDER BY priority, id LIMIT {m}{self.lock_clause}) RETURNING {_RETURNING}"
            )
        return sql

    def insert_sql(self, returning: bool) -> str:
        """Insert one task row, skipping a clash on the dedupe key."""
        m, j = self.mark, self.json_param
        sql = (
            "INSERT INTO tasks (type, payload, state, priority, attempts, max_retries, run_after, errors, "
            f"dedupe_key, job_id, created_at, updated_at, affinity) VALUES ({m}, {j}, 'queued', {m}, 0, {m}, {m}, "
            f"{j}, {m}, {m}, {m}, {m}, {m}) ON CONFLICT DO NOTHING"
        )
        return sql + f" RETURNING {_RETURNING}" if returning else sql

    def insert_row(self, new: NewTask, now: float, job_id: int | None) -> tuple[Any, ...]:
        """Parameters of insert_sql for one NewTask."""
        run_after = new.run_after if new.run_after is not None else now
        job = job_id if job_id is not None else new.job_id
        return (task_type_value(new.type), payload_json(new.payload), new.priority, new.max_retries, run_after,
                "[]", new.dedupe_key, job, now, now, new.affinity)  # fmt: skip

    def insert_one(self, cur: Any, new: NewTask, now: float, job_id: int | None) -> Task | None:
        """Insert a task; None when its dedupe key already exists."""
        rows = cur.execute_returning(self.insert_sql(True), self.insert_row(new, now, job_id))
        return self.to_task(rows[0]) if rows else None

    def by_dedupe_key(self, cur: Any, key: str | None) -> Task:
        """The task holding a dedupe key."""
        rows = cur.execute_returning(f"SELECT {_RETURNING} FROM tasks WHERE dedupe_key = {self.mark}", (key,))
        return self.to_task(rows[0])

    def insert_many(self, cur: Any, tasks: Sequence[NewTask], now: float) -> int:
        """Insert many tasks in one executemany; returns how many were new."""
        cur.executemany(self.insert_sql(False), [self.insert_row(t, now, None) for t in tasks])
        return max(cur.rowcount, 0)

    def begin(self, cur: Any) -> None:
        """Open a write transaction."""
        if self.begin_sql:
            cur.execute(self.begin_sql)

    def commit(self, raw: Any, cur: Any) -> None:
        """Commit it."""
        cur.execute("COMMIT")

    def rollback(self, raw: Any, cur: Any) -> None:
        """Undo it."""
        cur.execute("ROLLBACK")

    def claim(self, cur: Any, c: Claim) -> list[Task]:
        """Run the claim and freeze the rows, best first."""
        filters = [v for v in (c.host, c.group) if v is not None]
        params = (c.owner, c.expires, c.now, c.now, c.now, *c.types, *filters, c.limit)
        sql = self.claim_sql(len(c.types), c.host is not None, c.group is not None)
        tasks = [self.to_task(row) for row in cur.execute_returning(sql, params)]
        tasks.sort(key=lambda t: (t.priority, t.id))
        return tasks

    def complete(self, cur: Any, items: Sequence[tuple[Lease, dict[str, Any] | None]], now: float) -> int:
        """Guarded completions in one executemany; returns how many rows took."""
        rows = [(json.dumps(result), now, now, lease.task_id, lease.owner, lease.attempt) for lease, result in items]
        cur.executemany(self.complete_sql(), rows)
        return cur.rowcount

    def _json(self, value: Any) -> Any:
        if value is None or self.decodes_json:
            return value
        return json.loads(value)

    def to_task(self, row: Sequence[Any]) -> Task:
        """Freeze a row in COLUMNS order."""
        (id_, job_id, type_, payload, state, priority, attempts, max_retries, run_after, owner, expires,
         error_kind, error_message, errors, result, dedupe_key, created, updated, started, finished, affinity) = row  # fmt: skip
        return Task(
            id_, TaskType(type_), self._json(payload) or {}, TaskState(state), priority, attempts, max_retries,
            run_after, owner, expires, error_kind, error_message, list(self._json(errors) or []),
            self._json(result), dedupe_key, job_id, created, updated, started, finished, affinity,
        )


class PostgresHotPath(HotPath):
    """PostgreSQL flavour (psycopg): %s parameters, JSON cast, FOR UPDATE SKIP LOCKED in the pick."""

    mark = "%s"
    json_param = "CAST(%s AS JSON)"
    lock_clause = " FOR UPDATE SKIP LOCKED"
    begin_sql = None
    decodes_json = True

    def commit(self, raw: Any, cur: Any) -> None:
        """psycopg commits on the connection."""
        raw.commit()

    def rollback(self, raw: Any, cur: Any) -> None:
        """psycopg rolls back on the connection."""
        raw.rollback()


class Cursor:
    """A thin cursor wrapper so both drivers fetch RETURNING rows the same way."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run a statement."""
        return self._cur.execute(sql, params)

    def execute_returning(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run a statement and fetch every returned row before anything else happens (SQLite buffers RETURNING)."""
        self._cur.execute(sql, params)
        return self._cur.fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row."""
        self._cur.executemany(sql, rows)

    @property
    def rowcount(self) -> int:
        """Rows touched by the last statement (summed over executemany)."""
        return self._cur.rowcount


def task_type_value(value: Any) -> str:
    """The stored name of a task type, or InvalidTaskError."""
    try:
        return TaskType.parse(value).value
    except ValueError as exc:
        raise InvalidTaskError(str(exc)) from None


def payload_json(payload: Any) -> str:
    """A payload as JSON text, or InvalidTaskError when it is not a JSON object."""
    if not isinstance(payload, dict):
        raise InvalidTaskError(f"task payload must be a JSON object (dict), got {type(payload).__name__}")
    try:
        return json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidTaskError(f"task payload is not JSON-serialisable: {exc}") from None


def for_dialect(name: str) -> HotPath:
    """The hot path for a database dialect name."""
    return PostgresHotPath() if name == "postgresql" else HotPath()
