"""Paid results that must reach the database: committed at once, or spooled and retried until the database is back.

A paid checkpoint whose commit fails (the server restarts, the network blinks, SQLite's lock is held past the busy
timeout, its disk is full) is written to the spool and committed again with backoff, fenced by the lease, while
the pool claims nothing new. The next start commits whatever a killed predecessor left in the spool.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from traxd.daemon.outage import OUTAGE_NOTE
from traxd.daemon.spool import Spool, SpoolError
from traxd.errors import RetryableError
from traxd.handlers.registry import Cancellation
from traxd.logging import get_logger, redact_text
from traxd.queue.store import RefusedWrite, Store
from traxd.queue.transitions import Offer
from traxd.types import Lease

log = get_logger("paid")

FIRST_DELAY = 0.25


def first_line(exc: BaseException) -> str:
    """The first line of an error, secrets masked: what the log, the spool's reason and `status` show."""
    return redact_text((str(exc).strip().splitlines() or [type(exc).__name__])[0][:300])


class PaidResults:
    """Commits paid checkpoints; when one fails: spool it, retry with backoff until it lands or we must stop."""

    def __init__(self, store: Store, spool: Spool | None, cap_seconds: float, rng: random.Random) -> None:
        self.store, self.spool = store, spool
        self._cap, self._rng = max(FIRST_DELAY, cap_seconds), rng
        self._waiting = 0
        self._lock = threading.Lock()
        self.replayed = spool is None  # the start-up replay is done (nothing to replay without a spool)
        self._outage_since: float | None = None

    @property
    def waiting(self) -> int:
        """Paid results not yet committed (the pool claims nothing while there are any)."""
        return self._waiting

    def commit(self, lease: Lease, task_type: str, data: dict[str, Any], cancelled: Cancellation) -> bool:
        """Commit a paid checkpoint (synced); True while the lease is ours, False once another run owns the task."""
        try:
            return self.store.checkpoint(lease, data, paid=True)
        except self.store.unavailable as exc:
            failed = exc
        with self._held():
            path = self._spool(lease, task_type, data, failed)
            self.outage(failed)
            verdict = self._retry(lease, task_type, data, cancelled)
        self.back()
        if path is not None and self.spool is not None:
            self.spool.remove(path)
        log.warning("paid_result_committed", task_id=lease.task_id, verdict=verdict)
        return verdict == Offer.OURS

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        with self._lock:
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def _spool(self, lease: Lease, task_type: str, data: dict[str, Any], exc: BaseException) -> Path | None:
        """Write the result to the spool (it survives a kill from now on); None when that fails too (kept in memory)."""
        if self.spool is None:
            return None
        try:
            path = self.spool.write(lease, task_type, data)
        except OSError as err:  # the spool's disk is full too: the retry below still holds it in memory
            log.error("paid_result_not_spooled", task_id=lease.task_id, error=first_line(err))
            return None
        log.warning("paid_result_spooled", task_id=lease.task_id, type=task_type, attempt=lease.attempt, file=str(path),
                    error=first_line(exc))  # fmt: skip
        return path

    def _retry(self, lease: Lease, task_type: str, data: dict[str, Any], cancelled: Cancellation) -> str:
        """Offer the result (fenced) with growing pauses; a stop while the database is still out leaves it spooled."""
        delay = FIRST_DELAY
        while True:
            stopping = cancelled.wait(delay + self._rng.uniform(0, delay / 4))
            try:
                return self.store.offer_paid(lease, task_type, data)
            except self.store.unavailable as exc:
                if stopping:
                    raise RetryableError(f"the database is unreachable ({first_line(exc)}); the paid result of "
                                         f"task {lease.task_id} waits in the spool for the next start") from None
                delay = min(self._cap, delay * 2)

    def replay(self) -> None:
        """Start-up: commit (fenced) what a previous run left in the spool, before anything is claimed."""
        assert self.spool is not None
        for path in self.spool.files():
            try:
                item = self.spool.read(path)
            except SpoolError as exc:
                self.spool.set_aside(path, str(exc))
                continue
            try:
                verdict = self.store.offer_paid(item.lease, item.task_type, item.data)  # unavailable: asked later
            except RefusedWrite as exc:
                self.spool.set_aside(path, f"the database refused it: {exc}")
                continue
            if verdict == Offer.GONE:
                self.spool.set_aside(path, f"task {item.lease.task_id} ({item.task_type}) is no longer in the queue")
                continue
            self.spool.remove(path)
            log.warning("spool_replayed", task_id=item.lease.task_id, attempt=item.lease.attempt, verdict=verdict)
        self.replayed = True

    def outage(self, exc: BaseException) -> None:
        """The database is unreachable: note it (once) where `traxctl status` on this machine can read it."""
        if self._outage_since is not None or self.spool is None:
            return
        self._outage_since = time.time()
        note = {"since": self._outage_since, "pid": os.getpid(), "error": first_line(exc)}
        with contextlib.suppress(OSError):  # a full disk: the log still says it
            self.spool.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.spool.folder / OUTAGE_NOTE).write_text(json.dumps(note), encoding="utf-8")

    def back(self) -> None:
        """The database takes writes again: drop the note, say how long it was out (not while results wait)."""
        if self._outage_since is None or self.spool is None or self._waiting:
            return
        log.warning("database_reachable_again", seconds=round(time.time() - self._outage_since, 1))
        self._outage_since = None
        with contextlib.suppress(FileNotFoundError):
            (self.spool.folder / OUTAGE_NOTE).unlink()

