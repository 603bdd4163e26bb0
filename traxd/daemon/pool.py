"""The pool: a dispatcher that claims only for free slots, worker threads that run handlers, and settling."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from traxd.logging import get_logger

from traxd import pipelines
from traxd.clock import Clock, SystemClock
from traxd.daemon.maintenance import Maintenance
from traxd.daemon.owner import Owner
from traxd.daemon.runner import Outcome, run_task
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Store
from traxd.queue.transitions import RetryPolicy, decide_failure
from traxd.types import GLOBAL_SCOPE, Control, ControlState, Job, NewTask, Task, TaskType

log = get_logger("pool")

FollowUps = Callable[[Task, dict[str, Any] | None, Job | None], list[NewTask]]
Gate = Callable[[], str | None]
SlotLimit = Callable[[], int]


@dataclass(frozen=True)
class PoolConfig:
    """How a pool runs: slots, lease timing, shutdown grace and which task types it takes."""

    slots: int = 8
    lease_seconds: float = 30.0
    grace_seconds: float = 20.0
    control_seconds: float = 0.5
    idle_seconds: float = 0.5
    rescue_seconds: float = 5.0
    types: tuple[TaskType, ...] | None = None
    type_limits: dict[TaskType, int] = field(default_factory=dict)
    group: str | None = None  # claim only tasks of this job group (trax batch, the API); None = every group


@dataclass
class PoolStats:
    """What one run of the pool did."""

    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0
    released: int = 0
    paused_reason: str | None = None


@dataclass
class _Running:
    task: Task
    ctx: TaskContext


class Pool:
    """Runs tasks from the store on `slots` threads until stopped, drained or told to stop through the DB."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        config: PoolConfig | None = None,
        *,
        owner: Owner | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        policy: RetryPolicy | None = None,
        gate: Gate | None = None,
        slot_limit: SlotLimit | None = None,
        follow_ups: FollowUps = pipelines.follow_ups,
        make_context: Callable[[Task, Callable[[dict[str, Any]], bool]], TaskContext] | None = None,
        on_outcome: Callable[[Outcome, bool], None] | None = None,
        settings: Any = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.config = config or PoolConfig()
        self.owner = owner or Owner.current()
        self.owner_id = str(self.owner)
        self.clock = clock or store.clock or SystemClock()
        self.rng = rng or random.Random()
        self.policy = policy or RetryPolicy()
        self.gate = gate
        self.slot_limit = slot_limit
        self.follow_ups = follow_ups
        self.make_context = make_context or self._default_context
        self.on_outcome = on_outcome
        self.settings = settings
        self.stats = PoolStats()
        self._outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stop_now = False
        self._controls: dict[str, Control] = {}
        self._controls_read = -1e9
        self.maintenance = Maintenance(self)

    # -- public ---------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        """Tasks running right now."""
        with self._lock:
            return len(self._running)

    def active_tasks(self) -> list[Task]:
        """Snapshots of the tasks running now."""
        with self._lock:
            return [r.task for r in self._running.values()]

    def wake(self) -> None:
        """Look for work now instead of at the next poll (new tasks were added in-process)."""
        self._wake.set()

    def slots_now(self) -> int:
        """Slots usable now: config.slots, lowered by the slot_limit hook (resource scaling), at least 1."""
        if self.slot_limit is None:
            return self.config.slots
        return max(1, min(self.config.slots, self.slot_limit()))

    def request_stop(self, now: bool = False) -> None:
        """Stop claiming; with now=True do not wait for running tasks (signals call this)."""
        self._stop_now = self._stop_now or now
        self._stop.set()
        self._wake.set()

    def run(self, drain: bool = False) -> PoolStats:
        """Claim and run until stopped (signal, control row) or, with drain, until nothing is left to run."""
        executor = ThreadPoolExecutor(self.config.slots, thread_name_prefix="trax-slot")
        self.maintenance.start()
        try:
            self._loop(executor, drain)
        finally:
            self._shutdown(executor)
            self.maintenance.stop()
        return self.stats

    # -- the dispatcher -------------------------------------------------------------------------
    def _loop(self, executor: ThreadPoolExecutor, drain: bool) -> None:
        while True:
            self._settle_ready()
            state = self._control_state()
            if self._stop.is_set() or state is ControlState.STOPPING:
                reason = self._controls.get(GLOBAL_SCOPE)
                if reason is not None and reason.reason == "now":
                    self._stop_now = True
                return
            claimed = self._claim_and_start(executor) if state is ControlState.RUNNING else 0
            if drain and not claimed and self.active == 0 and self._drained():
                return
            if claimed == 0:
                self._wait(self.config.idle_seconds)

    def _wait(self, seconds: float) -> None:
        """Sleep until an outcome arrives, someone wakes us, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop.is_set():
            if not self._outcomes.empty() or self._wake.is_set():
                break
            self._wake.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        self._wake.clear()

    def _control_state(self) -> ControlState:
        now = time.monotonic()
        if now - self._controls_read >= self.config.control_seconds:
            self._controls = self.store.controls()
            self._controls_read = now
        glob = self._controls.get(GLOBAL_SCOPE)
        self.stats.paused_reason = glob.reason if glob and glob.state is ControlState.PAUSED else None
        return glob.state if glob else ControlState.RUNNING

    def _claimable_types(self) -> list[TaskType]:
        base = list(self.config.types) if self.config.types is not None else self.registry.types()
        paused = {scope for scope, c in self._controls.items() if scope != GLOBAL_SCOPE and c.state is ControlState.PAUSED}
        with self._lock:
            busy: dict[TaskType, int] = {}
            for r in self._running.values():
                busy[r.task.type] = busy.get(r.task.type, 0) + 1
        out = []
        for t in base:
            limit = self.config.type_limits.get(t)
            if t.value not in paused and (limit is None or busy.get(t, 0) < limit):
                out.append(t)
        return out

    def _claim_limit(self, types: list[TaskType]) -> int:
        free = self.slots_now() - self.active
        with self._lock:
            for t in types:
                limit = self.config.type_limits.get(t)
                if limit is not None:
                    used = sum(1 for r in self._running.values() if r.task.type is t)
                    free = min(free, limit - used)
        return free

    def _claim_and_start(self, executor: ThreadPoolExecutor) -> int:
        types = self._claimable_types()
        limit = self._claim_limit(types)
        if limit <= 0 or not types:
            return 0
        if self.gate is not None:
            reason = self.gate()
            if reason:
                self.stats.paused_reason = reason
                return 0
        tasks = self.store.claim(self.owner_id, limit, self.config.lease_seconds, types, self.config.group)
        for task in tasks:
            self._start(executor, task)
        self.stats.claimed += len(tasks)
        return len(tasks)

    def _start(self, executor: ThreadPoolExecutor, task: Task) -> None:
        lease = task.lease

        def checkpoint(data: dict[str, Any]) -> bool:
            return self.store.checkpoint(lease, data)

        ctx = self.make_context(task, checkpoint)
        with self._lock:
            self._running[task.id] = _Running(task, ctx)
        log.debug("task_claimed", task_id=task.id, type=task.type.value, attempt=task.attempts)
        executor.submit(self._work, ctx)

    def _work(self, ctx: TaskContext) -> None:
        outcome = run_task(self.registry.get(ctx.task.type), ctx)
        self._outcomes.put(outcome)
        self._wake.set()

    def _default_context(self, task: Task, checkpoint: Callable[[dict[str, Any]], bool]) -> TaskContext:
        job = self.store.get_job(task.job_id) if task.job_id is not None else None
        work_dir = None
        if self.settings is not None:
            work_dir = self.settings.tmp_dir / (f"job-{task.job_id}" if task.job_id is not None else f"task-{task.id}")
        return TaskContext(task=task, job=job, settings=self.settings, work_dir=work_dir, checkpoint=checkpoint)

    # -- settling -------------------------------------------------------------------------------
    def _settle_ready(self) -> None:
        batch: list[Outcome] = []
        while True:
            try:
                batch.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        if batch:
            self._settle(batch)

    def _settle(self, outcomes: list[Outcome]) -> None:
        now = self.clock.now()
        done = [o for o in outcomes if o.ok]
        if done:
            items = [(o.task.lease, o.result, self._successors(o)) for o in done]
            for outcome, took in zip(done, self.store.complete_many(items)):
                self._finish(outcome, took)
        for o in outcomes:
            if not o.ok:
                assert o.failure is not None
                decision = decide_failure(o.task, o.failure, now, self.policy, self.rng)
                took = self.store.apply(o.task.lease, decision, o.failure.error_type)
                if took and decision.pause_scope:
                    self._controls_read = -1e9  # re-read controls before the next claim
                    log.warning("task_type_paused", type=decision.pause_scope, reason=decision.message)
                self.stats.retried += int(took and decision.state.value == "queued")
                self.stats.failed += int(took and decision.state.value != "queued")
                self._finish(o, took)

    def _successors(self, outcome: Outcome) -> list[NewTask]:
        with self._lock:
            running = self._running.get(outcome.task.id)
        job = running.ctx.job if running else None
        return self.follow_ups(outcome.task, outcome.result, job)

    def _finish(self, outcome: Outcome, took: bool) -> None:
        with self._lock:
            self._running.pop(outcome.task.id, None)
        if not took:
            self.stats.lost += 1
            log.warning("lease_lost", task_id=outcome.task.id, attempt=outcome.task.attempts)
        elif outcome.ok:
            self.stats.succeeded += 1
            log.debug("task_succeeded", task_id=outcome.task.id, seconds=round(outcome.seconds, 3))
        else:
            assert outcome.failure is not None
            log.info("task_failed", task_id=outcome.task.id, kind=outcome.failure.kind.value,
                     error=outcome.failure.message.splitlines()[0][:300])  # fmt: skip
        if self.on_outcome is not None:
            self.on_outcome(outcome, took)

    def lease_lost(self, task_ids: set[int]) -> None:
        """Maintenance found these leases gone (rescued elsewhere or cancelled): tell their handlers."""
        with self._lock:
            for task_id in task_ids:
                running = self._running.get(task_id)
                if running is not None:
                    running.ctx.cancelled.set()

    def _drained(self) -> bool:
        types = self._claimable_types()
        return not types or not self.store.has_work(types, self.config.group)

    # -- shutdown -------------------------------------------------------------------------------
    def _shutdown(self, executor: ThreadPoolExecutor) -> None:
        """Let running tasks finish within the grace period, settle them, release the rest."""
        deadline = time.monotonic() + (0.0 if self._stop_now else self.config.grace_seconds)
        while self.active and time.monotonic() < deadline and not self._stop_now:  # a second signal cuts it short
            try:
                self._settle([self._outcomes.get(timeout=min(0.2, max(0.01, deadline - time.monotonic())))])
            except queue.Empty:
                continue
        self._settle_ready()
        for task in self.active_tasks():
            with self._lock:
                running = self._running.pop(task.id, None)
            if running is not None:
                running.ctx.cancelled.set()
            if self.store.release(task.lease):
                self.stats.released += 1
                log.info("task_released", task_id=task.id)
        executor.shutdown(wait=False, cancel_futures=True)
