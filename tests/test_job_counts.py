"""The dashboard's job counts (one pass over the unfinished tasks) agree with the per-state filters of the jobs
table, on SQLite and PostgreSQL, for jobs whose tasks are in mixed states."""

from __future__ import annotations

from sqlalchemy import text

from traxd.db import readonly
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue import driver as drivers
from traxd.queue.reads import _TASK_COUNTS, JOB_STATE_WHERE, RANKED, Reader
from traxd.queue.store import Store
from traxd.types import NewJob, NewTask, TaskType

# Each job's task states, and the state the job is in (the highest of running > queued > failed > cancelled).
JOBS = [
    (("succeeded", "succeeded"), "succeeded"),
    (("succeeded", "running"), "running"),
    (("failed", "running"), "running"),
    (("failed", "queued"), "queued"),
    (("succeeded", "queued"), "queued"),
    (("cancelled", "failed"), "failed"),
    (("failed",), "failed"),
    (("cancelled",), "cancelled"),
    (("cancelled", "succeeded"), "cancelled"),
]


def test_job_counts_agree_with_the_state_filters(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    for n, (states, _) in enumerate(JOBS):
        tasks = [NewTask(TaskType.PREPROCESS, {}, dedupe_key=f"{n}-{i}") for i in range(len(states))]
        store.create_job(NewJob(f"/in/{n}.wav", str(n)), tasks)
    store.enqueue(NewTask(TaskType.DOWNLOAD, {}, dedupe_key="no job"))  # a task of no job is no job
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM tasks WHERE job_id IS NOT NULL ORDER BY id"))]
        wanted = [s for states, _ in JOBS for s in states]
        for task_id, state in zip(ids, wanted, strict=True):
            conn.execute(text("UPDATE tasks SET state = :s WHERE id = :i"), {"s": state, "i": task_id})
    conn_, dialect = readonly.connect(db_url)  # type: ignore[misc]
    reader = Reader(conn_, drivers.for_dialect(dialect))
    try:
        counts = reader.job_counts()
        expected = {s: sum(1 for _, job_state in JOBS if job_state == s) for s in RANKED}
        assert counts == expected
        for state, where in JOB_STATE_WHERE.items():
            assert reader.scalar(f"SELECT COUNT(*) FROM jobs j WHERE {where}") == expected[state], state
    finally:
        reader.close()
        engine.dispose()


def test_metrics_counts_come_from_indexes_and_agree_with_the_rows(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    states = ["succeeded", "succeeded", "failed", "cancelled", "queued", "running", "succeeded"]
    types = [TaskType.PREPROCESS, TaskType.TRANSCRIBE, TaskType.TRANSCRIBE, TaskType.DOWNLOAD, TaskType.PREPROCESS,
             TaskType.TRANSCRIBE, TaskType.TRANSCRIBE]  # fmt: skip
    for n, task_type in enumerate(types):
        store.enqueue(NewTask(task_type, {}, dedupe_key=f"m{n}"))
    histories = ['[{"type": "RateLimited", "http_status": 429}, {"type": "worker_lost"}]', "[]",
                 '[{"type": "RateLimited", "http_status": 429}]', "[]", '[{"type": "AuthError", "http_status": 401}]',
                 "[]", "[]"]  # fmt: skip
    with engine.begin() as conn:
        for task_id, (state, errors) in enumerate(zip(states, histories, strict=True), start=1):
            conn.execute(text("UPDATE tasks SET state = :s, errors = :e WHERE id = :i"),
                         {"s": state, "e": errors, "i": task_id})  # fmt: skip
    conn_, dialect = readonly.connect(db_url) or (engine.raw_connection(), "sqlite")
    reader = Reader(conn_, drivers.for_dialect(dialect))
    try:
        grouped = reader.rows("SELECT type, state, COUNT(*) FROM tasks GROUP BY type, state")
        assert sorted(reader.task_counts()) == sorted((t, s, int(n)) for t, s, n in grouped)
        assert sorted(reader.error_counts(), key=str) == sorted(
            [("RateLimited", 429, 2), ("worker_lost", None, 1), ("AuthError", 401, 1)], key=str)
        if dialect == "sqlite":  # SQLite: no branch reads the whole table; the succeeded tasks come from the index alone
            plans = [r[3] for q in (_TASK_COUNTS, drivers.SqliteDriver.error_counts_sql) for r in reader.rows(f"EXPLAIN QUERY PLAN {q}")]
            scans = [p for p in plans if p.startswith("SCAN t")]
            assert scans and all("USING" in p for p in scans), plans
            assert "SCAN tasks USING COVERING INDEX ix_tasks_succeeded_type" in plans
    finally:
        reader.close()
        engine.dispose()
