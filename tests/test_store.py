"""The store on a real database file: enqueue, claim, guarded writes, control, heartbeats."""

from __future__ import annotations

import random

import pytest

from tests.store_checks import integrity_ok
from traxd.clock import FakeClock
from traxd.costs import Cost
from traxd.errors import InvalidTaskError
from traxd.queue.store import Completion, Store
from traxd.queue.transitions import RetryPolicy, decide_failure, decide_rescue
from traxd.types import (
    GLOBAL_SCOPE,
    ControlState,
    ErrorKind,
    Failure,
    NewJob,
    NewTask,
    TaskCost,
    TaskState,
    TaskType,
    WorkerInfo,
)

T = TaskType.TRANSCRIBE


def test_enqueue_same_dedupe_key_twice_returns_the_existing_task(store: Store) -> None:
    first, created = store.enqueue(NewTask(T, {"a": 1}, dedupe_key="file:abc"))
    again, created_again = store.enqueue(NewTask(T, {"a": 2}, dedupe_key="file:abc"))
    assert created and not created_again
    assert again.id == first.id and again.payload == {"a": 1}
    assert store.counts()["queued"] == 1


def test_bulk_enqueue_skips_existing_keys(store: Store) -> None:
    store.enqueue(NewTask(T, {}, dedupe_key="k1"))
    n = store.enqueue_many([NewTask(T, {"i": i}, dedupe_key=f"k{i}") for i in range(5)] + [NewTask(T, {})])
    assert n == 5
    assert store.counts()["queued"] == 6


@pytest.mark.parametrize("payload", [["not", "a", "dict"], {"x": object()}, {"x": float("nan")}])
def test_malformed_payload_is_refused_and_nothing_is_written(store: Store, payload: object) -> None:
    with pytest.raises(InvalidTaskError, match="payload"):
        store.enqueue(NewTask(T, payload))  # type: ignore[arg-type]
    with pytest.raises(InvalidTaskError):
        store.enqueue_many([NewTask(T, {}), NewTask(T, payload)])  # type: ignore[arg-type]
    assert sum(store.counts().values()) == 0


def test_refused_job_leaves_no_job_row_and_the_next_write_works(store: Store) -> None:
    # The job row is written before its first task is refused: the whole transaction must be undone, and the
    # connection it ran on must come back without a transaction still open on it.
    with pytest.raises(InvalidTaskError):
        store.create_job(NewJob("/a", "a", "/out"), [NewTask(T, {"x": float("nan")})])
    job, (task,), created = store.create_job(NewJob("/b", "b", "/out"), [NewTask(T, {"path": "/b"})])
    assert created and store.get_job(job.id) == job and store.tasks_of_job(job.id) == [task]
    assert [store.get_job(i) for i in range(1, job.id)] == [None] * (job.id - 1)


def test_unknown_task_type_is_refused(store: Store) -> None:
    with pytest.raises(InvalidTaskError, match="unknown task type 'teleport'"):
        store.enqueue(NewTask("teleport", {}))  # type: ignore[arg-type]
    assert sum(store.counts().values()) == 0


def test_claim_orders_by_priority_then_age_and_counts_the_attempt(store: Store) -> None:
    store.enqueue_many([NewTask(T, {"n": n}, priority=p) for n, p in enumerate([9, 3, 3, 0, 12])])
    claimed = store.claim("me", 3, 30)
    assert [t.payload["n"] for t in claimed] == [3, 1, 2]
    assert all(t.state is TaskState.RUNNING and t.attempts == 1 and t.lease_owner == "me" for t in claimed)
    assert claimed[0].lease_expires_at == store.clock.now() + 30
    assert [t.payload["n"] for t in store.claim("other", 10, 30)] == [0, 4]
    assert store.claim("me", 10, 30) == []


def test_claim_skips_tasks_in_backoff_and_other_types(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {"late": True}, run_after=clock.now() + 60))
    store.enqueue(NewTask(TaskType.ENHANCE, {}))
    assert store.claim("me", 5, 30, [T]) == []
    clock.advance(61)
    assert [t.payload for t in store.claim("me", 5, 30, [T])] == [{"late": True}]


def test_a_stale_worker_changes_nothing_after_its_task_was_reclaimed(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}))
    (stale,) = store.claim("old", 1, 30)
    clock.advance(31)
    rescue = decide_rescue(stale, clock.now(), "lease expired")
    assert store.rescue(stale.lease, rescue)
    (fresh,) = store.claim("new", 1, 30)
    assert fresh.attempts == 2
    assert not store.complete(stale.lease, {"by": "old"})
    assert not store.checkpoint(stale.lease, {"partial": 1})
    assert not store.release(stale.lease)
    failure = decide_failure(stale, Failure(ErrorKind.PERMANENT, "x"), clock.now(), RetryPolicy(), random.Random())
    assert not store.apply(stale.lease, failure)
    assert store.renew("old", [stale.id], 30) == set()
    assert store.complete(fresh.lease, {"by": "new"})
    done = store.get(fresh.id)
    assert done is not None and done.state is TaskState.SUCCEEDED and done.result == {"by": "new"}


def test_completion_and_successors_commit_together(store: Store) -> None:
    job, (first,), created = store.create_job(NewJob("/in/a.wav", "a", "/out"), [NewTask(TaskType.PREPROCESS, {})])
    assert created
    (run,) = store.claim("me", 1, 30)
    assert store.complete(run.lease, {"chunks": 2}, [NewTask(T, {"from": run.id})])
    tasks = store.tasks_of_job(job.id)
    assert [(t.type, t.state) for t in tasks] == [(TaskType.PREPROCESS, TaskState.SUCCEEDED), (T, TaskState.QUEUED)]
    assert tasks[1].job_id == job.id and tasks[1].payload == {"from": first.id}


def test_lost_lease_completion_enqueues_no_successor(store: Store) -> None:
    store.enqueue(NewTask(T, {}))
    (run,) = store.claim("me", 1, 30)
    assert store.cancel(run.id)
    assert not store.complete(run.lease, {}, [NewTask(TaskType.ENHANCE, {})])
    assert store.counts() == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 1}


def test_a_handler_returning_nothing_still_hands_on_to_its_successor(store: Store) -> None:
    store.enqueue(NewTask(T, {}))
    (run,) = store.claim("me", 1, 30)
    assert store.complete(run.lease, None, [NewTask(TaskType.ENHANCE, {"n": 1})])
    (done,) = [t for t in store.list_tasks() if t.id == run.id]
    assert (done.state, done.result) == (TaskState.SUCCEEDED, None)
    assert [t.payload for t in store.list_tasks(TaskState.QUEUED)] == [{"n": 1}]


def test_batch_completion_reports_each_lease(store: Store) -> None:
    store.enqueue_many([NewTask(T, {"i": i}) for i in range(4)])
    runs = store.claim("me", 4, 30)
    store.cancel(runs[1].id)
    took = store.exchange("me", [Completion(r.lease, {"i": r.payload["i"]}) for r in runs], [], 0, 30).done
    assert took == [True, False, True, True]


def test_create_job_twice_with_the_same_key_is_a_noop(store: Store) -> None:
    new = [NewTask(TaskType.PREPROCESS, {"path": "/a"}, dedupe_key="file:x:/out")]
    job1, _, created1 = store.create_job(NewJob("/a", "a", "/out"), new)
    job2, (task2,), created2 = store.create_job(NewJob("/b", "b", "/out"), new)
    assert created1 and not created2 and job2.id == job1.id and task2.payload == {"path": "/a"}


def test_retryable_failure_backs_off_degrades_priority_and_keeps_history(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}, priority=6, max_retries=1))
    (run,) = store.claim("me", 1, 30)
    policy = RetryPolicy(base_seconds=10, jitter=0)
    answered = Failure(ErrorKind.RETRYABLE, "HTTP 503", error_type="X", http_status=503)
    d = decide_failure(run, answered, clock.now(), policy, random.Random())
    assert store.apply(run.lease, d)
    queued = store.get(run.id)
    assert queued is not None and queued.state is TaskState.QUEUED and queued.priority == 7
    assert queued.run_after == clock.now() + 10 and queued.lease_owner is None
    assert store.claim("me", 1, 30) == []
    clock.advance(10)
    (again,) = store.claim("me", 1, 30)
    d2 = decide_failure(again, Failure(ErrorKind.RETRYABLE, "HTTP 503"), clock.now(), policy, random.Random())
    assert store.apply(again.lease, d2)
    failed = store.get(run.id)
    assert failed is not None and failed.state is TaskState.FAILED and failed.attempts == 2
    assert [e["message"] for e in failed.errors] == ["HTTP 503", "gave up after 2 attempts: HTTP 503"]
    assert [e.get("http_status") for e in failed.errors] == [503, None]  # the API's status, when one answered
    assert failed.error_message == "gave up after 2 attempts: HTTP 503"


def test_auth_failure_pauses_the_type_and_refunds_the_attempt(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}))
    (run,) = store.claim("me", 1, 30)
    d = decide_failure(run, Failure(ErrorKind.AUTH, "401 invalid key"), clock.now(), RetryPolicy(), random.Random())
    assert store.apply(run.lease, d)
    task = store.get(run.id)
    assert task is not None and task.state is TaskState.QUEUED and task.attempts == 0
    control = store.controls()["transcribe"]
    assert control.state is ControlState.PAUSED and control.reason == "401 invalid key"
    store.resume_all()
    assert "transcribe" not in store.controls()


def test_release_requeues_at_once_and_refunds(store: Store) -> None:
    store.enqueue(NewTask(T, {}))
    (run,) = store.claim("me", 1, 30)
    assert store.release(run.lease)
    task = store.get(run.id)
    assert task is not None and (task.state, task.attempts, task.lease_owner) == (TaskState.QUEUED, 0, None)


def test_renew_extends_only_my_running_leases(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(T, {}) for _ in range(2)])
    mine, theirs = store.claim("me", 1, 30)[0], store.claim("them", 1, 30)[0]
    clock.advance(20)
    assert store.renew("me", [mine.id, theirs.id], 30) == {mine.id}
    renewed = store.get(mine.id)
    assert renewed is not None and renewed.lease_expires_at == clock.now() + 30


def test_checkpoint_survives_a_rescue(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}))
    (run,) = store.claim("me", 1, 30)
    assert store.checkpoint(run.lease, {"done_chunks": [0, 1]})
    assert store.rescue(run.lease, decide_rescue(run, clock.now(), "worker died"))
    (again,) = store.claim("me2", 1, 30)
    assert again.result == {"done_chunks": [0, 1]} and again.attempts == 2


def test_retry_and_cancel_by_the_user(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(T, {"i": i}, max_retries=0) for i in range(3)])
    runs = store.claim("me", 3, 30)
    for r in runs[:2]:
        d = decide_failure(r, Failure(ErrorKind.PERMANENT, "bad"), clock.now(), RetryPolicy(), random.Random())
        store.apply(r.lease, d)
    assert store.retry(runs[0].id) and not store.retry(runs[2].id)
    assert store.retry_failed() == 1
    assert store.counts()["queued"] == 2
    assert store.cancel(runs[0].id) and not store.cancel(runs[0].id)


def test_a_job_is_retried_and_cancelled_whole_and_alone(store: Store, clock: FakeClock) -> None:
    def job(name: str, n: int) -> int:
        new = [NewTask(T, {"i": i}, dedupe_key=f"{name}{i}", max_retries=0) for i in range(n)]
        return store.create_job(NewJob(f"/{name}", name, "/out"), new)[0].id

    mine, other = job("mine", 3), job("other", 1)
    runs = store.claim("me", 4, 30)
    failure = Failure(ErrorKind.PERMANENT, "bad")
    for r in runs[:3]:  # mine: two fail, one succeeds; other: fails
        if r.payload["i"] == 2 and r.job_id == mine:
            assert store.complete(r.lease, {})
        else:
            assert store.apply(r.lease, decide_failure(r, failure, clock.now(), RetryPolicy(), random.Random()))
    store.apply(runs[3].lease, decide_failure(runs[3], failure, clock.now(), RetryPolicy(), random.Random()))
    clock.advance(5)
    assert store.retry_job(mine) == 2 and store.retry_job(mine) == 0
    again = {t.payload["i"]: t for t in store.tasks_of_job(mine)}
    assert [again[i].state for i in range(3)] == [TaskState.QUEUED, TaskState.QUEUED, TaskState.SUCCEEDED]
    assert (again[0].attempts, again[0].run_after, again[0].finished_at, again[0].lease_owner) == (0, clock.now(), None, None)
    assert store.tasks_of_job(other)[0].state is TaskState.FAILED
    (running,) = store.claim("me", 1, 30)
    assert store.cancel_job(mine) == 2 and store.cancel_job(mine) == 0
    done = {t.id: t for t in store.tasks_of_job(mine)}
    assert done[running.id].state is TaskState.CANCELLED and done[running.id].lease_expires_at is None
    assert {(t.state, t.error_kind, t.error_message, t.finished_at) for t in done.values() if t.payload["i"] < 2} == {
        (TaskState.CANCELLED, "cancelled", "cancelled by the user", clock.now())}  # fmt: skip
    assert store.tasks_of_job(other)[0].state is TaskState.FAILED


def test_controls_and_heartbeats(store: Store, clock: FakeClock) -> None:
    assert store.controls() == {}
    store.set_control(GLOBAL_SCOPE, ControlState.PAUSED, "by user")
    assert store.controls()[GLOBAL_SCOPE].state is ControlState.PAUSED
    store.set_control(GLOBAL_SCOPE, ControlState.RUNNING)
    assert store.controls()[GLOBAL_SCOPE].reason is None
    info = WorkerInfo("h:1:2.00", "h", 1, clock.now(), clock.now(), 2, 50.5, 12.0, 8)
    store.heartbeat(info)
    store.heartbeat(WorkerInfo("h:1:2.00", "h", 1, clock.now(), clock.now() + 5, 3, 51.0, 10.0, 8))
    (row,) = store.workers()
    assert (row.active_tasks, row.last_seen) == (3, clock.now() + 5)
    store.remove_worker("h:1:2.00")
    assert store.workers() == []
    assert integrity_ok(store)


def test_tasks_pinned_to_another_host_are_left_alone(store: Store) -> None:
    store.enqueue(NewTask(T, {"where": "there"}, affinity="laptop-b"))
    store.enqueue(NewTask(T, {"where": "anywhere"}))
    store.enqueue(NewTask(T, {"where": "here"}, affinity="laptop-a"))
    claimed = store.claim("laptop-a:1:1.00", 5, 30, host="laptop-a")
    assert sorted(t.payload["where"] for t in claimed) == ["anywhere", "here"]
    assert [t.payload["where"] for t in store.claim("laptop-b:1:1.00", 5, 30, host="laptop-b")] == ["there"]


def test_a_claim_brings_the_jobs_of_its_tasks(store: Store) -> None:
    """The pool gets the jobs of every task it claimed from the claim itself; each handler gets its own job."""
    a, _, _ = store.create_job(NewJob("/in/a.wav", "a", "/out"), [NewTask(TaskType.PREPROCESS, {})])
    b, _, _ = store.create_job(NewJob("/in/b.wav", "b", "/out"), [NewTask(TaskType.PREPROCESS, {})])
    store.enqueue(NewTask(TaskType.PREPROCESS, {"alone": True}))
    ex = store.exchange("me", [], [], 5, 30)
    assert sorted(t.job_id or 0 for t in ex.claimed) == sorted([0, a.id, b.id])
    assert ex.jobs == {a.id: a, b.id: b}
    assert store.exchange("me", [], [], 5, 30).jobs == {}


def test_a_finished_runs_cost_is_kept_with_its_completion_and_read_back(store: Store) -> None:
    """The cost row commits with the completion, and only if the completion takes (a lost lease keeps none)."""
    store.enqueue(NewTask(T, {"n": 1}))
    store.enqueue(NewTask(T, {"n": 2}))
    a, b = store.claim("me", 2, 30)
    cost = TaskCost("host-a", T, "tiny.en", 60.0, 6.5, 310.0)
    assert store.exchange("me", [Completion(a.lease, {}, (), cost)], [], 0, 30).done == [True]
    assert store.cancel(b.id)
    assert store.exchange("me", [Completion(b.lease, {}, (), cost)], [], 0, 30).done == [False]
    assert store.cost_history("host-a", T, "tiny.en") == [Cost(60.0, 6.5, 310.0)]
    assert store.cost_history("host-b", T, "tiny.en") == [] and store.cost_history("host-a", T, "base") == []


def test_next_queued_is_what_the_claim_would_take(store: Store, clock: FakeClock) -> None:
    job, _, _ = store.create_job(NewJob("/in/a.wav", "a", "/out"), [NewTask(T, {"n": 1}, priority=5)])
    store.enqueue(NewTask(T, {"n": 2}, priority=1, run_after=clock.now() + 60))  # in backoff
    store.enqueue(NewTask(T, {"n": 3}, priority=9, affinity="elsewhere"))
    task, got = store.next_queued(T, host="here") or (None, None)
    assert task is not None and task.payload == {"n": 1} and got == job
    (claimed,) = store.claim("me", 1, 30, [T], host="here")
    assert claimed.id == task.id and store.next_queued(T, host="here") is None
