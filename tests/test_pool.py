"""The pool on a real SQLite file: exactly-once under threads, priorities, retries, poison, pause by type."""

from __future__ import annotations

import collections
import json
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.daemon_helpers import wait_until
from traxd.clock import FakeClock
from traxd.config import Settings
from traxd.daemon import slots as slots_module
from traxd.daemon.memory_gate import MemoryGate
from traxd.daemon.owner import Owner
from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.daemon.slots import Slots
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.errors import AuthError, PermanentError, RetryableError
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Completion, Exchange, Store
from traxd.queue.transitions import RetryPolicy
from traxd.types import ControlState, NewJob, NewTask, TaskCost, TaskState, TaskType

T = TaskType.TRANSCRIBE


class RecordingStore(Store):
    """Remembers the priorities of every claimed batch, in claim order."""

    def __init__(self, base: Store) -> None:
        super().__init__(base.engine, base.clock)
        self.batches: list[list[int]] = []

    def exchange(self, *args: Any, **kwargs: Any) -> Exchange:
        ex = super().exchange(*args, **kwargs)
        if ex.claimed:
            self.batches.append([t.priority for t in ex.claimed])
        return ex


def test_8_slots_5000_tasks_each_runs_exactly_once_in_priority_order(store: Store) -> None:
    rec = RecordingStore(store)
    rec.enqueue_many([NewTask(T, {"i": i}, priority=random.Random(i).randint(0, 15)) for i in range(5000)])
    runs: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def noop(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        with lock:
            runs[payload["i"]] += 1
        return {"i": payload["i"]}

    stats = Pool(rec, Registry({T: noop}), PoolConfig(slots=8)).run(drain=True)
    assert stats.succeeded == 5000 and stats.lost == 0
    assert len(runs) == 5000 and set(runs.values()) == {1}
    assert rec.counts()["succeeded"] == 5000
    flat = [p for batch in rec.batches for p in batch]
    assert flat == sorted(flat), "a claim took a lower-priority task while a higher one was queued"
    assert max(len(b) for b in rec.batches) <= 8


def run_in_thread(pool: Pool, drain: bool = True) -> threading.Thread:
    thread = threading.Thread(target=pool.run, kwargs={"drain": drain}, daemon=True)
    thread.start()
    return thread


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not predicate():
            assert not done.wait(0.02), "condition not reached in time"
    finally:
        deadline.cancel()


def test_retryable_errors_back_off_on_the_injected_clock_then_succeed(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}, priority=6))
    calls: list[int] = []

    def flaky(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(ctx.task.attempts)
        if len(calls) < 3:
            raise RetryableError("HTTP 503", retry_after=30 if len(calls) == 2 else None)
        return {"ok": True}

    policy = RetryPolicy(base_seconds=10, jitter=0)
    pool = Pool(store, Registry({T: flaky}), PoolConfig(slots=2, idle_seconds=0.02, policy=policy), PoolWiring(clock=clock))
    thread = run_in_thread(pool)
    wait_for(lambda: len(calls) == 1 and store.counts()["queued"] == 1)
    task = store.get(1)
    assert task is not None and task.run_after == clock.now() + 10 and task.priority == 7
    clock.advance(10)
    pool.wake()
    wait_for(lambda: len(calls) == 2 and store.counts()["queued"] == 1)
    task = store.get(1)
    assert task is not None and task.run_after == clock.now() + 30 and task.priority == 8
    clock.advance(30)
    pool.wake()
    thread.join(20)
    assert not thread.is_alive()
    done = store.get(1)
    assert done is not None and done.state is TaskState.SUCCEEDED and calls == [1, 2, 3]
    assert [e["message"] for e in done.errors] == ["HTTP 503", "HTTP 503"]


def test_permanent_error_fails_at_once_and_attempts_exhausted_fail(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {"kind": "permanent"}))
    store.enqueue(NewTask(T, {"kind": "flaky"}, max_retries=0))

    def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        if payload["kind"] == "permanent":
            raise PermanentError("not media: no audio stream")
        raise RetryableError("timeout")

    stats = Pool(store, Registry({T: handler}), PoolConfig(slots=2), PoolWiring(clock=clock)).run(drain=True)
    assert stats.failed == 2
    first, second = store.get(1), store.get(2)
    assert first is not None and first.error_message == "not media: no audio stream" and first.attempts == 1
    assert second is not None and second.error_message == "gave up after 1 attempts: timeout"


def test_auth_error_pauses_only_that_type_and_resume_continues(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(T, {"i": i}) for i in range(3)] + [NewTask(TaskType.ENHANCE, {})])
    key_ok = threading.Event()
    ran: list[str] = []

    def transcribe(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        if not key_ok.is_set():
            raise AuthError("401: invalid OpenAI key (set OPENAI_API_KEY)")
        ran.append("transcribe")
        return {}

    def enhance(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        ran.append("enhance")
        return {}

    pool = Pool(store, Registry({T: transcribe, TaskType.ENHANCE: enhance}),
                PoolConfig(slots=1, idle_seconds=0.02, control_seconds=0.05), PoolWiring(clock=clock))  # fmt: skip
    thread = run_in_thread(pool, drain=False)
    wait_for(lambda: "transcribe" in store.controls() and ran == ["enhance"])
    assert store.controls()["transcribe"].state is ControlState.PAUSED
    assert store.counts()["queued"] == 3 and all(t.attempts == 0 for t in store.list_tasks(TaskState.QUEUED))
    key_ok.set()
    store.resume_all()
    wait_for(lambda: store.counts()["succeeded"] == 4)
    pool.request_stop()
    thread.join(20)
    assert not thread.is_alive() and ran.count("transcribe") == 3


def test_a_task_whose_worker_keeps_dying_ends_as_poison(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}, max_retries=2))
    pool = Pool(store, Registry({T: lambda c, p: {}}), PoolConfig(lease_seconds=30), PoolWiring(clock=clock))
    for attempt in range(1, 4):
        (run,) = store.claim("dead-host:1:1.00", 1, 30)
        assert run.attempts == attempt
        clock.advance(31)
        assert pool.maintenance.rescue() == 1
    task = store.get(1)
    assert task is not None and task.state is TaskState.FAILED and task.error_kind == "poison"
    assert "died 3 times" in (task.error_message or "")


def test_rescue_leaves_live_leases_alone(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}))
    store.claim("other-host:1:1.00", 1, 30)
    pool = Pool(store, Registry({T: lambda c, p: {}}), wiring=PoolWiring(clock=clock))
    assert pool.maintenance.rescue() == 0
    clock.advance(29)
    assert pool.maintenance.rescue() == 0
    clock.advance(2)
    assert pool.maintenance.rescue() == 1


def test_successors_are_pinned_to_the_host_that_wrote_their_files(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(TaskType.PREPROCESS, {}))

    def follow(task: Any, result: Any, job: Any) -> list[NewTask]:
        return [NewTask(T, {"chunks": 1})] if task.type is TaskType.PREPROCESS else []

    registry = Registry({TaskType.PREPROCESS: lambda c, p: {}, T: lambda c, p: {}})
    pool = Pool(store, registry, PoolConfig(types=(TaskType.PREPROCESS,)), PoolWiring(clock=clock, follow_ups=follow))
    pool.run(drain=True)
    (succ,) = store.list_tasks(TaskState.QUEUED)
    assert succ.affinity == pool.owner.host
    shared = Pool(store, registry, PoolConfig(pin_successors=False), PoolWiring(clock=clock, follow_ups=follow))
    assert shared._successors(Outcome_of(TaskType.PREPROCESS), None)[0].affinity is None


def Outcome_of(task_type: TaskType) -> Any:
    from traxd.daemon.runner import Outcome
    from traxd.types import Task

    task = Task(1, task_type, {}, TaskState.RUNNING, 6, 1, 3, 0.0, "o", 1.0, None, None, [], None, None, None,
                0.0, 0.0, 0.0, None)  # fmt: skip
    return Outcome(task, {})


def test_a_stop_request_never_waits_for_a_lock_the_interrupted_thread_may_hold(store: Store) -> None:
    """Signal handlers call request_stop between two bytecodes of the main thread, which can then be inside one
    of the dispatcher's own waits, holding a lock. Taking that lock there hung a daemon on its second signal (seen
    in CI), so the request must complete while another frame holds every lock the pool owns."""
    store.enqueue(NewTask(T, {}))
    pool = Pool(store, Registry({T: lambda c, p: {}}), PoolConfig(idle_seconds=0.01))
    asked = threading.Event()

    def handler_inside_a_wait() -> None:
        with pool._lock:  # what the interrupted main thread may hold at that moment (its waits hold no lock)
            pool.request_stop(now=True)
            asked.set()

    thread = threading.Thread(target=handler_inside_a_wait, daemon=True)
    thread.start()
    assert asked.wait(10), "request_stop blocked on a lock held by the frame it interrupted"
    thread.join(10)
    stats = pool.run(drain=False)  # and the dispatcher honours it: it stops without claiming
    assert stats.claimed == 0 and store.counts()["queued"] == 1


def test_a_database_error_while_reading_the_claimed_jobs_leaves_nothing_leased_that_no_one_starts(store: Store) -> None:
    """The jobs of a claim are read in the claim's own transaction: when that read fails (the database went away
    just then), the claim is undone and the task runs at the next round, not after its lease ran out and a rescue."""
    from sqlalchemy.exc import OperationalError

    job, _, _ = store.create_job(NewJob("/in/a.wav", "a", "/out"), [NewTask(T, {"i": 1})])
    real, failures = Store._jobs_in, []

    def fails_once(conn: Any, job_ids: Any) -> Any:
        if not failures:
            failures.append(store.counts()["running"])  # the claim happened and is not committed yet
            raise OperationalError("SELECT jobs", {}, Exception("database is gone"))
        return real(conn, job_ids)

    ran: list[tuple[int, int | None]] = []

    def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        ran.append((ctx.task.attempts, ctx.job.id if ctx.job else None))
        return {}

    with mock.patch.object(Store, "_jobs_in", staticmethod(fails_once)):
        stats = Pool(store, Registry({T: handler}), PoolConfig(slots=2, lease_seconds=600)).run(drain=True)
    assert failures == [0]
    assert ran == [(1, job.id)] and stats.succeeded == 1 and stats.lost == 0


def test_each_task_is_logged_at_debug_level_and_not_below_it(tmp_path: Path) -> None:
    """The pool asks once a round whether debug logging is on; on, every task's claim and success is a line.
    (A fresh process: structlog keeps a logger's level from its first use.)"""
    script = """
import sys
from pathlib import Path
from traxd import logging as trax_logging
trax_logging.configure(sys.argv[1], Path(sys.argv[2]) / "logs", tty=False)
from traxd.daemon.pool import Pool, PoolConfig
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers.registry import Registry
from traxd.queue.store import Store
from traxd.types import NewTask, TaskType
engine = open_engine("sqlite:///" + sys.argv[2] + "/q.db")
upgrade(engine)
store = Store(engine)
store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}) for i in range(3)])
Pool(store, Registry({TaskType.TRANSCRIBE: lambda _ctx, _payload: {}}), PoolConfig(slots=2)).run(drain=True)
trax_logging.flush()
"""

    def events(level: str) -> list[dict[str, Any]]:
        folder = tmp_path / level
        folder.mkdir()
        subprocess.run([sys.executable, "-c", script, level, str(folder)], check=True, timeout=120)
        lines = [json.loads(line) for line in (folder / "logs" / "traxd.log").read_text().splitlines()]
        return [line for line in lines if line["event"] in ("task_claimed", "task_succeeded")]

    lines = events("debug")
    for event in ("task_claimed", "task_succeeded"):
        assert len({line["task_id"] for line in lines if line["event"] == event}) == 3
    assert events("info") == []


class LongAndWaiting:
    """Two slot threads used to short tasks; one runs a long task and, behind it, a task waits for the dispatcher's
    nudge (held back here to keep that moment). The long task asks the pool to stop, then runs until `release`."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch, at_stop: Callable[[], object] = lambda: None) -> None:
        monkeypatch.setattr(slots_module, "QUICK_SECONDS", 60.0)  # every task counts as short
        monkeypatch.setattr(Slots, "nudge", lambda self: None)
        made: list[Slots[Any]] = []
        real_init = Slots.__init__

        def recording_init(self: Slots[Any], *args: Any, **kwargs: Any) -> None:
            real_init(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(Slots, "__init__", recording_init)
        both, self.long_runs, self.release = threading.Barrier(2, timeout=30), threading.Event(), threading.Event()
        self.ran: list[str] = []

        def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
            self.ran.append(payload["k"])
            if payload["k"] == "warm":
                both.wait()  # both slot threads run one (and are used to short tasks after it)
            elif payload["k"] == "long":
                at_stop()
                self.long_runs.set()
                self.pool.request_stop()
                self.release.wait(90)  # longer than any wait of the tests: only a release at once passes
            return {}

        store.enqueue_many([NewTask(T, {"k": "warm"}), NewTask(T, {"k": "warm"})])
        self.pool = Pool(store, Registry({T: handler}), PoolConfig(slots=2, grace_seconds=60))
        self.thread = run_in_thread(self.pool, drain=False)
        # Both threads asleep again: one still on its way back from a warm-up would take the task behind the long one.
        wait_until(lambda: store.counts()["succeeded"] == 2 and len(made[0]._ready._waiters) == 2, 30,  # type: ignore[attr-defined]
                   "the two warm-up tasks, and both slot threads asleep")  # fmt: skip
        # Both in one transaction: one claim takes both (with two enqueues, a poll between them let a free thread
        # take the second one on its own, and nothing waited behind the long one).
        store.enqueue_many([NewTask(T, {"k": "long"}, priority=0), NewTask(T, {"k": "other"}, priority=1)])
        self.other, self.long_task = store.list_tasks(limit=2)
        self.pool.wake()
        assert self.long_runs.wait(30)

    def finish(self, store: Store) -> None:
        """Let the long task end; the pool stops having given back only the waiting task."""
        assert not self.release.is_set() and self.ran == ["warm", "warm", "long"]
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive() and self.pool.stats.released == 1
        assert store.get(self.long_task.id).state is TaskState.SUCCEEDED  # type: ignore[union-attr]
        assert store.get(self.other.id).state is TaskState.QUEUED  # type: ignore[union-attr]


def test_a_stop_gives_back_at_once_a_task_handed_to_the_slots_but_not_started(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grace period is for tasks that run: a stop must not wait for the long task before giving the waiting
    one back (another worker may run it meanwhile)."""
    case = LongAndWaiting(store, monkeypatch)
    wait_until(lambda: (task := store.get(case.other.id)) is not None and task.state is TaskState.QUEUED, 30,
               "the task that never started to be given back")  # fmt: skip
    case.finish(store)


class FailingReleases(Store):
    """Counts the releases that found the database unavailable."""

    def __init__(self, base: Store) -> None:
        super().__init__(base.engine, base.clock)
        self.failed = 0

    def release(self, lease: Any) -> bool:
        try:
            return super().release(lease)
        except self.unavailable:
            self.failed += 1
            raise


def test_a_task_not_started_is_given_back_after_the_grace_period_when_the_database_was_out_at_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite only (a writer holds the lock past the busy timeout): the release at the stop fails, and the one
    after the running tasks end gives the waiting task back, instead of leaving it leased until its lease expires."""
    path = tmp_path / "trax.db"
    engine = open_engine(f"sqlite:///{path}", busy_timeout_ms=50)
    upgrade(engine)
    store = FailingReleases(Store(engine, FakeClock()))
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        case = LongAndWaiting(store, monkeypatch, at_stop=lambda: blocker.execute("BEGIN IMMEDIATE"))
        wait_until(lambda: store.failed >= 1, 30, "the release at the stop to fail")
        assert store.get(case.other.id).state is TaskState.RUNNING  # type: ignore[union-attr]
        blocker.execute("COMMIT")
        case.finish(store)
    finally:
        blocker.close()
        engine.dispose()


def test_a_type_limit_caps_that_type_and_leaves_the_other_slots_to_the_rest(store: Store) -> None:
    """type_limits: at most one PREPROCESS at a time however many slots are free, while three TRANSCRIBE tasks
    still run together on the other slots."""
    P = TaskType.PREPROCESS
    lock, running, most = threading.Lock(), collections.Counter[str](), collections.Counter[str]()
    together = threading.Barrier(3, timeout=30)  # breaks (and fails the task) unless three TRANSCRIBE run at once

    def track(kind: str, work: Any) -> dict[str, Any]:
        with lock:
            running[kind] += 1
            most[kind] = max(most[kind], running[kind])
        try:
            work()
        finally:
            with lock:
                running[kind] -= 1
        return {}

    def preprocess(_ctx: TaskContext, _payload: dict[str, Any]) -> dict[str, Any]:
        return track("p", lambda: threading.Event().wait(0.1))

    def transcribe(_ctx: TaskContext, _payload: dict[str, Any]) -> dict[str, Any]:
        return track("t", together.wait)

    store.enqueue_many([NewTask(P, {"i": i}) for i in range(4)] + [NewTask(T, {"i": i}, max_retries=0) for i in range(3)])
    config = PoolConfig(slots=4, type_limits={P: 1})
    stats = Pool(store, Registry({P: preprocess, T: transcribe}), config).run(drain=True)
    assert stats.succeeded == 7 and stats.failed == 0
    assert most == {"p": 1, "t": 3}


def test_a_finished_local_transcribe_records_its_cost_and_a_remote_one_does_not(store: Store) -> None:
    """Wall seconds and the process tree's RSS growth while it ran land in task_costs with the completion."""
    store.enqueue(NewTask(T, {"backend": "local"}))
    store.enqueue(NewTask(T, {"backend": "openai"}))
    readings = iter(range(100, 10_000, 50))  # the process tree grows 50 MB between samples

    def run(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        return {"backend": payload["backend"], "model": "tiny.en", "duration": 60.0}

    wiring = PoolWiring(memory=lambda: float(next(readings)))
    stats = Pool(store, Registry({T: run}), PoolConfig(slots=1), wiring).run(drain=True)
    assert stats.succeeded == 2
    (cost,) = store.cost_history(Owner.current().host, T, "tiny.en")
    assert cost.seconds_audio == 60.0 and cost.wall_seconds >= 0 and cost.peak_rss_mb >= 50


def test_the_memory_gate_holds_a_local_transcribe_predicted_not_to_fit_while_others_run(
    store: Store, tmp_path: Path
) -> None:
    """No history: nothing predicted, never held. With history: held while others run, claimed when alone."""
    settings = Settings(home=tmp_path, backend="local", local_model="tiny.en", memory_limit_mb=2048.0)
    store.enqueue_many([NewTask(T, {"past": i}) for i in (1, 2)])
    past = store.claim("me", 2, 30, [T], host="here")
    job, _, _ = store.create_job(NewJob("/in/a.wav", "a", "/out"), [NewTask(T, {"duration": 120.0})])
    gate = MemoryGate(store, settings, lambda: 900.0, "here", refresh_seconds=0.0)
    looked: list[TaskType] = []
    next_queued = store.next_queued
    store.next_queued = lambda t, *a: looked.append(t) or next_queued(t, *a)  # type: ignore[method-assign]
    assert gate([T], 1) == {} and looked == []  # no run of this host recorded: the queue is not even read
    # 600 MB + 5 MB per media second: 1200 MB predicted for 120 s, on top of the 900 MB there now.
    costs = [TaskCost("here", T, "tiny.en", 60.0 * i, 6.0 * i, 600.0 + 5.0 * 60 * i) for i in (1, 2)]
    assert store.exchange("me", [Completion(t.lease, {}, (), c) for t, c in zip(past, costs)], [], 0, 30).done == [True, True]
    reason = f"waiting: predicted 2.1 GB (0.9 GB now + 1.2 GB) for job {job.id} does not fit the 2.0 GB limit"
    assert gate([T], 1) == {T: reason}
    assert gate([T], 0) == {}  # alone it runs: a task that can never fit must not wait forever
    assert gate([TaskType.DOWNLOAD], 1) == {}
