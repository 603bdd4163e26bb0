"""The pool: a dispatcher that claims only for free slots, worker threads that run handlers, and settling."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from traxd import notify, pipelines
from traxd.clock import Clock, SystemClock
from traxd.config import Settings
from traxd.daemon import scratch
from traxd.daemon.health import DatabaseWrites
from traxd.daemon.maintenance import Held, Maintenance, Upkeep
from traxd.daemon.owner import Owner
from traxd.daemon.paid import PaidResults
from traxd.daemon.runner import Outcome, run_task
from traxd.daemon.slots import Slots
from traxd.daemon.spool import Spool
from traxd.db.voices import Voices
from traxd.errors import classify
from traxd.handlers.common import is_local_transcription
from traxd.handlers.registry import Cancellation, Checkpoint, Registry, TaskContext, bare_settings
from traxd.logging import get_logger
from traxd.queue.store import Completion, FailedRun, Store
from traxd.queue.transitions import Decision, RetryPolicy, decide_failure
from traxd.types import (
    GLOBAL_SCOPE,
    Control,
    ControlState,
    ErrorKind,
    Job,
    NewTask,
    Task,
    TaskCost,
    TaskState,
    TaskType,
)

log = get_logger("pool")

# Completions with their successors, failures with their decisions and (for a job that failed for good) its events.
Prepared = tuple[list[tuple[Outcome, list[NewTask]]], list[Outcome], list[Decision], list[list[NewTask]]]
FollowUps = Callable[[Task, dict[str, Any] | None, Job | None], list[NewTask]]
Gate = Callable[[], str | None]
# Types not to claim now, with why (a local task predicted not to fit the memory limit): given the claimable types
# and how many tasks run now.
TypeGate = Callable[[list[TaskType], int], dict[TaskType, str]]
MEASURED = frozenset({TaskType.TRANSCRIBE})  # types whose local runs' cost is recorded for the predictions
SlotLimit = Callable[[], int]
TypeLimit = Callable[[TaskType, int], int]


@dataclass(frozen=True)
class PoolConfig:
    """How a pool runs: slots, lease timing, shutdown grace, which tasks it takes, the retry policy, the settings."""

    slots: int = 8
    lease_seconds: float = 30.0
    grace_seconds: float = 20.0
    control_seconds: float = 0.5
    idle_seconds: float = 0.5
    rescue_seconds: float = 5.0
    types: tuple[TaskType, ...] | None = None
    type_limits: dict[TaskType, int] = field(default_factory=dict)
    # Successors read files this machine wrote (chunks, downloads): pin them here unless storage is shared.
    pin_successors: bool = True
    db_retry_max_seconds: float = 10.0
    group: str | None = None  # claim only tasks of this job group (trax batch, the API); None = every group
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    # What handlers are told (None: every default, scratch in a temporary folder). The daemon swaps in a new
    # config when config.toml changes; each task reads the settings of the moment it was claimed.
    settings: Settings | None = None
    # Queue a NOTIFY task per configured target when a job ends (the daemon; `trax batch` reports on its own).
    notify: bool = False
    # Where paid results wait when the database will not take them (None: $TRAX_HOME/spool with settings; a bare
    # pool without settings keeps them in memory only).
    spool_dir: Path | None = None


@dataclass(frozen=True)
class PoolWiring:
    """What a pool is given besides its config: who it is, its clock and dice, and the hooks of whoever runs it."""

    owner: Owner | None = None
    clock: Clock | None = None  # default: the store's clock, else the system's
    rng: random.Random | None = None
    gate: Gate | None = None  # a reason not to claim now (resource limits, a paused batch), or None
    slot_limit: SlotLimit | None = None  # slots usable now (resource scaling)
    type_limit: TypeLimit | None = None  # a CPU-bound type's slot limit now (lowered by heat)
    stop_local: Gate | None = None  # a reason to stop local transcriptions at their next chunk (strict run policy)
    type_gate: TypeGate | None = None  # types held back now (predicted memory), each with a reason
    memory: Callable[[], float] | None = None  # RSS MB of the process tree now (a sample at most a second old)
    follow_ups: FollowUps = pipelines.follow_ups
    on_outcome: Callable[[Outcome, bool], None] | None = None  # told of every settled run and whether it took


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
    crashed: str | None = None  # a background loop's bug that stopped the run (see traxd.supervision)


class Pool:
    """Runs tasks from the store on `slots` threads until stopped, drained or told to stop through the DB."""

    def __init__(self, store: Store, registry: Registry, config: PoolConfig | None = None,
                 wiring: PoolWiring | None = None) -> None:  # fmt: skip
        wiring = wiring or PoolWiring()
        self.store = store
        self._voices = Voices(store.engine)  # enrolled voice prints, read when a DIARIZE task asks
        self.registry = registry
        self.config = config or PoolConfig()
        self.owner = wiring.owner or Owner.current()
        self.owner_id = str(self.owner)
        self.clock = wiring.clock or store.clock or SystemClock()
        self.rng = wiring.rng or random.Random()
        self.wiring = wiring
        self.stats = PoolStats()
        self._bare = bare_settings()  # what tasks of a pool without settings get, looked up once
        # Finished runs, and None as a wake-up call: the dispatcher blocks on this one queue and nothing else.
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._arrived: list[Outcome] = []  # taken off the queue while waiting, settled next round
        self._running: dict[int, TaskContext] = {}  # task id -> the context it runs with
        self._yielding: set[int] = set()  # told to stop at their next chunk: released, not failed, when they do
        self._lock = threading.Lock()
        self._stopping = False  # a plain flag, not an Event: request_stop runs in signal handlers
        self._stop_now = False
        self._controls: dict[str, Control] = {}
        self._controls_read = -1e9
        self._unsettled: list[Outcome] = []
        self._jobs: dict[int, Job | None] = {}
        self._rss: dict[int, tuple[float, float]] = {}  # measured task id -> (RSS when it started, highest since)
        self._db_backoff = 0.0
        self._debug = False  # debug logging is on (looked up once a round)
        self.writes = DatabaseWrites(store, self.wake)
        spool_dir = self.config.spool_dir or (self.config.settings.home / "spool" if self.config.settings else None)
        self.paid = PaidResults(store, Spool(spool_dir) if spool_dir else None, self.config.db_retry_max_seconds,
                                self.rng)  # fmt: skip
        self.started_at = self.clock.now()
        upkeep = Upkeep(self.config.lease_seconds, self.config.rescue_seconds, self.config.slots)
        self.maintenance = Maintenance(store, self.owner, self.clock, Held(self.active_tasks, self.lease_lost),
                                       self.writes, upkeep, self.background_failed)  # fmt: skip
        self.maintenance.notify_settings = self.config.settings if self.config.notify else None

    # -- public ---------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        """Tasks running right now."""
        with self._lock:
            return len(self._running)

    def active_tasks(self) -> list[Task]:
        """Snapshots of the tasks running now."""
        with self._lock:
            return [ctx.task for ctx in self._running.values()]

    def wake(self) -> None:
        """Look for work now instead of at the next poll (new tasks were added in-process)."""
        self._outcomes.put(None)

    def slots_now(self) -> int:
        """Slots usable now: config.slots, lowered by the slot_limit hook (resource scaling), at least 1."""
        if self.wiring.slot_limit is None:
            return self.config.slots
        return max(1, min(self.config.slots, self.wiring.slot_limit()))

    def use_settings(self, settings: Settings) -> None:
        """Tasks claimed from now on get these settings (config.toml changed); running ones keep theirs."""
        self.config = replace(self.config, settings=settings)
        self.maintenance.notify_settings = settings if self.config.notify else None

    def request_stop(self, now: bool = False) -> None:
        """Stop claiming; with now=True do not wait for running tasks (signal handlers call this).

        Plain assignments only: a handler runs between two bytecodes of the main thread, which may then hold an
        Event's internal lock (inside its own wait), so an Event.set() here could deadlock the daemon. Every wait
        of the dispatcher polls these flags at least every 50 ms.
        """
        self._stop_now = self._stop_now or now
        self._stopping = True

    def background_failed(self, loop: str, exc: BaseException) -> None:
        """A background loop ended on a bug (already logged with its traceback): stop as `traxctl stop` does."""
        self.stats.crashed = self.stats.crashed or f"{loop}: {exc!r}"
        self.request_stop()
        self.wake()

    def run(self, drain: bool = False) -> PoolStats:
        """Claim and run until stopped (signal, control row) or, with drain, until nothing is left to run."""
        self.started_at = self.clock.now()  # before the slot threads start: a stop from now on is for this run
        self.maintenance.start()
        slots: Slots[TaskContext] = Slots(self.config.slots, self._work)  # closed by _shutdown, whatever happens
        try:
            self._loop(slots, drain)
        finally:
            self._shutdown(slots)
            self.maintenance.stop()
        return self.stats

    # -- the dispatcher -------------------------------------------------------------------------
    def _loop(self, slots: Slots[TaskContext], drain: bool) -> None:
        while True:
            try:
                state = self._control_state()
                stopping = self._stopping or state is ControlState.STOPPING
                claimed = self._round(slots, claim=not stopping and state is ControlState.RUNNING)
                if drain and not stopping and not claimed and self.active == 0 and self._drained():
                    return
            except self.store.unavailable as exc:
                self._db_outage(exc, slots)
                continue
            self._db_backoff = 0.0
            self.paid.back()
            if stopping:
                glob = self._controls.get(GLOBAL_SCOPE)
                if glob is not None and glob.stops(self.started_at) and glob.reason == "now":
                    self._stop_now = True
                return
            if claimed == 0 or self.active >= self.slots_now():
                self._wait(self.config.idle_seconds, slots)
                self._linger()

    def _db_outage(self, exc: BaseException, slots: Slots[TaskContext]) -> None:
        """The database is unreachable: keep unsettled outcomes, back off, and try again (the pool reconnects)."""
        self._db_backoff = min(self.config.db_retry_max_seconds, max(0.25, self._db_backoff * 2))
        if self.writes.failed(exc):
            self.stats.paused_reason = self.writes.reason
        else:
            log.warning("database_unavailable", error=str(exc).splitlines()[0][:300], retry_in=self._db_backoff)
            self.paid.outage(exc)
        self._pause(self._db_backoff, slots)

    def _round(self, slots: Slots[TaskContext], claim: bool) -> int:
        """Settle every finished run and claim for the free slots, in one transaction."""
        if not self.paid.replayed:
            self.paid.replay()  # what a killed predecessor paid for is committed before anything is claimed
        outcomes = self._unsettled + self._drain_outcomes()
        self._unsettled = outcomes  # kept until the transaction that settles them commits
        if self._yielding or self.wiring.stop_local is not None:
            outcomes = self._yield_local(outcomes)
        self._debug = log.is_enabled_for(logging.DEBUG)  # asked once a round: two debug calls cost 6 µs a task
        self._measure()
        prepared = self._prepare(outcomes)
        types, limit = self._claim_plan(prepared[2]) if claim else ([], 0)
        if not outcomes and limit <= 0:
            return 0
        claimed, jobs = self._commit(prepared, limit, types)
        slots.hand(self._start(claimed, jobs))
        self.stats.claimed += len(claimed)
        return len(claimed)

    def _claim_plan(self, decisions: list[Decision]) -> tuple[list[TaskType], int]:
        """Which types to claim and how many: free slots, type limits, pauses, resource gate."""
        pausing = {d.pause_scope for d in decisions if d.pause_scope}
        busy = self._busy()
        types = [t for t in self._claimable_types(busy) if t.value not in pausing]
        full = self.writes.reason or self._paid_waiting()
        limit = self._claim_limit(types, busy) if types and full is None else 0
        if full is not None:
            self.stats.paused_reason = full
        if limit > 0 and self.wiring.type_gate is not None and (held := self.wiring.type_gate(types, busy.total())):
            self.stats.paused_reason = next(iter(held.values()))  # the others are still claimed
            types = [t for t in types if t not in held]
            limit = self._claim_limit(types, busy) if types else 0
        if limit > 0 and self.wiring.gate is not None and (reason := self.wiring.gate()):
            self.stats.paused_reason = reason
            limit = 0
        return types, limit

    def _paid_waiting(self) -> str | None:
        """Why nothing is claimed while a paid result waits for the database (new work would only pile up)."""
        waiting = self.paid.waiting
        return f"{waiting} paid result(s) wait for the database to take them" if waiting else None

    def _commit(self, prepared: Prepared, limit: int, types: list[TaskType]) -> tuple[list[Task], dict[int, Job]]:
        """One exchange with the store; afterwards report each settled run."""
        done, failed, decisions, events = prepared
        ex = self.store.exchange(
            self.owner_id,
            [Completion(o.task.lease, o.result, succ, self._cost(o)) for o, succ in done],
            [FailedRun(o.task.lease, d, o.failure.error_type if o.failure else "Error", e)
             for o, d, e in zip(failed, decisions, events)],
            limit, self.config.lease_seconds, types, self.owner.host, self.config.group,
        )  # fmt: skip
        self._unsettled = []
        for (o, _), took in zip(done, ex.done):
            self._finish(o, took)
        for o, d, took in zip(failed, decisions, ex.failed):
            self._finished_failure(o, d, took)
        ending = [o for (o, succ), took in zip(done, ex.done) if not took or all(t.type is TaskType.NOTIFY for t in succ)]
        ending += [o for o, d, took in zip(failed, decisions, ex.failed) if d.state.terminal or not took]
        self._remove_scratch(ending)
        return ex.claimed, ex.jobs

    def _remove_scratch(self, outcomes: list[Outcome]) -> None:
        """Chunk folders of jobs that have just ended in any state (a lost lease may be a cancel) go now."""
        settings = self.config.settings
        if settings is None:
            return
        for o in outcomes:
            scratch.remove_if_ended(self.store, settings.tmp_dir, o.task.job_id, o.task.id)

    def _linger(self, seconds: float = 0.002) -> None:
        """Give other slots a moment to finish too, so one transaction settles several runs."""
        deadline = time.monotonic() + seconds
        want = max(1, self.active // 2)
        while len(self._arrived) < want and (left := deadline - time.monotonic()) > 0:
            if not self._take(left):
                return

    def _pause(self, seconds: float, slots: Slots[TaskContext]) -> None:
        """Sleep `seconds`, cut short by a stop request; handed tasks still get their threads (Slots.nudge)."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.05, left))
            slots.nudge()

    def _wait(self, seconds: float, slots: Slots[TaskContext]) -> None:
        """Sleep until an outcome arrives, someone wakes us, or `seconds` pass (a stop request within 50 ms); every
        50 ms, tasks still waiting for a slot thread get one (see Slots.nudge)."""
        deadline = time.monotonic() + seconds
        while not self._arrived and not self._stopping and (left := deadline - time.monotonic()) > 0:
            if self._take(min(0.05, left)) is None:
                return
            slots.nudge()

    def _take(self, seconds: float) -> bool | None:
        """Wait up to `seconds` for the next outcome: True when one came, None when woken, False on time-out."""
        try:
            outcome = self._outcomes.get(timeout=seconds)
        except queue.Empty:
            return False
        if outcome is None:
            return None
        self._arrived.append(outcome)
        return True

    def _control_state(self) -> ControlState:
        now = time.monotonic()
        if now - self._controls_read >= self.config.control_seconds:
            self._controls = self.store.controls()
            self._controls_read = now
        glob = self._controls.get(GLOBAL_SCOPE)
        self.stats.paused_reason = glob.reason if glob and glob.state is ControlState.PAUSED else None
        if glob is None or (glob.state is ControlState.STOPPING and not glob.stops(self.started_at)):
            return ControlState.RUNNING  # a stop request older than this pool was for others
        return glob.state

    def _busy(self) -> Counter[TaskType]:
        """Tasks running now, per type (read once a round for the claim's types and limit)."""
        with self._lock:
            return Counter(ctx.task.type for ctx in self._running.values())

    def _claimable_types(self, busy: Counter[TaskType]) -> list[TaskType]:
        base = list(self.config.types) if self.config.types is not None else self.registry.types()
        paused = {scope for scope, c in self._controls.items() if scope != GLOBAL_SCOPE and c.state is ControlState.PAUSED}
        out = []
        for t in base:
            limit = self._type_limit(t)
            if t.value not in paused and (limit is None or busy[t] < limit):
                out.append(t)
        return out

    def _type_limit(self, t: TaskType) -> int | None:
        """The slots type `t` may use now: its configured limit, lowered by the type_limit hook (heat)."""
        limit = self.config.type_limits.get(t)
        if limit is None or self.wiring.type_limit is None:
            return limit
        return self.wiring.type_limit(t, limit)

    def _claim_limit(self, types: list[TaskType], busy: Counter[TaskType]) -> int:
        free = self.slots_now() - busy.total()
        for t in types:
            limit = self._type_limit(t)
            if limit is not None:
                free = min(free, limit - busy[t])
        return free

    def _yield_local(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Strict run policy: local transcriptions stop at their next chunk and go back to the queue as released
        (attempt refunded, checkpoint kept); the outcomes left to settle as usual are returned."""
        reason = self.wiring.stop_local() if self.wiring.stop_local is not None else None
        if reason is not None:
            with self._lock:
                told = [c for i, c in self._running.items() if i not in self._yielding and is_local_transcription(c)]
            for ctx in told:
                self._yielding.add(ctx.task.id)
                ctx.cancelled.set()  # checked between chunks (handlers/transcribe.py); the chunk in hand finishes
                log.warning("task_stopping_at_chunk", task_id=ctx.task.id, reason=reason)
        stopped = [o for o in outcomes if o.task.id in self._yielding and o.failure and o.failure.kind is ErrorKind.RETRYABLE]
        for o in stopped:
            with self._lock:
                self._running.pop(o.task.id, None)
            if self.store.release(o.task.lease):
                self.stats.released += 1
                log.info("task_released", task_id=o.task.id, reason="run policy")
            self._unsettled.remove(o)
        done = {o.task.id for o in outcomes if o.task.id in self._yielding}
        self._yielding -= done
        return [o for o in outcomes if o not in stopped]

    def _start(self, claimed: list[Task], jobs: dict[int, Job]) -> list[TaskContext]:
        """The contexts claimed tasks run with (their jobs came with the claim), now counted as running."""
        contexts = [self._context(task, jobs.get(task.job_id or 0)) for task in claimed]
        with self._lock:
            for ctx in contexts:
                self._running[ctx.task.id] = ctx
        if self.wiring.memory is not None and any(t.type in MEASURED for t in claimed):
            rss = self.wiring.memory()
            self._rss.update((t.id, (rss, rss)) for t in claimed if t.type in MEASURED)
        for task in claimed if self._debug else ():
            log.debug("task_claimed", task_id=task.id, type=task.type.value, attempt=task.attempts)
        return contexts

    def _checkpoint(self, task: Task, cancelled: Cancellation) -> Checkpoint:
        def checkpoint(data: dict[str, Any], *, paid: bool = False) -> bool:
            # The lease is made only when a handler asks. A paid result must land: PaidResults spools and retries.
            if paid:
                return self.paid.commit(task.lease, task.type.value, data, cancelled)
            return self.store.checkpoint(task.lease, data)

        return checkpoint

    def _work(self, ctx: TaskContext) -> None:
        self._outcomes.put(self._keep_download(run_task(self.registry.get(ctx.task.type), ctx), ctx))

    def _keep_download(self, o: Outcome, ctx: TaskContext) -> Outcome:
        """A DOWNLOAD that ends its job hands its file to the output folder (its scratch goes when the job ends)."""
        if o.task.type is not TaskType.DOWNLOAD or o.result is None or o.failure or self.wiring.follow_ups(o.task, o.result, ctx.job):
            return o
        from traxd.handlers import download  # here: its SDKs (httpx, yt-dlp) stay out of a queue that never downloads

        try:
            return replace(o, result=download.deliver(ctx, o.result))
        except Exception as exc:  # noqa: BLE001 - like a handler's failure: classified, retried or failed
            return Outcome(o.task, None, classify(exc), o.seconds)

    def _context(self, task: Task, job: Job | None) -> TaskContext:
        settings = self.config.settings
        cancelled = Cancellation()
        checkpoint = self._checkpoint(task, cancelled)
        if settings is None:  # a bare pool (tests, benchmarks): every default, a temporary scratch folder
            return TaskContext(task=task, job=job, settings=self._bare, checkpoint=checkpoint, cancelled=cancelled,
                               voices=self._voices.prints)  # fmt: skip
        work_dir = scratch.scratch_dir(settings.tmp_dir, task.job_id, task.id)
        return TaskContext(task=task, job=job, settings=settings, work_dir=work_dir, checkpoint=checkpoint,
                           cancelled=cancelled, voices=self._voices.prints)  # fmt: skip

    # -- cost of local runs ---------------------------------------------------------------------
    def _measure(self) -> None:
        """Raise each measured running task's highest RSS to the process tree's now (once a round, ~1 s samples)."""
        if self._rss and self.wiring.memory is not None:
            rss = self.wiring.memory()
            self._rss = {i: (start, max(peak, rss)) for i, (start, peak) in self._rss.items()}

    def _cost(self, o: Outcome) -> TaskCost | None:
        """What a finished local TRANSCRIBE cost, to predict the next ones from; None when it cannot be told.

        The memory is the growth of the whole process tree's RSS from the run's start to the highest sample
        (about every second) taken while it ran: what it adds to what the memory limit sees. It misses a spike
        shorter than a sample, and counts the growth of any task that ran beside it (cautious, never low for that).
        A run resumed from a checkpoint did only part of the work, so it is not kept.
        """
        rss = self._rss.get(o.task.id)  # dropped when the run is settled (_finish), whatever its end
        r = o.result or {}
        if rss is None or r.get("backend") != "local" or not r.get("model") or o.task.result:
            return None
        seconds = r.get("duration")
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            return None
        return TaskCost(self.owner.host, o.task.type, str(r["model"]), float(seconds), o.seconds,
                        max(0.0, rss[1] - rss[0]))  # fmt: skip

    # -- settling -------------------------------------------------------------------------------
    def _drain_outcomes(self) -> list[Outcome]:
        batch, self._arrived = self._arrived, []
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return batch
            if outcome is not None:
                batch.append(outcome)

    def _prepare(self, outcomes: list[Outcome]) -> Prepared:
        """Split finished runs into completions (with successors) and failure decisions; free their slots."""
        now = self.clock.now()
        done: list[tuple[Outcome, list[NewTask]]] = []
        failed: list[Outcome] = []
        decisions: list[Decision] = []
        events: list[list[NewTask]] = []
        with self._lock:
            for o in outcomes:
                running = self._running.pop(o.task.id, None)
                if running is not None:
                    self._jobs[o.task.id] = running.job
        for o in outcomes:
            job = self._jobs.get(o.task.id)
            if o.failure is None:
                done.append((o, self._successors(o, job, now)))
                continue
            failed.append(o)
            decisions.append(decide_failure(o.task, o.failure, now, self.config.policy, self.rng))
            ended = decisions[-1].state.terminal
            events.append(self._end_events(job, decisions[-1].state, {"error": decisions[-1].message}, now) if ended else [])
        return done, failed, decisions, events

    def _successors(self, o: Outcome, job: Job | None, now: float | None = None) -> list[NewTask]:
        follow = self.wiring.follow_ups(o.task, o.result, job)
        if not follow and o.task.job_id is not None and o.task.type is not TaskType.NOTIFY:  # the job has ended
            follow = self._end_events(job, TaskState.SUCCEEDED, o.result or {}, now or self.clock.now())
        if not self.config.pin_successors:
            return follow
        return [t if t.affinity else replace(t, affinity=self.owner.host) for t in follow]

    def _end_events(self, job: Job | None, state: TaskState, detail: dict[str, Any], now: float) -> list[NewTask]:
        """The NOTIFY tasks of a job that has just ended, when this pool notifies and targets are configured."""
        if not self.config.notify:
            return []
        return notify.end_events(self.config.settings, job, state, detail, now)

    def _settle(self, outcomes: list[Outcome]) -> None:
        """Settle without claiming (shutdown)."""
        self._unsettled = outcomes
        if outcomes:
            self._commit(self._prepare(outcomes), 0, [])

    def _finished_failure(self, o: Outcome, decision: Decision, took: bool) -> None:
        if took and decision.pause_scope:
            self._controls_read = -1e9  # re-read controls before the next claim
            log.warning("task_type_paused", type=decision.pause_scope, reason=decision.message)
        self.stats.retried += int(took and decision.state is TaskState.QUEUED)
        self.stats.failed += int(took and decision.state is not TaskState.QUEUED)
        self._finish(o, took)

    def _finish(self, outcome: Outcome, took: bool) -> None:
        self._jobs.pop(outcome.task.id, None)
        self._rss.pop(outcome.task.id, None)
        if not took:
            self.stats.lost += 1
            log.warning("lease_lost", task_id=outcome.task.id, attempt=outcome.task.attempts)
        elif outcome.ok:
            self.stats.succeeded += 1
            if self._debug:
                log.debug("task_succeeded", task_id=outcome.task.id, seconds=round(outcome.seconds, 3))
        else:
            assert outcome.failure is not None
            log.info("task_failed", task_id=outcome.task.id, kind=outcome.failure.kind.value,
                     error=outcome.failure.message.splitlines()[0][:300])  # fmt: skip
        if self.wiring.on_outcome is not None:
            self.wiring.on_outcome(outcome, took)

    def lease_lost(self, task_ids: set[int]) -> None:
        """Maintenance found these leases gone (rescued elsewhere or cancelled): tell their handlers."""
        with self._lock:
            for task_id in task_ids:
                running = self._running.get(task_id)
                if running is not None:
                    running.cancelled.set()

    def _drained(self) -> bool:
        types = self._claimable_types(self._busy())
        return not types or not self.store.has_work(types, self.config.group)

    # -- shutdown -------------------------------------------------------------------------------
    def _shutdown(self, slots: Slots[TaskContext]) -> None:
        """Let running tasks finish within the grace period, settle them, release the rest.

        Tasks handed to the slots but not started yet never start: they go back to the queue at once (with the rest
        if the database is out then), and the grace period waits only for the ones that run.
        """
        unstarted = [ctx.task for ctx in slots.close()]
        with self._lock:
            for task in unstarted:
                self._running.pop(task.id, None)
        try:
            self._release(unstarted)  # at once: another worker may run them while ours finish
            unstarted = []
        except self.store.unavailable:
            pass  # tried again after the grace period, with the rest
        deadline = time.monotonic() + (0.0 if self._stop_now else self.config.grace_seconds)
        while self.active and time.monotonic() < deadline and not self._stop_now:  # a second signal cuts it short
            try:
                self._outcomes_wait(min(0.2, max(0.01, deadline - time.monotonic())))
                self._settle(self._unsettled + self._drain_outcomes())
            except self.store.unavailable as exc:
                self._db_outage(exc, slots)
        try:
            self._settle(self._unsettled + self._drain_outcomes())
            self._release(unstarted + self.active_tasks())
        except self.store.unavailable as exc:
            # Whatever is left keeps its lease until it expires; the rescuer of the next start takes it.
            log.warning("shutdown_without_database", error=str(exc).splitlines()[0][:300])
        self.lease_lost(set(self._running))  # a paid result still waiting for the database stays in the spool

    def _outcomes_wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._arrived and (left := deadline - time.monotonic()) > 0:
            self._take(min(0.02, left))

    def _release(self, tasks: list[Task]) -> None:
        """Give these leases back (their tasks are queued again at once) and tell any handler still running."""
        for task in tasks:
            with self._lock:
                running = self._running.pop(task.id, None)
            if running is not None:
                running.cancelled.set()
            self._rss.pop(task.id, None)
            if self.store.release(task.lease):
                self.stats.released += 1
                log.info("task_released", task_id=task.id)
