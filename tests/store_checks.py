"""Checks tests make on a store that Trax itself never needs (so they are not Store's public methods)."""

from __future__ import annotations

from traxd.queue.store import Store


def integrity_ok(store: Store) -> bool:
    """SQLite's integrity check of the store's database (always True elsewhere)."""
    if store.engine.dialect.name != "sqlite":
        return True
    with store.engine.connect().execution_options(trax_read=True) as conn:  # as the store reads
        return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def finished_since(store: Store, since: float) -> int:
    """How many tasks reached a terminal state at or after `since`."""
    return sum(1 for t in store.list_tasks(limit=10**9) if t.finished_at is not None and t.finished_at >= since)
