"""Whether the database takes writes: a full disk pauses claiming, said once, until a write works again."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from traxd.logging import alert, get_logger
from traxd.queue.store import Store

log = get_logger("health")


class DatabaseWrites:
    """Shared by the pool (its claims and settles) and maintenance (its heartbeat): both report what their writes did.

    Claims are what make writes (and paid results need a checkpoint), so nothing starts while `reason` is set.
    """

    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        self._store = store
        self._wake = wake  # called when writes work again, so the dispatcher claims at once
        self.reason: str | None = None

    def failed(self, exc: BaseException) -> bool:
        """A write failed: when the database's disk is full, pause with the reason (said once); True then."""
        where = self._store.disk_full(exc)
        if where is None:
            return False
        if self.reason is None:
            free = shutil.disk_usage(where).free if Path(where).is_dir() else None
            self.reason = (f"the database disk is full: No space left on device in {where}"
                           + (f" ({free / 1e6:.1f} MB free)" if free is not None else "")
                           + "; no task starts until space is freed, Trax retries on its own")  # fmt: skip
            log.error("database_disk_full", reason=self.reason)
            alert(self.reason)
        return True

    def ok(self) -> None:
        """A write worked again: lift a disk-full pause."""
        if self.reason is not None:
            self.reason = None
            log.warning("database_writable_again")
            alert("the database is writable again: claiming resumes")
            self._wake()
