"""Per-job scheduling in the store, on SQLite and PostgreSQL: `--at` / `--not-before` (the job's time) and
`--after` (dependencies the claim itself checks), and what a failed or cancelled dependency means."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from traxd.clock import FakeClock
from traxd.errors import UsageError
from traxd.job_waits import wait_reason
from traxd.queue.store import Completion, Store
from traxd.queue.transitions import RetryPolicy, decide_failure
from traxd.typedtime import parse_start
from traxd.types import ErrorKind, Failure, JobWait, NewJob, NewTask, Task, TaskType

T = TaskType.TRANSCRIBE


def job(store: Store, name: str, *, after: tuple[int, ...] = (), not_before: float | None = None) -> int:
    made, _, _ = store.create_job(NewJob(name, name, not_before=not_before, after=after), [NewTask(T, {"n": name})])
    return made.id


def claim(store: Store) -> list[Task]:
    return store.claim("w", 10, 30.0)


def fail(store: Store, task: Task, kind: ErrorKind = ErrorKind.PERMANENT) -> None:
    decision = decide_failure(task, Failure(kind, "broken"), store.clock.now(), RetryPolicy(), random.Random(1))
    assert store.apply(task.lease, decision)


def names(tasks: list[Task]) -> list[str]:
    return [t.payload["n"] for t in tasks]


def test_a_job_waits_for_its_time_and_a_retry_keeps_a_time_not_reached(store: Store, clock: FakeClock) -> None:
    later = clock.now() + 60
    jid = job(store, "night", not_before=later)
    assert claim(store) == [] and store.has_work([T])  # it waits, and a drain waits for it
    assert store.get_job(jid).not_before == later  # type: ignore[union-attr]
    store.cancel_job(jid)
    store.retry_job(jid)  # cancelled before it ran, queued again: still not before its time
    assert store.tasks_of_job(jid)[0].run_after == later
    clock.advance(61)
    (task,) = claim(store)
    fail(store, task)
    store.retry_job(jid)  # past its time: a retry runs at once
    assert store.tasks_of_job(jid)[0].run_after == clock.now()


def test_a_job_starts_only_after_its_dependencies_succeed(store: Store) -> None:
    a, b = job(store, "a"), job(store, "b")
    c = job(store, "c", after=(a, b))
    first = claim(store)
    assert names(first) == ["a", "b"]  # c is not claimed, though it is queued and a slot is free
    with store.reading() as reader:
        assert reader.waits([c]) == {c: JobWait(None, ((a, "running"), (b, "running")))}
    store.complete(first[0].lease, {})
    assert claim(store) == []
    store.complete(first[1].lease, {})
    assert names(claim(store)) == ["c"]


def test_a_failed_dependency_holds_its_dependants_until_it_is_retried(store: Store) -> None:
    a = job(store, "a")
    b = job(store, "b", after=(a,))
    c = job(store, "c", after=(b,))
    (task,) = claim(store)
    fail(store, task)
    assert claim(store) == []  # never run on a failed input
    assert not store.has_work([T])  # nothing will run without a retry: a drain ends
    with store.reading() as reader:
        assert wait_reason(reader.waits([b])[b], 0.0) == f"waiting for job {a} (failed)"
        assert wait_reason(reader.waits([c])[c], 0.0) == f"waiting for job {b} (queued)"
    assert store.retry_job(a) == 1 and store.has_work([T])
    (again,) = claim(store)
    store.complete(again.lease, {})
    assert names(claim(store)) == ["b"]


def test_a_cancelled_dependency_holds_too_and_the_dependant_can_be_cancelled(store: Store) -> None:
    a = job(store, "a")
    b = job(store, "b", after=(a,))
    store.cancel_job(a)
    assert claim(store) == [] and not store.has_work()
    with store.reading() as reader:
        assert reader.waits([b])[b].after == ((a, "cancelled"),)
    assert not store.delete_job(a)  # b still waits for it
    assert store.cancel_job(b) == 1
    assert store.delete_job(a) and store.delete_job(b)


def test_unknown_or_future_job_ids_are_refused_and_nothing_is_written(store: Store) -> None:
    a = job(store, "a")
    with pytest.raises(UsageError, match=f"no job #{a + 1}"):
        job(store, "self", after=(a, a + 1))  # the id this job would get: no self-dependency, so no cycle
    assert [t.job_id for t in store.list_tasks()] == [a]


def test_a_successor_of_a_waiting_job_needs_no_time_of_its_own(store: Store, clock: FakeClock) -> None:
    jid = job(store, "j", not_before=clock.now() + 5)
    clock.advance(6)
    (task,) = claim(store)
    store.exchange("w", [Completion(task.lease, {}, [NewTask(TaskType.ENHANCE, {"n": "next"})])], [], 0, 30.0)
    (enhance,) = [t for t in store.tasks_of_job(jid) if t.type is TaskType.ENHANCE]
    assert enhance.run_after == clock.now()


def test_typed_start_times_are_the_next_such_local_time() -> None:
    now = dt.datetime(2026, 12, 8, 14, 30).timestamp()
    assert parse_start("16:00", now) == dt.datetime(2026, 12, 8, 16, 0).timestamp()
    assert parse_start("02:00", now) == dt.datetime(2026, 12, 9, 2, 0).timestamp()  # passed today: tomorrow
    assert parse_start("14:30", now) == dt.datetime(2026, 12, 9, 14, 30).timestamp()  # now is not ahead
    assert parse_start("2026-12-10T08:00+00:00", now) == dt.datetime(2026, 12, 10, 8, tzinfo=dt.UTC).timestamp()
    for bad in ("25:00", "tonight", "12:75"):
        with pytest.raises(UsageError, match="--at"):
            parse_start(bad, now)


def test_wait_reasons_read_as_words() -> None:
    at = dt.datetime(2026, 12, 9, 2, 0).timestamp()
    assert wait_reason(JobWait(at), at - 10) == "scheduled for 2026-12-09 02:00"
    assert wait_reason(JobWait(at), at + 1) is None  # its time has come
    both = wait_reason(JobWait(at, ((3, "failed"), (4, "running"))), 0.0)
    assert both == "scheduled for 2026-12-09 02:00; waiting for jobs 3 (failed), 4 (running)"
