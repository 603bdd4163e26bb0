"""Background upkeep of a pool: lease renewal, the heartbeat row, and the rescuer of orphaned tasks.

It is given its collaborators (the store, the owner, the clock, what runs here, the write health), never the pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from traxd import notify
from traxd.clock import Clock
from traxd.config import Settings
from traxd.daemon.health import DatabaseWrites
from traxd.daemon.owner import Owner, owner_is_dead
from traxd.logging import get_logger
from traxd.queue.store import Store
from traxd.queue.transitions import Decision, decide_rescue
from traxd.resources import TreeSampler
from traxd.supervision import Crashed, report_crash
from traxd.types import NewTask, Task, TaskState, TaskType, WorkerInfo

log = get_logger("maintenance")


@dataclass(frozen=True)
class Held:
    """The tasks running here: which they are (to renew), and how to stop those whose lease is gone."""

    tasks: Callable[[], list[Task]]
    lost: Callable[[set[int]], None]


@dataclass(frozen=True)
class Upkeep:
    """How maintenance runs: the lease it renews (every lease/3 s), how often it rescues, the slots it reports."""

    lease_seconds: float = 30.0
    rescue_seconds: float = 5.0
    slots: int = 8


class Maintenance:
    """A thread that renews leases every lease/3 s, heartbeats, and rescues orphans every rescue interval."""

    def __init__(self, store: Store, owner: Owner, clock: Clock, held: Held, writes: DatabaseWrites,
                 upkeep: Upkeep, crashed: Crashed | None = None) -> None:  # fmt: skip
        self.store, self.owner, self.clock = store, owner, clock
        self.crashed = crashed  # told when the loop ends on a bug (see traxd.supervision)
        # The database's "unreachable, busy or full" errors and the file system's: the next round retries them.
        self.expected: tuple[type[BaseException], ...] = (*store.unavailable, OSError)
        self.owner_id = str(owner)
        self.held, self.writes, self.upkeep = held, writes, upkeep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample = TreeSampler()
        self.rescued = 0
        # Whose targets hear of a job a poison task ends (set by the pool when it notifies; None: nobody).
        self.notify_settings: Settings | None = None
        self._cut_off = False  # a round failed: the database may have been out for everyone
        self._quiet_until = 0.0  # until then, expired leases are not rescued (their owners renew first)

    def start(self) -> None:
        """Rescue dead predecessors at once, then keep going in the background."""
        try:
            self.beat()
            self.rescue()
        except self.expected as exc:  # e.g. a full disk: the loop retries; never a crash loop
            self._cut_off = True
            if not self.writes.failed(exc):
                log.warning("maintenance_failed", error=str(exc).splitlines()[0][:300])
        self._thread = threading.Thread(target=self._loop, name="trax-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and remove this daemon's heartbeat row."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.remove_worker(self.owner_id)
        except self.expected as exc:  # shutting down; the row is swept later as stale
            log.warning("heartbeat_remove_failed", error=str(exc))

    def _loop(self) -> None:
        # Renewal follows the lease (every lease/3 s) and rescue its own interval: with long leases a
        # dead neighbour's tasks must still come back within rescue_seconds, not lease/3.
        cfg = self.upkeep
        renew_every = max(0.2, cfg.lease_seconds / 3)
        rescue_every = max(0.2, cfg.rescue_seconds)
        next_beat = time.monotonic() + renew_every
        next_rescue = time.monotonic() + rescue_every
        while not self._stop.wait(max(0.0, min(next_beat, next_rescue) - time.monotonic())):
            try:
                now = time.monotonic()
                # Cut off: renew (at the rescue pace) before rescuing anything; the quiet period starts with it.
                if now >= next_beat or (self._cut_off and now >= next_rescue):
                    next_beat = now + renew_every
                    next_rescue = max(next_rescue, now + rescue_every) if self._cut_off else next_rescue
                    self.beat()
                if time.monotonic() >= next_rescue:
                    next_rescue = time.monotonic() + rescue_every
                    self.rescue()
            except self.expected as exc:  # a DB or disk hiccup must not kill upkeep; next round retries
                known = self._cut_off  # an outage is said once, not every round it lasts
                self._cut_off = known or isinstance(exc, self.store.unavailable)
                if not self.writes.failed(exc) and not known:
                    log.warning("maintenance_failed", error=str(exc))
            except Exception as exc:  # noqa: BLE001 - a bug: renewing half the time is worse than stopping
                report_crash(log, "maintenance", exc, self.crashed)
                return

    def beat(self) -> None:
        """Renew our leases and write the heartbeat row."""
        active = self.held.tasks()
        held = self.store.renew(self.owner_id, [t.id for t in active], self.upkeep.lease_seconds)
        lost = {t.id for t in active} - held
        if lost:
            log.warning("lease_lost", task_ids=sorted(lost))
            self.held.lost(lost)
        self.store.heartbeat(self._info(len(active)))
        self.writes.ok()  # the heartbeat was a write
        if self._cut_off:
            self._back_from_outage()

    def _back_from_outage(self) -> None:
        """The database is back after an outage that stopped every daemon's renewals, not only ours: their leases
        ran out through no fault of theirs (and they may hold paid results to commit), so give them one lease
        period to renew before expired leases count as orphans. Dead owners on this host are still rescued at once."""
        self._cut_off = False
        self._quiet_until = time.monotonic() + self.upkeep.lease_seconds
        log.warning("rescue_deferred_after_outage", seconds=self.upkeep.lease_seconds)

    def _info(self, active: int) -> WorkerInfo:
        reading = self._sample()
        owner = self.owner
        return WorkerInfo(self.owner_id, owner.host, owner.pid, owner.started, self.clock.now(), active,
                          reading.rss_mb, reading.cpu_percent, self.upkeep.slots)  # fmt: skip

    def rescue(self) -> int:
        """Requeue tasks whose owner is dead (same host) or whose lease ran out; poison ones fail."""
        now = self.clock.now()
        count = 0
        for task in self.store.running_leases(exclude_owner=self.owner_id):
            reason = self._orphan_reason(task, now)
            if reason is None:
                continue
            decision = decide_rescue(task, now, reason)
            if self.store.rescue(task.lease, decision, self._end_events(task, decision, now)):
                count += 1
                log.warning("task_rescued", task_id=task.id, owner=task.lease_owner, reason=reason)
        self.rescued += count
        return count

    def _end_events(self, task: Task, decision: Decision, now: float) -> list[NewTask]:
        """A poison task fails its job for good: that job's end notifications, if anyone is to be told."""
        settings = self.notify_settings
        if not decision.state.terminal or settings is None or task.job_id is None or task.type is TaskType.NOTIFY:
            return []
        job = self.store.get_job(task.job_id)
        return notify.end_events(settings, job, TaskState.FAILED, {"error": decision.message}, now)

    def _orphan_reason(self, task: Task, now: float) -> str | None:
        owner = task.lease_owner or ""
        if owner_is_dead(owner, self.owner.host):
            return f"worker {owner} died"
        expires = task.lease_expires_at or 0.0
        if expires < now and time.monotonic() >= self._quiet_until:
            return f"lease of {owner} expired"
        return None

