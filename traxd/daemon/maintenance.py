"""Background upkeep of a pool: lease renewal, the heartbeat row, and the rescuer of orphaned tasks."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from traxd.daemon.owner import owner_is_dead
from traxd.logging import get_logger
from traxd.queue.transitions import decide_rescue
from traxd.resources import TreeSampler
from traxd.types import Task, WorkerInfo

if TYPE_CHECKING:
    from traxd.daemon.pool import Pool

log = get_logger("maintenance")


class Maintenance:
    """A thread that renews leases every lease/3 s, heartbeats, and rescues orphans every rescue interval."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample = TreeSampler()
        self.rescued = 0

    def start(self) -> None:
        """Rescue dead predecessors at once, then keep going in the background."""
        try:
            self.beat()
            self.rescue()
        except self.pool.store.unavailable as exc:  # e.g. a full disk: the loop retries; never a crash loop
            if not self.pool.database_error(exc):
                log.warning("maintenance_failed", error=str(exc).splitlines()[0][:300])
        self._thread = threading.Thread(target=self._loop, name="trax-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and remove this daemon's heartbeat row."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.pool.store.remove_worker(self.pool.owner_id)
        except Exception as exc:  # noqa: BLE001 - shutting down; the row is swept later as stale
            log.warning("heartbeat_remove_failed", error=str(exc))

    def _loop(self) -> None:
        # Renewal follows the lease (every lease/3 s) and rescue its own interval: with long leases a
        # dead neighbour's tasks must still come back within rescue_seconds, not lease/3.
        cfg = self.pool.config
        renew_every = max(0.2, cfg.lease_seconds / 3)
        rescue_every = max(0.2, cfg.rescue_seconds)
        next_beat = time.monotonic() + renew_every
        next_rescue = time.monotonic() + rescue_every
        while not self._stop.wait(max(0.0, min(next_beat, next_rescue) - time.monotonic())):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + renew_every
                    self.beat()
                if time.monotonic() >= next_rescue:
                    next_rescue = time.monotonic() + rescue_every
                    self.rescue()
            except Exception as exc:  # noqa: BLE001 - a DB hiccup must not kill upkeep; next round retries
                if not self.pool.database_error(exc):
                    log.warning("maintenance_failed", error=str(exc))

    def beat(self) -> None:
        """Renew our leases and write the heartbeat row."""
        pool = self.pool
        active = pool.active_tasks()
        held = pool.store.renew(pool.owner_id, [t.id for t in active], pool.config.lease_seconds)
        lost = {t.id for t in active} - held
        if lost:
            log.warning("lease_lost", task_ids=sorted(lost))
            pool.lease_lost(lost)
        pool.store.heartbeat(self._info(len(active)))
        pool.database_ok()  # the heartbeat was a write

    def _info(self, active: int) -> WorkerInfo:
        pool = self.pool
        reading = self._sample()
        now = pool.clock.now()
        return WorkerInfo(pool.owner_id, pool.owner.host, pool.owner.pid, pool.owner.started, now, active,
                          reading.rss_mb, reading.cpu_percent, pool.config.slots)  # fmt: skip

    def rescue(self) -> int:
        """Requeue tasks whose owner is dead (same host) or whose lease ran out; poison ones fail."""
        pool = self.pool
        now = pool.clock.now()
        count = 0
        for task in pool.store.running_leases(exclude_owner=pool.owner_id):
            reason = self._orphan_reason(task, now)
            if reason is None:
                continue
            if pool.store.rescue(task.lease, decide_rescue(task, now, reason)):
                count += 1
                log.warning("task_rescued", task_id=task.id, owner=task.lease_owner, reason=reason)
        self.rescued += count
        return count

    def _orphan_reason(self, task: Task, now: float) -> str | None:
        owner = task.lease_owner or ""
        if owner_is_dead(owner, self.pool.owner.host):
            return f"worker {owner} died"
        expires = task.lease_expires_at or 0.0
        if expires < now:
            return f"lease of {owner} expired"
        return None

