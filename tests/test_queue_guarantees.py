"""What the queue promises a daemon and an operator, one promise per test, through the store's public methods.

Each write after a claim is fenced by (task, owner, attempt) and a running state; these tests separate the three
so that losing any one of them is noticed, on the path the daemon uses (`exchange`) as well as the others.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event

from tests.store_checks import finished_since, integrity_ok
from traxd.clock import FakeClock
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue.store import Completion, Store
from traxd.queue.transitions import RetryPolicy, decide_failure, decide_rescue
from traxd.types import (
    GLOBAL_SCOPE,
    ControlState,
    ErrorKind,
    Failure,
    IngestedFile,
    Lease,
    NewJob,
    NewTask,
    Task,
    TaskState,
    TaskType,
    WorkerInfo,
)

T = TaskType.TRANSCRIBE


def _one(store: Store, owner: str) -> Task:
    (task,) = store.claim(owner, 1, 30)
    return task


def _other_owner_same_attempt(store: Store, clock: FakeClock) -> tuple[Lease, Task]:
    """A shut-down daemon released the task (attempt refunded), another took it: same attempt, other owner."""
    store.enqueue(NewTask(T, {}))
    first = _one(store, "old")
    assert store.release(first.lease)
    current = _one(store, "new")
    assert current.attempts == first.attempts
    return first.lease, current


def _same_owner_older_attempt(store: Store, clock: FakeClock) -> tuple[Lease, Task]:
    """A daemon stalled past its lease; its own rescuer requeued the task and it claimed it again."""
    store.enqueue(NewTask(T, {}))
    first = _one(store, "me")
    clock.advance(31)
    assert store.rescue(first.lease, decide_rescue(first, clock.now(), "lease expired"))
    current = _one(store, "me")
    assert current.lease_owner == first.lease_owner and current.attempts == first.attempts + 1
    return first.lease, current


def _cancelled_while_running(store: Store, clock: FakeClock) -> tuple[Lease, Task]:
    """The user cancelled a running task: the same lease, but the task no longer runs."""
    store.enqueue(NewTask(T, {}))
    run = _one(store, "me")
    assert store.cancel(run.id)
    current = store.get(run.id)
    assert current is not None
    return run.lease, current


LATE = {"other owner, same attempt": _other_owner_same_attempt,
        "same owner, older attempt": _same_owner_older_attempt,
        "cancelled while running": _cancelled_while_running}  # fmt: skip


def _complete_like_the_daemon(store: Store, lease: Lease) -> bool:
    return store.exchange(lease.owner, [Completion(lease, {"late": True})], [], 0, 30).done[0]


def _complete_with_successor(store: Store, lease: Lease) -> bool:
    return store.complete(lease, {"late": True}, [NewTask(TaskType.ENHANCE, {})])


def _fail(store: Store, lease: Lease) -> bool:
    task = store.get(lease.task_id)
    assert task is not None
    d = decide_failure(task, Failure(ErrorKind.PERMANENT, "late"), store.clock.now(), RetryPolicy(), random.Random())
    return store.apply(lease, d)


WRITES: dict[str, Callable[[Store, Lease], bool]] = {
    "completion (daemon's path)": _complete_like_the_daemon,
    "completion with successors": _complete_with_successor,
    "checkpoint": lambda store, lease: store.checkpoint(lease, {"late": True}),
    "failure": _fail,
    "release": lambda store, lease: store.release(lease),
}


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("late", LATE)
def test_a_late_write_from_a_run_that_lost_its_lease_changes_nothing(store: Store, clock: FakeClock, late: str,
                                                                       write: str) -> None:  # fmt: skip
    lease, current = LATE[late](store, clock)
    clock.advance(1)
    assert WRITES[write](store, lease) is False
    assert store.get(current.id) == current
    assert [t.id for t in store.list_tasks()] == [current.id]  # no successor was enqueued


def test_the_current_run_still_completes_after_a_late_write_was_refused(store: Store, clock: FakeClock) -> None:
    old, current = _same_owner_older_attempt(store, clock)
    assert not _complete_like_the_daemon(store, old)
    assert _complete_like_the_daemon(store, current.lease)
    done = store.get(current.id)
    assert done is not None and done.state is TaskState.SUCCEEDED and done.result == {"late": True}


def test_a_run_reported_twice_counts_once(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(T, {"i": i}) for i in range(2)])
    a, b = store.claim("me", 2, 30)
    assert store.exchange("me", [Completion(a.lease, {})], [], 0, 30).done == [True]
    clock.advance(1)
    assert store.exchange("me", [Completion(a.lease, {}), Completion(b.lease, {})], [], 0, 30).done == [False, True]


def test_renewal_extends_only_the_leases_asked_for(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(T, {}) for _ in range(2)])
    asked, other = store.claim("me", 2, 30)
    clock.advance(20)
    assert store.renew("me", [asked.id], 30) == {asked.id}
    untouched = store.get(other.id)
    assert untouched is not None and untouched.lease_expires_at == other.lease_expires_at


def test_renewal_reports_a_task_the_user_cancelled_as_lost(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(T, {}) for _ in range(2)])
    kept, cancelled = store.claim("me", 2, 30)
    assert store.cancel(cancelled.id)
    assert store.renew("me", [kept.id, cancelled.id], 30) == {kept.id}


def test_a_released_task_holds_no_lease_and_is_due_at_once(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}))
    run = _one(store, "me")
    clock.advance(5)
    assert store.release(run.lease)
    task = store.get(run.id)
    assert task is not None
    assert (task.state, task.attempts, task.lease_owner, task.lease_expires_at) == (TaskState.QUEUED, 0, None, None)
    assert task.finished_at is None and task.run_after == clock.now()
    assert store.running_leases() == [] and _one(store, "next").id == run.id


def test_a_cancelled_running_task_counts_as_finished_and_holds_no_lease(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}))
    run = _one(store, "me")
    clock.advance(5)
    assert store.cancel(run.id)
    task = store.get(run.id)
    assert task is not None and task.state is TaskState.CANCELLED and task.error_kind == "cancelled"
    assert task.error_message == "cancelled by the user"  # what `traxctl show` says happened
    assert task.lease_expires_at is None and task.finished_at == clock.now()
    assert finished_since(store, clock.now()) == 1 and store.running_leases() == []


def test_a_retried_task_starts_afresh(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}, max_retries=0))
    run = _one(store, "me")
    assert _fail(store, run.lease)
    clock.advance(5)
    assert store.retry(run.id)
    task = store.get(run.id)
    assert task is not None and (task.state, task.attempts, task.lease_owner) == (TaskState.QUEUED, 0, None)
    assert task.finished_at is None and task.lease_expires_at is None and task.run_after == clock.now()
    assert finished_since(store, 0) == 0


def test_a_failed_task_counts_as_finished_and_a_requeued_one_does_not(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(T, {"i": i}) for i in range(2)])
    doomed, retried = store.claim("me", 2, 30)
    clock.advance(5)
    assert _fail(store, doomed.lease)
    again = decide_failure(retried, Failure(ErrorKind.RETRYABLE, "503"), clock.now(), RetryPolicy(), random.Random())
    assert store.apply(retried.lease, again)
    failed, queued = store.get(doomed.id), store.get(retried.id)
    assert failed is not None and failed.finished_at == clock.now() and failed.lease_expires_at is None
    assert queued is not None and queued.finished_at is None and queued.lease_expires_at is None
    assert finished_since(store, clock.now()) == 1


def test_a_rescued_task_keeps_its_priority_and_is_due_at_once(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}, priority=4))
    run = _one(store, "dead")
    clock.advance(31)
    assert store.rescue(run.lease, decide_rescue(run, clock.now(), "worker died"))
    task = store.get(run.id)
    assert task is not None and (task.state, task.priority, task.run_after) == (TaskState.QUEUED, 4, clock.now())
    assert task.lease_owner is None and task.lease_expires_at is None


def test_the_error_history_keeps_the_newest_20_with_when_which_attempt_what_kind_and_message(
    store: Store, clock: FakeClock
) -> None:
    store.enqueue(NewTask(T, {}, max_retries=30))
    policy = RetryPolicy(base_seconds=1, factor=1, jitter=0)
    for n in range(1, 26):
        run = _one(store, "me")
        failure = Failure(ErrorKind.RETRYABLE, f"HTTP 503 #{n}", error_type="APIStatusError")
        assert store.apply(run.lease, decide_failure(run, failure, clock.now(), policy, random.Random()), "APIStatusError")
        clock.advance(1)
    task = store.get(run.id)
    assert task is not None and len(task.errors) == 20
    first, last = task.errors[0], task.errors[-1]
    assert (first["attempt"], first["message"], first["kind"], first["type"]) == (6, "HTTP 503 #6", "retryable",
                                                                                 "APIStatusError")  # fmt: skip
    assert (last["attempt"], last["message"], last["at"]) == (25, "HTTP 503 #25", clock.now() - 1)
    assert [e["at"] for e in task.errors] == sorted(e["at"] for e in task.errors)


def test_a_very_long_error_message_is_cut_to_2000_characters(store: Store, clock: FakeClock) -> None:
    store.enqueue(NewTask(T, {}))
    run = _one(store, "me")
    d = decide_failure(run, Failure(ErrorKind.PERMANENT, "x" * 5000), clock.now(), RetryPolicy(), random.Random())
    assert store.apply(run.lease, d)
    task = store.get(run.id)
    assert task is not None and len(task.error_message or "") == 2000 and len(task.errors[-1]["message"]) == 2000
    assert task.errors[-1]["type"] == "Error"  # no error class given: the history still names one


def test_resuming_one_task_type_lifts_its_pause_and_leaves_the_others(store: Store) -> None:
    store.set_control("transcribe", ControlState.PAUSED, "401")
    store.set_control("enhance", ControlState.PAUSED, "401")
    store.set_control("transcribe", ControlState.RUNNING)
    controls = store.controls()
    assert "transcribe" not in controls or controls["transcribe"].state is ControlState.RUNNING
    assert controls["enhance"].state is ControlState.PAUSED


def test_rejected_input_is_recorded_as_a_failed_task_with_its_reason(store: Store, clock: FakeClock) -> None:
    job, task, created = store.create_failed_job(NewJob("file:///etc/passwd", "passwd", "/out"),
                                                 NewTask(TaskType.DOWNLOAD, {}, dedupe_key="url:x"), "file:// refused")  # fmt: skip
    assert created and task.state is TaskState.FAILED and task.error_kind == "permanent"
    assert task.error_message == "file:// refused" and task.finished_at == clock.now()
    (entry,) = task.errors
    assert (entry["message"], entry["kind"], entry["type"], entry["attempt"], entry["at"]) == (
        "file:// refused", "permanent", "Rejected", 0, clock.now())  # fmt: skip
    assert store.get(task.id) == task and store.claim("me", 5, 30) == []
    again = store.create_failed_job(NewJob("file:///etc/passwd", "passwd", "/out"), NewTask(TaskType.DOWNLOAD, {},
                                    dedupe_key="url:x"), "file:// refused")  # fmt: skip
    assert again[2] is False and again[1].id == task.id and again[0].id == job.id


def test_a_bulk_enqueue_of_only_known_files_reports_none_added(store: Store) -> None:
    store.enqueue_many([NewTask(T, {}, dedupe_key=f"k{i}") for i in range(3)])
    assert store.enqueue_many([NewTask(T, {}, dedupe_key=f"k{i}") for i in range(3)]) == 0
    assert store.enqueue_many([]) == 0 and store.counts()["queued"] == 3


def test_the_workers_view_shows_what_each_daemon_last_reported(store: Store, clock: FakeClock) -> None:
    first = WorkerInfo("a:1:1.00", "laptop-a", 11, clock.now(), clock.now(), 1, 60.5, 3.0, 8)
    store.heartbeat(first)
    later = WorkerInfo("a:1:1.00", "laptop-a", 11, clock.now(), clock.now() + 5, 4, 71.25, 42.5, 6)
    other = WorkerInfo("b:2:1.00", "laptop-b", 22, clock.now(), clock.now() + 1, 0, 50.0, 1.0, 2)
    store.heartbeat(later)
    store.heartbeat(other)
    assert store.workers() == [later, other]  # most recently seen first
    store.remove_worker("a:1:1.00")
    assert store.workers() == [other]


def test_has_work_sees_queued_tasks_of_the_asked_types_and_any_running_task(store: Store, clock: FakeClock) -> None:
    assert not store.has_work()
    store.enqueue(NewTask(TaskType.ENHANCE, {}, run_after=clock.now() + 60))  # in backoff still counts
    assert store.has_work() and store.has_work([TaskType.ENHANCE]) and not store.has_work([T])
    store.enqueue(NewTask(T, {}))
    run = _one(store, "me")
    assert run.type is T and store.has_work([TaskType.YOUTUBE])  # a running task of any type keeps the daemon up


def test_the_rescuer_sees_the_running_leases_of_other_daemons_only(store: Store) -> None:
    store.enqueue_many([NewTask(T, {"i": i}) for i in range(3)])
    mine, theirs = _one(store, "me"), _one(store, "them")
    assert {t.id for t in store.running_leases()} == {mine.id, theirs.id}
    assert [t.id for t in store.running_leases(exclude_owner="me")] == [theirs.id]


def test_listing_shows_the_newest_first_by_state_and_counts_by_group(store: Store) -> None:
    store.create_job(NewJob("/a", "a", "/out", "left"), [NewTask(T, {"n": 1})])
    store.create_job(NewJob("/b", "b", "/out", "right"), [NewTask(T, {"n": 2})])
    store.enqueue(NewTask(T, {"n": 3}))
    _one(store, "me")
    assert [t.payload["n"] for t in store.list_tasks()] == [3, 2, 1]
    assert [t.payload["n"] for t in store.list_tasks(TaskState.QUEUED, limit=1)] == [3]
    assert [t.payload["n"] for t in store.list_tasks(group="right")] == [2]
    assert store.counts("left") == {"queued": 0, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 0}


def test_a_job_is_read_back_with_the_options_it_was_created_with(store: Store, clock: FakeClock) -> None:
    new = NewJob("/in/talk.m4a", "talk", "/out", "team", {"language": "de", "diarize": True})
    job, (task,), _ = store.create_job(new, [NewTask(T, {})])
    read = store.get_job(job.id)
    assert read == job and read is not None
    assert (read.source, read.name, read.output_dir, read.group, read.options) == ("/in/talk.m4a", "talk", "/out",
                                                                                 "team", new.options)  # fmt: skip
    assert store.get_job(job.id + 1) is None and store.get(task.id + 1) is None


def test_a_write_blocked_past_the_busy_timeout_is_an_outage_the_daemon_waits_out(tmp_path: Path) -> None:
    """SQLite only: another writer holds the lock longer than the busy timeout (PostgreSQL waits on row locks)."""
    path = tmp_path / "trax.db"
    engine = open_engine(f"sqlite:///{path}", busy_timeout_ms=50)
    upgrade(engine)
    store = Store(engine, FakeClock())
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        for write in (lambda: store.enqueue(NewTask(T, {})), lambda: store.claim("me", 1, 30)):
            with pytest.raises(store.unavailable) as busy:
                write()
            assert store.disk_full(busy.value) is None  # busy is not full: no disk-full pause
        blocker.execute("COMMIT")
        assert store.enqueue(NewTask(T, {}))[1] and [t.attempts for t in store.claim("me", 5, 30)] == [1]
    finally:
        blocker.close()
        engine.dispose()


def test_a_very_long_rejection_reason_is_cut_to_2000_characters(store: Store) -> None:
    _, task, _ = store.create_failed_job(NewJob("x", "x", "/out"), NewTask(TaskType.DOWNLOAD, {}), "r" * 5000)
    assert len(task.error_message or "") == 2000 and len(task.errors[0]["message"]) == 2000


def test_a_run_that_returns_nothing_still_completes(store: Store) -> None:
    store.enqueue(NewTask(T, {}))
    run = _one(store, "me")
    assert store.exchange("me", [Completion(run.lease, None)], [], 0, 30).done == [True]
    done = store.get(run.id)
    assert done is not None and done.state is TaskState.SUCCEEDED and done.result is None


def _renew(store: Store, run: Task) -> object:
    return store.renew(run.lease.owner, [run.id], 30)


def _requeue_by_user(store: Store, run: Task) -> object:
    _fail(store, run.lease)
    store.clock.advance(1)  # type: ignore[attr-defined]
    return store.retry(run.id)


STAMPED: dict[str, Callable[[Store, Task], object]] = {
    "renewal": _renew,
    "checkpoint": lambda store, run: store.checkpoint(run.lease, {"chunk": 1}),
    "completion": lambda store, run: store.complete(run.lease, {}),
    "completion with successors": lambda store, run: store.complete(run.lease, {}, [NewTask(TaskType.ENHANCE, {})]),
    "failure": lambda store, run: _fail(store, run.lease),
    "release": lambda store, run: store.release(run.lease),
    "cancel": lambda store, run: store.cancel(run.id),
    "retry by the user": _requeue_by_user,
}


@pytest.mark.parametrize("write", STAMPED)
def test_every_change_to_a_task_stamps_when_it_last_changed(store: Store, clock: FakeClock, write: str) -> None:
    store.enqueue(NewTask(T, {}))
    run = _one(store, "me")
    clock.advance(7)
    assert STAMPED[write](store, run)
    task = store.get(run.id)
    assert task is not None and task.updated_at == clock.now()


def test_enqueueing_a_known_file_again_returns_that_files_task(store: Store) -> None:
    first, _ = store.enqueue(NewTask(T, {"f": "a"}, dedupe_key="file:a"))
    second, _ = store.enqueue(NewTask(T, {"f": "b"}, dedupe_key="file:b"))
    again, created = store.enqueue(NewTask(T, {"f": "b?"}, dedupe_key="file:b"))
    assert not created and again == second and again.id != first.id


def test_an_inbox_file_queued_again_is_known_by_its_newest_stamp_on_its_own_host(store: Store) -> None:
    """A restart compares the inbox with what was remembered: a file changed since must be remembered as it is now."""
    before = IngestedFile("laptop", "/in/a.mp3", "/out", 10, 1_000, 7, None)
    other_host = IngestedFile("server", "/in/a.mp3", "/srv/out", 99, 9_000, 9, "c" * 64)
    store.remember_files([before, other_host])
    now = IngestedFile("laptop", "/in/a.mp3", "/out/new", 20, 2_000, 8, "a" * 64)
    store.create_jobs([(NewJob("/in/a.mp3", "a", "/out/new"), NewTask(T, {}, dedupe_key="file:a2"))], [now])
    assert store.ingested_files("laptop") == [now]
    assert store.ingested_files("server") == [other_host] and store.ingested_files("") == []


def test_a_bulk_ingest_remembers_every_file_however_many(store: Store) -> None:
    files = [IngestedFile("", f"/in/{i}.mp3", "/out", i, i, i) for i in range(1_201)]
    store.remember_files(files)
    assert sorted(store.ingested_files(""), key=lambda f: f.size) == files
    elsewhere = IngestedFile("server", "/in/5.mp3", "/out", 5, 5, 5)  # the same path on another host stays
    store.remember_files([elsewhere])
    store.forget_files("", [f.path for f in files[1:]])  # more than one statement's worth
    assert store.ingested_files("") == files[:1] and store.ingested_files("server") == [elsewhere]


def test_a_database_with_no_room_left_is_reported_as_a_full_disk_in_its_folder(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (its page limit reached, as on a full disk): the daemon pauses
    claiming with this folder in the reason; nothing half-written is left."""
    engine = open_engine(f"sqlite:///{tmp_path / 'trax.db'}")
    upgrade(engine)
    engine.dispose()

    @event.listens_for(engine, "connect")
    def no_room_to_grow(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    store = Store(engine, FakeClock())
    added = 0
    try:
        with pytest.raises(store.unavailable) as full:
            for _ in range(1_000):
                store.enqueue(NewTask(T, {"text": "x" * 5_000}))
                added += 1
        assert store.disk_full(full.value) == str(tmp_path)
        with pytest.raises(store.unavailable) as full_job:  # a write through SQLAlchemy, which wraps the error
            store.create_job(NewJob("/in/long", "n" * 50_000, "/out"), [NewTask(T, {})])
        assert store.disk_full(full_job.value) == str(tmp_path)
        assert store.counts()["queued"] == added
    finally:
        engine.dispose()


def test_a_damaged_database_file_fails_the_integrity_check(tmp_path: Path) -> None:
    """The crash tests rely on it: an index that no longer matches its table's rows is damage SQLite can see."""
    path = tmp_path / "trax.db"
    engine = open_engine(f"sqlite:///{path}")
    upgrade(engine)
    store = Store(engine, FakeClock())
    store.enqueue_many([NewTask(T, {"i": i}) for i in range(3)])
    assert integrity_ok(store)
    engine.dispose()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA writable_schema=ON")
    raw.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX ix_tasks_job_id ON tasks (priority)' "
                "WHERE name = 'ix_tasks_job_id'")  # fmt: skip
    raw.commit()
    raw.close()
    damaged = Store(open_engine(f"sqlite:///{path}"), FakeClock())
    try:
        assert not integrity_ok(damaged)
    finally:
        damaged.engine.dispose()


def test_the_startup_sweep_visits_the_output_folder_of_each_job_with_a_running_task_once(store: Store) -> None:
    """A writer killed mid-write leaves temp files only where a task was running: those folders, each once."""
    store.create_job(NewJob("/in/a", "a", "/out/a"), [NewTask(T, {"n": 1}), NewTask(T, {"n": 2})])
    store.create_job(NewJob("/in/b", "b", "/out/b"), [NewTask(T, {"n": 3})])
    store.create_job(NewJob("/in/c", "c", None), [NewTask(T, {"n": 4})])
    store.enqueue(NewTask(T, {"n": 5}))
    runs = {t.payload["n"]: t for t in store.claim("me", 5, 30)}
    assert store.release(runs[3].lease)  # b's task is queued again, not running
    assert store.output_dirs_of_running() == ["/out/a"]


def test_the_task_list_shows_the_newest_100_unless_asked_for_more(store: Store) -> None:
    store.enqueue_many([NewTask(T, {"n": n}) for n in range(101)])
    shown = store.list_tasks()
    assert len(shown) == 100 and shown[0].payload["n"] == 100 and shown[-1].payload["n"] == 1
    assert len(store.list_tasks(limit=101)) == 101


def test_a_finished_job_can_be_deleted_while_other_jobs_still_have_work(store: Store) -> None:
    done, (task,), _ = store.create_job(NewJob("/in/a", "a", "/out"), [NewTask(T, {})])
    store.create_job(NewJob("/in/b", "b", "/out"), [NewTask(T, {})])
    (run,) = store.claim("me", 1, 30)  # the oldest: a's
    assert run.id == task.id and store.complete(run.lease, {})
    assert store.delete_job(done.id)
    assert store.get_job(done.id) is None and store.get(task.id) is None and store.counts()["queued"] == 1


def test_a_reindex_reads_back_only_succeeded_transcriptions(store: Store) -> None:
    """`traxctl search --reindex` rebuilds the archive from these: failures and other stages have no transcript."""
    job, _, _ = store.create_job(
        NewJob("/in/a", "a", "/out"), [NewTask(T, {"n": 1}), NewTask(T, {"n": 2}), NewTask(TaskType.ENHANCE, {"n": 3})])
    empty, _, _ = store.create_job(NewJob("/in/b", "b", "/out"), [NewTask(T, {"n": 4})])
    runs = {t.payload["n"]: t for t in store.claim("me", 4, 30)}
    assert store.complete(runs[1].lease, {"outputs": {"json": "/out/a.json"}})
    assert _fail(store, runs[2].lease)
    assert store.complete(runs[3].lease, {"outputs": {"json": "/out/a.enhanced.json"}})
    assert store.complete(runs[4].lease, None)
    assert store.finished_transcripts() == [(job.id, {"outputs": {"json": "/out/a.json"}}), (empty.id, {})]


def test_resuming_everything_lifts_the_global_pause_and_every_type_pause(store: Store) -> None:
    store.set_control(GLOBAL_SCOPE, ControlState.PAUSED, "by the user")
    store.set_control("transcribe", ControlState.PAUSED, "401")
    store.resume_all()
    controls = store.controls()
    assert controls[GLOBAL_SCOPE].state is ControlState.RUNNING and set(controls) == {GLOBAL_SCOPE}


def test_a_job_for_an_input_already_queued_without_a_job_is_not_made_twice(store: Store, clock: FakeClock) -> None:
    """A task enqueued on its own (no job) holds the key: ingesting the same input again adds nothing, and the job
    reported for it has no row, so no id."""
    alone, _ = store.enqueue(NewTask(T, {"path": "/in/a"}, dedupe_key="file:a"))
    clock.advance(5)
    new = NewJob("/in/a", "a", "/out", "team", {"language": "de"})
    job, tasks, created = store.create_job(new, [NewTask(T, {"path": "/in/a"}, dedupe_key="file:a")])
    assert not created and tasks == [alone] and store.counts()["queued"] == 1
    assert (job.id, job.source, job.name, job.output_dir, job.group, job.options, job.created_at) == (
        0, "/in/a", "a", "/out", "team", {"language": "de"}, alone.created_at)  # fmt: skip


def test_a_postgresql_server_out_of_disk_is_reported_as_a_full_disk_on_that_server(pg_url: str) -> None:
    """PostgreSQL's own disk_full error (53100), raised by the server here: filling a real server's disk in a test
    would also stop its WAL. The daemon pauses claiming with this reason."""
    engine = open_engine(pg_url)
    store = Store(engine, FakeClock())
    try:
        with engine.connect() as conn, pytest.raises(store.unavailable) as full:
            conn.exec_driver_sql("DO $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$")
        assert store.disk_full(full.value) == f"the PostgreSQL server {engine.url.host}"
        with engine.connect() as conn, pytest.raises(store.unavailable) as other:
            conn.exec_driver_sql("DO $$ BEGIN RAISE EXCEPTION 'busy' USING ERRCODE = 'lock_not_available'; END $$")
        assert store.disk_full(other.value) is None
    finally:
        engine.dispose()
