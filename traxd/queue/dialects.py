"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, Table
from sqlalchemy.dialects import postgresql, sqlite


class Dialect:
    """Statement builders for one database; SQLite is the default shape."""

    name = "sqlite"
    _insert = staticmethod(sqlite.insert)

    def upsert(self, table: Table, values: dict[str, Any], keys: list[str], update_cols: list[str]) -> Any:
        """INSERT … ON CONFLICT (keys) DO UPDATE."""
        stmt = self._insert(table).values(values)
        return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update_cols})

    def lock_row(self, stmt: Select[Any]) -> Select[Any]:
        """Lock the selected rows for this transaction (SQLite already holds the write lock)."""
        return stmt


class PostgresDialect(Dialect):
    """PostgreSQL (the claim itself, with FOR UPDATE SKIP LOCKED, lives in hotpath.py)."""

    name = "postgresql"
    _insert = staticmethod(postgresql.insert)

    def lock_row(self, stmt: Select[Any]) -> Select[Any]:
        """SELECT … FOR UPDATE."""
        return stmt.with_for_update()


def for_engine(engine: Engine) -> Dialect:
    """The statement builders for this engine's database."""
    if engine.dialect.name == "postgresql":
        return PostgresDialect()
    if engine.dialect.name == "sqlite":
        return Dialect()
    raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
