"""The database driver seam: every statement whose SQL or protocol differs between SQLite and PostgreSQL.

One driver class per dialect behind one interface (River's and Oban's shape). The per-task statements
(insert, claim, guarded completion) are written out once here and run on the raw DB-API cursor: SQLAlchemy's
per-execution machinery cost three quarters of a claim round when measured. The driver also owns how a write
transaction begins, commits and rolls back on that connection (SQLite: BEGIN IMMEDIATE; psycopg: implicit).
The read-only queries (`traxd.queue.reads`) take their parameter mark and the few expressions that differ from
here too. SQLAlchemy is imported only where a Core statement is built, so `traxd.queue.reads` stays light.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from traxd.errors import InvalidTaskError
from traxd.types import Lease, NewTask, Task, TaskState, TaskType

if TYPE_CHECKING:
    from sqlalchemy import Engine, Select, Table

COLUMNS = (
    "id", "job_id", "type", "payload", "state", "priority", "attempts", "max_retries", "run_after",
    "lease_owner", "lease_expires_at", "error_kind", "error_message", "errors", "result", "dedupe_key",
    "created_at", "updated_at", "started_at", "finished_at", "affinity",
)  # fmt: skip
_RETURNING = ", ".join(COLUMNS)
_TASK_FIELDS = tuple(f.name for f in fields(Task))
_PAYLOAD = json.JSONEncoder(allow_nan=False)  # one encoder: json.dumps with an option builds one per call
_DECODE = json.JSONDecoder().decode
_RESULT = json.JSONEncoder().encode  # json.dumps's defaults (results have always been written so), without its call
# Stored names to members by a dict lookup: calling the Enum class costs ten times more, twice per claimed row.
_TYPES = {t.value: t for t in TaskType}
# A task of a job with a dependency not yet succeeded (`--after`) is not claimed: part of the claim's own pick, so
# no daemon can take it between a check and the lease. A probe of job_deps' primary key per candidate row.
WAITS_FOR_DEPS = ("EXISTS (SELECT 1 FROM job_deps d JOIN tasks a ON a.job_id = d.after_job_id "
                  "WHERE d.job_id = tasks.job_id AND a.state <> 'succeeded')")  # fmt: skip
_STATES = {s.value: s for s in TaskState}


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


class Driver(ABC):
    """The interface, and the statements both dialects share once their parameter marks are filled in."""

    mark: str  # the DB-API parameter mark
    json_param: str  # how a JSON parameter is written
    lock_clause: str  # appended to the claim's pick
    decodes_json: bool  # the DB-API driver hands JSON columns back decoded
    # -- what the reads (traxd.queue.reads) write differently per dialect --
    media_seconds: str  # a task `t`'s media duration from its JSON result, or NULL
    error_counts_sql: str  # (error type, HTTP status, entries) over every task's error history, counted in SQL
    bucket_sql: str  # the whole number of `finished_at / <mark>`, rounded down

    def __init__(self) -> None:
        self._claim_sql: dict[tuple[int, bool, bool], str] = {}
        m, j = self.mark, self.json_param
        self.complete_sql = (
            f"UPDATE tasks SET state = 'succeeded', result = {j}, lease_expires_at = NULL, "
            f"finished_at = {m}, updated_at = {m}, error_kind = NULL, error_message = NULL "
            f"WHERE id = {m} AND lease_owner = {m} AND attempts = {m} AND state = 'running'"
        )
        self.insert_sql = (
            "INSERT INTO tasks (type, payload, state, priority, attempts, max_retries, run_after, errors, "
            f"dedupe_key, job_id, created_at, updated_at, affinity) VALUES ({m}, {j}, 'queued', {m}, 0, {m}, {m}, "
            f"{j}, {m}, {m}, {m}, {m}, {m}) ON CONFLICT DO NOTHING"
        )
        self.by_dedupe_sql = f"SELECT {_RETURNING} FROM tasks WHERE dedupe_key = {m}"

    # -- transactions on the raw connection -----------------------------------------------------
    @abstractmethod
    def begin(self, cur: Any) -> None:
        """Open a write transaction."""

    @abstractmethod
    def commit(self, raw: Any, cur: Any) -> None:
        """Commit it."""

    @abstractmethod
    def rollback(self, raw: Any, cur: Any) -> None:
        """Undo it."""

    @abstractmethod
    @contextmanager
    def read_snapshot(self, conn: Any) -> Iterator[None]:
        """One read transaction on a DB-API connection, so several queries see the same moment."""

    # -- Core statements for the colder paths ---------------------------------------------------
    @abstractmethod
    def upsert(self, table: Table, values: Any, keys: list[str], update_cols: list[str]) -> Any:
        """INSERT … ON CONFLICT (keys) DO UPDATE."""

    @abstractmethod
    def lock_row(self, stmt: Select[Any]) -> Select[Any]:
        """Lock the selected rows for this transaction."""

    # -- the per-task statements ----------------------------------------------------------------
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
                f"AND NOT {WAITS_FOR_DEPS} ORDER BY priority, id LIMIT {m}{self.lock_clause}) RETURNING {_RETURNING}"
            )
        return sql

    def insert_row(self, new: NewTask, now: float, job_id: int | None) -> tuple[Any, ...]:
        """Parameters of insert_sql for one NewTask."""
        run_after = new.run_after if new.run_after is not None else now
        job = job_id if job_id is not None else new.job_id
        return (task_type_value(new.type), payload_json(new.payload), new.priority, new.max_retries, run_after,
                "[]", new.dedupe_key, job, now, now, new.affinity)  # fmt: skip

    def insert_one(self, cur: Any, new: NewTask, now: float, job_id: int | None) -> tuple[Task, bool]:
        """Insert a task; with its dedupe key already present, the task holding it and False."""
        row = self.insert_row(new, now, job_id)
        task_id = self.insert_id(cur, row)
        if task_id is None:
            cur.execute(self.by_dedupe_sql, (new.dedupe_key,))
            return self.to_task(cur.fetchone()), False
        # The row as stored, built from what was written instead of read back (a third of an enqueue's cost). The
        # payload is the caller's own dict, not a decoded copy of the JSON just written: the same document, except
        # that tuples and non-string keys in it read back from the database as lists and strings.
        type_, _, priority, max_retries, run_after, _, key, job, created, updated, affinity = row
        return _freeze((task_id, _TYPES[type_], new.payload, TaskState.QUEUED, priority, 0, max_retries,
                        run_after, None, None, None, None, [], None, key, job, created, updated, None, None,
                        affinity)), True  # fmt: skip

    @abstractmethod
    def insert_id(self, cur: Any, row: tuple[Any, ...]) -> int | None:
        """Run insert_sql for one row: the new task's id, or None when its dedupe key was taken."""

    def insert_many(self, cur: Any, tasks: Sequence[NewTask], now: float) -> int:
        """Insert many tasks in one executemany; returns how many were new."""
        cur.executemany(self.insert_sql, [self.insert_row(t, now, None) for t in tasks])
        return max(int(cur.rowcount), 0)

    def claim(self, cur: Any, c: Claim) -> list[Task]:
        """Run the claim and freeze the rows, best first."""
        filters = [v for v in (c.host, c.group) if v is not None]
        params = (c.owner, c.expires, c.now, c.now, c.now, *c.types, *filters, c.limit)
        cur.execute(
            self.claim_sql(len(c.types), c.host is not None, c.group is not None),
            params,
        )
        tasks = [self.to_task(row) for row in cur.fetchall()]
        tasks.sort(key=lambda t: (t.priority, t.id))
        return tasks

    def complete(self, cur: Any, items: Sequence[tuple[Lease, dict[str, Any] | None]], now: float) -> list[bool]:
        """Guarded completions in one executemany; which of them took (each only under its own lease)."""
        rows = [(_RESULT(result), now, now, lease.task_id, lease.owner, lease.attempt) for lease, result in items]
        cur.executemany(self.complete_sql, rows)
        if cur.rowcount == len(items):
            return [True] * len(items)
        return self._which_took(cur, [lease for lease, _ in items], now)

    def _which_took(self, cur: Any, leases: list[Lease], now: float) -> list[bool]:
        """After a short executemany: which of these leases did this transaction complete?"""
        m = self.mark
        sql = (f"SELECT id, lease_owner, attempts FROM tasks WHERE state = 'succeeded' AND finished_at = {m} "
               f"AND id IN ({', '.join([m] * len(leases))})")  # fmt: skip
        cur.execute(sql, (now, *[lease.task_id for lease in leases]))
        mine = {tuple(r) for r in cur.fetchall()}
        return [(lease.task_id, lease.owner, lease.attempt) in mine for lease in leases]

    def decode_json(self, value: Any) -> Any:
        """A JSON column as Python (sqlite3 hands back text, psycopg has decoded it already)."""
        if value is None or self.decodes_json:
            return value
        return _DECODE(value)

    def to_task(self, row: Sequence[Any]) -> Task:
        """Freeze a row in COLUMNS order."""
        (id_, job_id, type_, payload, state, priority, attempts, max_retries, run_after, owner, expires,
         error_kind, error_message, errors, result, dedupe_key, created, updated, started, finished, affinity) = row  # fmt: skip
        return _freeze((
            id_, _TYPES.get(type_) or TaskType(type_), self.decode_json(payload) or {},
            _STATES.get(state) or TaskState(state), priority, attempts, max_retries, run_after, owner, expires,
            error_kind, error_message,
            [] if errors == "[]" else list(self.decode_json(errors) or []), self.decode_json(result), dedupe_key, job_id,
            created, updated, started, finished, affinity,
        ))  # fmt: skip


class SqliteDriver(Driver):
    """SQLite (sqlite3): qmark parameters, JSON as text, writers open with BEGIN IMMEDIATE."""

    mark = "?"
    json_param = "?"
    lock_clause = ""
    decodes_json = False
    media_seconds = "COALESCE(json_extract(t.result, '$.duration'), json_extract(t.result, '$.quality.duration'))"
    error_counts_sql = ("SELECT json_extract(e.value, '$.type'), json_extract(e.value, '$.http_status'), COUNT(*) "
                        "FROM tasks t, json_each(t.errors) e WHERE t.errors IS NOT NULL AND t.errors <> '[]' "
                        "GROUP BY 1, 2")  # fmt: skip
    bucket_sql = "CAST(finished_at / ? AS INTEGER)"  # finished_at is never negative: truncation is the floor

    @contextmanager
    def read_snapshot(self, conn: Any) -> Iterator[None]:
        """A deferred BEGIN: the connection runs in autocommit (isolation_level None) otherwise."""
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def begin(self, cur: Any) -> None:
        """Take the write lock up front: no SQLITE_BUSY half way through a transaction."""
        cur.execute("BEGIN IMMEDIATE")

    def commit(self, raw: Any, cur: Any) -> None:
        """Commit it."""
        cur.execute("COMMIT")

    def rollback(self, raw: Any, cur: Any) -> None:
        """Undo it (when a statement error has not ended it already)."""
        if raw.in_transaction:
            cur.execute("ROLLBACK")

    def insert_id(self, cur: Any, row: tuple[Any, ...]) -> int | None:
        """Run insert_sql for one row: the new task's id, or None when its dedupe key was taken."""
        cur.execute(self.insert_sql, row)
        return cur.lastrowid if cur.rowcount == 1 else None

    def upsert(self, table: Table, values: Any, keys: list[str], update_cols: list[str]) -> Any:
        """INSERT … ON CONFLICT (keys) DO UPDATE."""
        from sqlalchemy.dialects import sqlite

        return _upsert(sqlite.insert(table).values(values), keys, update_cols)

    def lock_row(self, stmt: Select[Any]) -> Select[Any]:
        """SQLite already holds the write lock for the whole transaction."""
        return stmt


class PostgresDriver(Driver):
    """PostgreSQL (psycopg): %s parameters, JSON cast, FOR UPDATE SKIP LOCKED in the pick, implicit BEGIN."""

    mark = "%s"
    json_param = "CAST(%s AS JSON)"
    lock_clause = " FOR UPDATE SKIP LOCKED"
    decodes_json = True
    media_seconds = "CASE WHEN json_typeof(t.result -> 'duration') = 'number' THEN (t.result ->> 'duration')::float END"
    error_counts_sql = ("SELECT e ->> 'type', e ->> 'http_status', COUNT(*) FROM tasks t, "
                        "json_array_elements(t.errors) e WHERE t.errors::text <> '[]' GROUP BY 1, 2")  # fmt: skip
    bucket_sql = "FLOOR(finished_at / %s)"

    @contextmanager
    def read_snapshot(self, conn: Any) -> Iterator[None]:
        """psycopg's transaction block (a savepoint when one is open already)."""
        with conn.transaction():
            yield

    def begin(self, cur: Any) -> None:
        """psycopg opens the transaction with the first statement."""

    def insert_id(self, cur: Any, row: tuple[Any, ...]) -> int | None:
        """Run insert_sql for one row: the new task's id, or None when its dedupe key was taken."""
        cur.execute(f"{self.insert_sql} RETURNING id", row)
        found = cur.fetchone()
        return found[0] if found else None

    def commit(self, raw: Any, cur: Any) -> None:
        """psycopg commits on the connection."""
        raw.commit()

    def rollback(self, raw: Any, cur: Any) -> None:
        """psycopg rolls back on the connection."""
        raw.rollback()

    def upsert(self, table: Table, values: Any, keys: list[str], update_cols: list[str]) -> Any:
        """INSERT … ON CONFLICT (keys) DO UPDATE."""
        from sqlalchemy.dialects import postgresql

        return _upsert(postgresql.insert(table).values(values), keys, update_cols)

    def lock_row(self, stmt: Select[Any]) -> Select[Any]:
        """SELECT … FOR UPDATE."""
        return stmt.with_for_update()


def _freeze(values: tuple[Any, ...]) -> Task:
    """A Task from its field values in declaration order, without the frozen __init__'s 21 object.__setattr__
    calls (a fifth of an enqueue when measured). Task has no __post_init__ that this could skip."""
    task = object.__new__(Task)
    task.__dict__.update(zip(_TASK_FIELDS, values))
    return task


def _upsert(stmt: Any, keys: list[str], update_cols: list[str]) -> Any:
    return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update_cols})


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
        return _PAYLOAD.encode(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidTaskError(f"task payload is not JSON-serialisable: {exc}") from None


def for_dialect(name: str) -> Driver:
    """The driver for a database dialect name, or ValueError for one Trax does not run on."""
    if name == "postgresql":
        return PostgresDriver()
    if name == "sqlite":
        return SqliteDriver()
    raise ValueError(f"unsupported database {name!r}: use SQLite or PostgreSQL")


def for_engine(engine: Engine) -> Driver:
    """The driver for this engine's database."""
    return for_dialect(engine.dialect.name)
