"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite


class Dialect:
    """Statement builders for one database; SQLite is the default shape."""

    name = "sqlite"
    _insert = staticmethod(sqlite.insert)

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def insert_ignore(self, table: Table, values: dict[str, Any] | None = None) -> Any:
        """INSERT that skips rows clashing with a unique key."""
        stmt = self._insert(table)
        if values is not None:
            stmt = stmt.values(values)
        return stmt.on_conflict_do_nothing()

    def upsert(self, table: Table, values: dict[str, Any], keys: list[str], update_cols: list[str]) -> Any:
        """INSERT … ON CONFLICT (keys) DO UPDATE."""
        stmt = self._insert(table).values(values)
        return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update_cols})

    def lock_row(self, stmt: Select[Any]) -> Select[Any]:
        """Lock the selected rows for this transaction (SQLite already holds the write lock)."""
        return stmt

    def claim_statement(
        self, tasks: Table, owner: str, limit: int, now: float, expires: float, types: list[str] | None,
        job_ids: Select[Any] | None = None,
    ) -> Any:
        """One statement that leases the best runnable rows (optionally only of these jobs) and returns them."""
        pick = self._pick(tasks, limit, now, types, job_ids)
        return (
            update(tasks)
            .where(tasks.c.id.in_(pick.scalar_subquery()))
            .values(state="running", attempts=tasks.c.attempts + 1, lease_owner=owner,
                    lease_expires_at=expires, started_at=now, updated_at=now)
            .returning(*tasks.c)
        )  # fmt: skip

    def complete_statement(self, tasks: Table) -> Any:
        """Guarded completion, built once: parameters g_id, g_owner, g_attempt, result, now."""
        cached = self._cache.get("complete")
        if cached is None:
            cached = (
                update(tasks)
                .where(tasks.c.id == bindparam("g_id"), tasks.c.lease_owner == bindparam("g_owner"),
                       tasks.c.attempts == bindparam("g_attempt"), tasks.c.state == "running")
                .values(state="succeeded", result=bindparam("result", type_=tasks.c.result.type),
                        lease_expires_at=None, finished_at=bindparam("now"), updated_at=bindparam("now"),
                        error_kind=None, error_message=None)
            )  # fmt: skip
            self._cache["complete"] = cached
        return cached

    def _pick(
        self, tasks: Table, limit: int, now: float, types: list[str] | None, job_ids: Select[Any] | None = None
    ) -> Select[Any]:
        stmt = select(tasks.c.id).where(tasks.c.state == "queued", tasks.c.run_after <= now)
        if types is not None:
            stmt = stmt.where(tasks.c.type.in_(types))
        if job_ids is not None:
            stmt = stmt.where(tasks.c.job_id.in_(job_ids))
        return stmt.order_by(tasks.c.priority, tasks.c.id).limit(limit)


class PostgresDialect(Dialect):
    """PostgreSQL: rows are picked with FOR UPDATE SKIP LOCKED so claimers never wait on each other."""

    name = "postgresql"
    _insert = staticmethod(postgresql.insert)

    def lock_row(self, stmt: Select[Any]) -> Select[Any]:
        """SELECT … FOR UPDATE."""
        return stmt.with_for_update()

    def _pick(
        self, tasks: Table, limit: int, now: float, types: list[str] | None, job_ids: Select[Any] | None = None
    ) -> Select[Any]:
        return super()._pick(tasks, limit, now, types, job_ids).with_for_update(skip_locked=True)


def for_engine(engine: Engine) -> Dialect:
    """The statement builders for this engine's database."""
    if engine.dialect.name == "postgresql":
        return PostgresDialect()
    if engine.dialect.name == "sqlite":
        return Dialect()
    raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
