"""The queue's reads, on a plain DB-API connection (no SQLAlchemy): status, the dashboard, the CLI and the Store.

`Store` keeps the writes (and delegates these reads here); `traxd.database` opens a Reader, light (status) or on
one of a store's pooled connections. Statements take their parameter mark and the few expressions that differ
between SQLite and PostgreSQL from the dialect's driver (`traxd.queue.driver`), the one place that knows them.
Everything returns frozen snapshots from `traxd.types`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from traxd.queue import driver as drivers
from traxd.types import (
    Control,
    ControlState,
    IngestedFile,
    Job,
    JobWait,
    Task,
    TaskState,
    TaskType,
    WorkerInfo,
)

OPEN_JOBS = "SELECT job_id FROM tasks WHERE state = 'queued' UNION SELECT job_id FROM tasks WHERE state = 'running'"
_BRIEF = ("t.id, t.job_id, t.type, t.state, t.priority, t.attempts, t.max_retries, t.run_after, t.lease_owner, "
          "t.lease_expires_at, t.error_kind, t.error_message, t.created_at, t.updated_at, t.started_at, "
          "t.finished_at, t.affinity")  # fmt: skip
EPOCH_WINDOW = 1000
# The latest job creation not overlapped by any older job (its gap), among jobs with id >= {m}; an unfinished
# job's span reaches the far future. The oldest job in the window always qualifies (nothing older is read).
EPOCH_SQL = (
    "WITH spans AS (SELECT j.id, j.created_at AS c, MAX(CASE WHEN t.state IN ('queued', 'running') THEN 1e18 "
    "ELSE t.finished_at END) AS f FROM jobs j JOIN tasks t ON t.job_id = j.id WHERE j.id >= {m} "
    "GROUP BY j.id, j.created_at), "
    "ordered AS (SELECT c, MAX(f) OVER (ORDER BY c, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev "
    "FROM spans) SELECT MAX(c) FROM ordered WHERE prev IS NULL OR prev < c"
)
_HAS = "j.id IN (SELECT job_id FROM tasks WHERE state = '{}')"
_LACKS = "NOT EXISTS (SELECT 1 FROM tasks x WHERE x.job_id = j.id AND x.state = '{}')"
# A job's state from its tasks (running, else queued, else failed, else cancelled, else succeeded) as a filter
# on `jobs j`; sparse states read a partial index or one pass over tasks, never a per-job aggregate.
JOB_STATE_WHERE = {
    "running": _HAS.format("running"),
    "queued": f"{_HAS.format('queued')} AND {_LACKS.format('running')}",
    "failed": f"{_HAS.format('failed')} AND {_LACKS.format('queued')} AND {_LACKS.format('running')}",
    "cancelled": (f"{_HAS.format('cancelled')} AND {_LACKS.format('failed')} AND {_LACKS.format('queued')} "
                  f"AND {_LACKS.format('running')}"),
    "succeeded": "NOT EXISTS (SELECT 1 FROM tasks x WHERE x.job_id = j.id AND x.state <> 'succeeded')",
}  # fmt: skip
_RANK = ("MAX(CASE state WHEN 'running' THEN 4 WHEN 'queued' THEN 3 WHEN 'failed' THEN 2 "
         "WHEN 'cancelled' THEN 1 ELSE 0 END)")  # fmt: skip
RANKED = ("succeeded", "cancelled", "failed", "queued", "running")
# Jobs per state in one pass over the unfinished tasks: each branch reads its state's partial index (a succeeded task
# is never visited), each job takes its highest rank; COUNT(job_id) leaves out tasks without a job. A correlated
# NOT EXISTS per job and state cost 6x more at 100,000 jobs.
_JOB_COUNTS = (
    "SELECT r, COUNT(job_id) FROM (SELECT job_id, MAX(r) AS r FROM ("
    + " UNION ALL ".join(f"SELECT job_id, {RANKED.index(s)} AS r FROM tasks WHERE state = '{s}'" for s in RANKED[:0:-1])
    + ") AS u GROUP BY job_id) AS g GROUP BY r"
)
# Tasks per type and state, each state counted from its own partial index: no task row is read for the succeeded
# ones (nine in ten), where one GROUP BY over the table read every row (80–418 ms at 100,000 jobs).
_TASK_COUNTS = " UNION ALL ".join(
    f"SELECT type, '{s}', COUNT(*) FROM tasks WHERE state = '{s}' GROUP BY type" for s in RANKED
)
_FULL = ", ".join(drivers.COLUMNS)
_JOB = "id, source, name, output_dir, group_name, options, created_at, not_before"
# Jobs that will not run without a user's hand: a depended-on job that failed or was cancelled (nothing of it left
# queued or running), and every job waiting on one of those, however far down (`--after` chains).
STUCK_JOBS = (
    "WITH RECURSIVE stuck(id) AS (SELECT job_id FROM tasks WHERE state IN ('failed', 'cancelled') "
    "AND job_id IN (SELECT after_job_id FROM job_deps) AND job_id NOT IN (SELECT job_id FROM tasks "
    "WHERE state IN ('queued', 'running') AND job_id IS NOT NULL) "
    "UNION SELECT d.job_id FROM job_deps d JOIN stuck s ON d.after_job_id = s.id) "
)
# The archive keeps each transcript's media duration: summing it reads no JSON.
AUDIO_SECONDS = "SELECT SUM(duration) FROM transcripts"


@dataclass(frozen=True)
class JobInfo:
    """A job's identity as the user knows it."""

    id: int
    name: str
    source: str
    output_dir: str | None
    created_at: float
    not_before: float | None = None  # the time it was queued to start at (--at, --not-before)


class Reader:
    """Read-only queries on one DB-API connection of the database `driver` speaks to."""

    def __init__(self, conn: Any, driver: drivers.Driver) -> None:
        self.conn = conn
        self.driver = driver
        self.m = driver.mark  # the parameter mark the statements below are written with

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """One read transaction, so every query sees the same moment."""
        with self.driver.read_snapshot(self.conn):
            yield self

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement written with the driver's parameter mark; return its rows."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, tuple(params))
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        found = self.rows(sql, params)
        return found[0][0] if found else None

    # -- controls and daemons -----------------------------------------------------------------
    def controls(self) -> dict[str, Control]:
        """Every control row by scope."""
        return {s: Control(s, ControlState(st), r, u) for s, st, r, u in
                self.rows("SELECT scope, state, reason, updated_at FROM control")}  # fmt: skip

    def workers(self) -> list[WorkerInfo]:
        """Every heartbeat row, most recent first."""
        sql = ("SELECT owner, host, pid, started_at, last_seen, active_tasks, rss_mb, cpu_percent, slots "
               "FROM workers ORDER BY last_seen DESC")  # fmt: skip
        return [WorkerInfo(*r) for r in self.rows(sql)]

    # -- the current work ---------------------------------------------------------------------
    def epoch(self) -> float | None:
        """When the queue was last idle: the start of the running (or, when idle, the last) busy period.

        A busy period is a stretch of time in which some job was always unfinished; it starts at the
        creation of its oldest job. The search looks at the newest jobs first and widens its window (×4)
        until it finds the gap before the period, so its cost follows the period's size, not the history's.
        None when there are no jobs at all.
        """
        top = self.scalar(f"SELECT MIN(job_id) FROM ({OPEN_JOBS}) o") or self.scalar("SELECT MAX(id) FROM jobs")
        if top is None:
            return None
        first = self.scalar("SELECT MIN(id) FROM jobs") or 0
        width = EPOCH_WINDOW
        while True:
            low = max(first, int(top) - width)
            start = self.scalar(EPOCH_SQL.format(m=self.m), (low,))
            low_created = self.scalar(f"SELECT created_at FROM jobs WHERE id = {self.m}", (low,))
            if start is None or low <= first or start > low_created:
                return None if start is None else float(start)
            width *= 4

    def tasks_since(self, since: float | None) -> list[Task]:
        """The tasks of jobs created at or after `since` (every job when None), plus those of unfinished jobs.

        Payloads and error histories are left out; a result carries only its media duration.
        """
        where = "" if since is None else f"WHERE j.created_at >= {self.m} OR t.job_id IN ({OPEN_JOBS})"
        sql = (f"SELECT {_BRIEF}, {self.driver.media_seconds} FROM tasks t JOIN jobs j ON j.id = t.job_id {where} "
               "ORDER BY t.id")  # fmt: skip
        return [_brief_task(r) for r in self.rows(sql, () if since is None else (since,))]

    def jobs(self, ids: Sequence[int]) -> dict[int, JobInfo]:
        """Name, source, outbox and start time of these jobs."""
        out: dict[int, JobInfo] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = (f"SELECT id, name, source, output_dir, created_at, not_before FROM jobs "
                   f"WHERE id IN ({self._marks(len(chunk))})")  # fmt: skip
            out.update({r[0]: JobInfo(*r) for r in self.rows(sql, chunk)})
        return out

    # -- the dashboard ------------------------------------------------------------------------
    def job_counts(self) -> dict[str, int]:
        """Jobs per state (a job's state comes from its tasks: the highest of RANKED; none unfinished = succeeded)."""
        out = dict.fromkeys(RANKED[1:], 0) | {RANKED[int(r)]: int(n) for r, n in self.rows(_JOB_COUNTS)}
        total = int(self.scalar("SELECT COUNT(*) FROM jobs") or 0)
        out["succeeded"] = max(0, total - sum(out.values()))
        return out

    def task_counts(self) -> list[tuple[str, str, int]]:
        """(type, state, count) of every task."""
        return [(t, s, int(n)) for t, s, n in self.rows(_TASK_COUNTS)]

    def finished_per_bucket(self, since: float, bucket: float) -> dict[int, tuple[int, int]]:
        """Tasks that succeeded / failed per time bucket (index = floor(finished_at / bucket)) since `since`."""
        sql = (f"SELECT {self.driver.bucket_sql}, SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END), "
               f"SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) FROM tasks WHERE finished_at >= {self.m} GROUP BY 1")  # fmt: skip
        return {int(b): (int(ok or 0), int(bad or 0)) for b, ok, bad in self.rows(sql, (bucket, since))}

    def page_jobs(
        self, state: str | None = None, inbox: str | None = None, task_type: str | None = None,
        before: int | None = None, limit: int = 50,
    ) -> list[tuple[JobInfo, str, str | None]]:  # fmt: skip
        """Jobs newest first (keyset paging on id), filtered; each with its state and the stage it is at."""
        m, where, params = self.m, ["1 = 1"], []
        if state is not None:
            where.append(JOB_STATE_WHERE[state])
        if inbox:
            where.append(f"substr(j.source, 1, {m}) = {m}")
            params += [len(inbox), inbox]
        if task_type:
            # Correlated, so the newest-first walk stops after a page when the type is common.
            where.append(f"EXISTS (SELECT 1 FROM tasks x WHERE x.job_id = j.id AND x.type = {m})")
            params.append(task_type)
        if before is not None:
            where.append(f"j.id < {m}")
            params.append(before)
        sql = (f"SELECT j.id, j.name, j.source, j.output_dir, j.created_at, j.not_before FROM jobs j "
               f"WHERE {' AND '.join(where)} "
               f"ORDER BY j.id DESC LIMIT {m}")  # fmt: skip
        jobs = [JobInfo(*r) for r in self.rows(sql, (*params, limit))]
        states = self.job_states([j.id for j in jobs])
        return [(j, *states.get(j.id, ("succeeded", None))) for j in jobs]

    def job_states(self, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        """State and latest task type of each of these jobs."""
        if not ids:
            return {}
        sql = f"SELECT job_id, {_RANK}, MAX(id) FROM tasks WHERE job_id IN ({self._marks(len(ids))}) GROUP BY job_id"
        ranks = {j: (RANKED[int(r)], last) for j, r, last in self.rows(sql, list(ids))}
        types = dict(self.rows(f"SELECT id, type FROM tasks WHERE id IN ({self._marks(len(ranks))})",
                               [last for _, last in ranks.values()])) if ranks else {}  # fmt: skip
        return {j: (state, types.get(last)) for j, (state, last) in ranks.items()}

    def tasks_of_job(self, job_id: int) -> list[Task]:
        """Every task of a job in full (payload, result, error history), oldest first."""
        sql = f"SELECT {_FULL} FROM tasks WHERE job_id = {self.m} ORDER BY id"
        return [self.driver.to_task(r) for r in self.rows(sql, (job_id,))]

    def task_by_key(self, key: str) -> Task | None:
        """The task queued under this dedupe key, if any."""
        rows = self.rows(f"SELECT {_FULL} FROM tasks WHERE dedupe_key = {self.m}", (key,))
        return self.driver.to_task(rows[0]) if rows else None

    def source_in_use(self, folder: str) -> bool:
        """True while a job whose source is in `folder` has a task not succeeded or cancelled (it may read it)."""
        m = self.m
        sql = (f"SELECT 1 FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE substr(j.source, 1, {m}) = {m} "
               f"AND t.state NOT IN ('succeeded', 'cancelled') LIMIT 1")  # fmt: skip
        return bool(self.rows(sql, (len(folder), folder)))

    def job(self, job_id: int) -> Job | None:
        """One job in full (its options too), or None."""
        sql = f"SELECT {_JOB} FROM jobs WHERE id = {self.m}"
        found = self.rows(sql, (job_id,))
        return self._job(found[0]) if found else None

    def running_leases(self, exclude_owner: str | None = None) -> list[Task]:
        """Running tasks in full (the rescuer reads their error history), optionally not those of one owner."""
        sql, params = f"SELECT {_FULL} FROM tasks WHERE state = 'running'", []
        if exclude_owner is not None:
            sql += f" AND lease_owner <> {self.m}"
            params.append(exclude_owner)
        return [self.driver.to_task(r) for r in self.rows(sql, params)]

    def running_tasks(self) -> list[Task]:
        """Tasks under a lease now, with their owner and expiry (payloads left out)."""
        # Sorted here: ORDER BY id would tempt SQLite into the primary key instead of the partial index.
        sql = f"SELECT {_BRIEF}, NULL FROM tasks t WHERE t.state = 'running'"
        return sorted((_brief_task(r) for r in self.rows(sql)), key=lambda t: t.id)

    def error_counts(self) -> list[tuple[str | None, int | None, int]]:
        """(error type, HTTP status or None, entries) over every entry of every task's error history."""
        return [(t, None if s is None else int(s), int(n)) for t, s, n in self.rows(self.driver.error_counts_sql)]

    def audio_seconds(self) -> float:
        """Media seconds of every transcript made."""
        return float(self.scalar(AUDIO_SECONDS) or 0.0)

    # -- the queue's own reads (Store delegates to these) ---------------------------------------
    def task(self, task_id: int) -> Task | None:
        """One task in full, or None."""
        found = self.rows(f"SELECT {_FULL} FROM tasks WHERE id = {self.m}", (task_id,))
        return self.driver.to_task(found[0]) if found else None

    def list_tasks(self, state: TaskState | None = None, limit: int = 100, group: str | None = None) -> list[Task]:
        """Tasks in full, newest first, optionally of one state or job group."""
        where, params = self._in_group(group)
        if state is not None:
            where.append(f"state = {self.m}")
            params.append(state.value)
        sql = f"SELECT {_FULL} FROM tasks WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {self.m}"
        return [self.driver.to_task(r) for r in self.rows(sql, (*params, limit))]

    def tasks_per_state(self, group: str | None = None) -> dict[str, int]:
        """Number of tasks per state (every state present, zero when none), optionally of one job group."""
        where, params = self._in_group(group)
        sql = f"SELECT state, COUNT(*) FROM tasks WHERE {' AND '.join(where)} GROUP BY state"
        return {s.value: 0 for s in TaskState} | {state: int(n) for state, n in self.rows(sql, params)}

    def has_work(self, types: Iterable[TaskType] | None = None, group: str | None = None) -> bool:
        """True while a task of these types is queued (even in backoff) or any task is running (in the group)."""
        where, params = self._in_group(group)
        queued = "state = 'queued'"
        if types is not None:
            names = [TaskType.parse(t).value for t in types]
            queued += f" AND type IN ({self._marks(len(names))})" if names else " AND 1 = 0"
            params = [*names, *params]
        # A job stuck behind a failed or cancelled dependency is not work a drain should wait for: it waits for
        # a retry of that job (or its own cancel), which no daemon does on its own.
        queued += " AND (job_id IS NULL OR job_id NOT IN (SELECT id FROM stuck))"
        sql = (f"{STUCK_JOBS}SELECT id FROM tasks WHERE (({queued}) OR state = 'running') AND {' AND '.join(where)} "
               "LIMIT 1")  # fmt: skip
        return bool(self.rows(sql, params))

    def waits(self, ids: Sequence[int], known: Mapping[int, JobInfo] | None = None) -> dict[int, JobWait]:
        """What each of these jobs waits for (its time, its dependencies not yet succeeded); jobs waiting for
        neither are left out. `known`: these jobs already read (their times are not read again)."""
        ids = sorted(set(ids))
        times: dict[int, float] = {}
        deps: dict[int, list[tuple[int, str]]] = {}
        for i in range(0, len(ids), 500):
            chunk, marks = ids[i : i + 500], self._marks(len(ids[i : i + 500]))
            if known is None:
                sql = f"SELECT id, not_before FROM jobs WHERE id IN ({marks}) AND not_before IS NOT NULL"
                times.update({j: float(t) for j, t in self.rows(sql, chunk)})
            else:
                times.update({j: float(info.not_before) for j in chunk if (info := known.get(j)) and info.not_before})
            sql = (f"SELECT d.job_id, d.after_job_id, {_RANK} FROM job_deps d JOIN tasks t ON t.job_id = "
                   f"d.after_job_id WHERE d.job_id IN ({marks}) GROUP BY d.job_id, d.after_job_id ORDER BY 1, 2")  # fmt: skip
            for job, after, rank in self.rows(sql, chunk):
                if RANKED[int(rank)] != "succeeded":
                    deps.setdefault(job, []).append((after, RANKED[int(rank)]))
        return {j: JobWait(times.get(j), tuple(deps.get(j, ()))) for j in sorted(set(times) | set(deps))}

    def output_dirs_of_running(self) -> list[str]:
        """The output folders of jobs with a task still marked running (a writer there may have been killed)."""
        sql = ("SELECT DISTINCT output_dir FROM jobs WHERE id IN (SELECT job_id FROM tasks WHERE state = 'running') "
               "AND output_dir IS NOT NULL")  # fmt: skip
        return [r[0] for r in self.rows(sql)]

    def ingested_files(self, host: str) -> list[IngestedFile]:
        """Every remembered inbox file of this host ("" = shared storage)."""
        sql = f"SELECT host, path, outbox, size, mtime_ns, inode, sha256 FROM ingested_files WHERE host = {self.m}"

        return [IngestedFile(*r) for r in self.rows(sql, (host,))]

    def finished_transcripts(self) -> list[tuple[int | None, dict[str, Any]]]:
        """(job id, result) of every succeeded TRANSCRIBE task, oldest first: what a re-index reads back."""
        sql = (f"SELECT job_id, result FROM tasks WHERE type = {self.m} AND state = 'succeeded' ORDER BY id")
        return [(j, self.driver.decode_json(r) or {}) for j, r in self.rows(sql, (TaskType.TRANSCRIBE.value,))]

    def cost_history(self, host: str, task_type: str, model: str, limit: int) -> list[tuple[float, float, float]]:
        """(media seconds, wall seconds, peak RSS MB) of the latest finished runs of a type and model on a host."""
        m = self.m
        sql = (f"SELECT seconds_audio, wall_seconds, peak_rss_mb FROM task_costs WHERE host = {m} AND type = {m} "
               f"AND model = {m} ORDER BY finished_at DESC LIMIT {m}")  # fmt: skip
        return [(float(a), float(w), float(p)) for a, w, p in self.rows(sql, (host, task_type, model, limit))]

    def cost_models(self, host: str, task_type: str) -> set[str]:
        """The models with finished runs of a type on a host (read from the index on host, type, model)."""
        sql = f"SELECT DISTINCT model FROM task_costs WHERE host = {self.m} AND type = {self.m}"
        return {str(r[0]) for r in self.rows(sql, (host, task_type))}

    def next_queued(self, task_type: str, now: float, host: str | None, group: str | None) -> Task | None:
        """The queued task of this type the claim would lease next (its conditions and order), or None."""
        m = self.m
        sql = f"SELECT {_FULL} FROM tasks WHERE state = 'queued' AND run_after <= {m} AND type = {m} "
        params: list[Any] = [now, task_type]
        if host is not None:
            sql += f"AND (affinity IS NULL OR affinity = {m}) "
            params.append(host)
        if group is not None:
            sql += f"AND job_id IN (SELECT id FROM jobs WHERE group_name = {m}) "
            params.append(group)
        sql += f"AND NOT {drivers.WAITS_FOR_DEPS} ORDER BY priority, id LIMIT 1"
        found = self.rows(sql, params)
        return self.driver.to_task(found[0]) if found else None

    def _in_group(self, group: str | None) -> tuple[list[str], list[Any]]:
        """The condition (and its parameter) that keeps a job group's tasks; always true without a group."""
        if group is None:
            return ["1 = 1"], []
        return [f"job_id IN (SELECT id FROM jobs WHERE group_name = {self.m})"], [group]

    def _marks(self, n: int) -> str:
        """`n` parameter marks for an IN list."""
        return ", ".join([self.m] * n)

    def _job(self, row: Sequence[Any]) -> Job:
        id_, source, name, output_dir, group, options, created, not_before = row
        options = self.driver.decode_json(options)
        return Job(id_, source, name, output_dir, group, options or {}, created, not_before)


def _brief_task(r: tuple[Any, ...]) -> Task:
    (id_, job_id, type_, state, priority, attempts, max_retries, run_after, owner, expires, error_kind,
     error_message, created, updated, started, finished, affinity, duration) = r  # fmt: skip
    result = {"duration": float(duration)} if isinstance(duration, (int, float)) and duration > 0 else None
    return Task(id_, TaskType(type_), {}, TaskState(state), priority, attempts, max_retries, run_after, owner,
                expires, error_kind, error_message, [], result, None, job_id, created, updated, started, finished,
                affinity)  # fmt: skip
