"""All SQL of the queue: enqueue, claim, guarded writes, rescue, control and heartbeats."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self, cast

from sqlalchemy import Engine, and_, case, delete, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Row
from sqlalchemy.engine.interfaces import DBAPIConnection

from traxd.clock import Clock, SystemClock
from traxd.costs import Cost
from traxd.db import archive_index
from traxd.db.engine import READ_ONLY, paid_transaction
from traxd.db.models import control as C
from traxd.db.models import ingested_files as F
from traxd.db.models import job_deps as D
from traxd.db.models import jobs as J
from traxd.db.models import task_costs as K
from traxd.db.models import tasks as T
from traxd.db.models import workers as W
from traxd.errors import UsageError
from traxd.queue import driver as drivers
from traxd.queue.reads import Reader
from traxd.queue.transitions import WORKER_LOST, Decision, Offer, OfferRow, offer_verdict
from traxd.searchquery import Node
from traxd.types import (
    GLOBAL_SCOPE,
    PAID_KEY,
    Control,
    ControlState,
    IngestedFile,
    Job,
    Lease,
    NewJob,
    NewTask,
    SearchFilters,
    SearchHit,
    Task,
    TaskCost,
    TaskState,
    TaskType,
    WorkerInfo,
)

FILE_COLUMNS = ["outbox", "size", "mtime_ns", "inode", "sha256", "seen_at"]

# Errors that mean "the database cannot be reached or is busy right now": the pool backs off and retries.
# The hot path talks to the driver directly, so its own OperationalError/InterfaceError count too (Store.unavailable).
SA_UNAVAILABLE: tuple[type[BaseException], ...] = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)

SQLITE_FULL = 13  # "database or disk is full"
PG_DISK_FULL = "53100"
QUEUED = TaskState.QUEUED.value
RUNNING = TaskState.RUNNING.value
FINISHED_BADLY = [TaskState.FAILED.value, TaskState.CANCELLED.value]
MAX_ERROR_HISTORY = 20
# A result under this key is a transcript to index: it goes into the archive in the completing transaction.
INDEX_KEY = "index"


COST_HISTORY = 50  # finished runs a prediction reads: recent enough to follow a new machine or model version
IDLE_CONNECTIONS = 4  # open connections a store keeps for its next transactions (one per busy thread)
_DECODED = drivers.PostgresDriver()  # SQLAlchemy rows arrive with JSON already decoded


def to_task(row: Row[Any]) -> Task:
    """Freeze a `tasks` row read through SQLAlchemy."""
    m = row._mapping
    return _DECODED.to_task(tuple(m[c] for c in drivers.COLUMNS))


def to_job(row: Row[Any]) -> Job:
    """Freeze a `jobs` row."""
    m = row._mapping
    return Job(m["id"], m["source"], m["name"], m["output_dir"], m["group_name"], m["options"] or {}, m["created_at"],
               m["not_before"])  # fmt: skip


def _guard(lease: Lease) -> Any:
    """The fencing condition every write after a claim carries."""
    return and_(T.c.id == lease.task_id, T.c.lease_owner == lease.owner, T.c.attempts == lease.attempt, T.c.state == RUNNING)


class RefusedWrite(ValueError):
    """The database refused a write for good (not an outage): retrying it would never work."""


@dataclass(frozen=True)
class Completion:
    """A run that succeeded: its lease, its result and the tasks that follow it (committed together)."""

    lease: Lease
    result: dict[str, Any] | None
    successors: Sequence[NewTask] = ()
    cost: TaskCost | None = None  # what the run cost, kept in task_costs if the completion takes


@dataclass(frozen=True)
class FailedRun:
    """A run that did not succeed: its lease, what to do about it, and the error's type for the history."""

    lease: Lease
    decision: Decision
    error_type: str
    successors: Sequence[NewTask] = ()  # enqueued only if the decision takes (a job's end event)


@dataclass(frozen=True)
class Exchange:
    """What one settle-and-claim transaction did: which completions and failures took, and what it leased."""

    done: list[bool]
    failed: list[bool]
    claimed: list[Task]
    jobs: dict[int, Job] = field(default_factory=dict)  # the jobs of the claimed tasks, read in the same transaction


class Tx:
    """A write transaction on one connection of a store: the SQLAlchemy connection for Core statements, and the
    raw DB-API connection and cursor under it for the driver's pre-built SQL (both see the same transaction).

    Begun by the driver on entry, committed on exit, rolled back on an error; the connection then goes back to
    the store's idle list, unless the database is gone (then it and the idle ones are dropped).
    """

    __slots__ = ("_driver", "_idle", "_unavailable", "conn", "cur", "raw")

    def __init__(self, conn: Connection, driver: drivers.Driver, idle: list[Tx], unavailable: tuple[type, ...]) -> None:
        self.conn = conn
        self.raw = cast(DBAPIConnection, conn.connection.dbapi_connection)  # set while the connection is open
        self.cur = self.raw.cursor()
        self._driver, self._idle, self._unavailable = driver, idle, unavailable

    def __enter__(self) -> Self:
        try:
            self._driver.begin(self.cur)
        except BaseException as exc:
            self.abort(exc)
            raise
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self.abort(exc)
            return
        try:
            if self.conn.in_transaction():  # a Core statement ran: SQLAlchemy knows of the transaction
                self.conn.commit()
            else:
                self._driver.commit(self.raw, self.cur)
        except BaseException as err:
            self.abort(err)
            raise
        self.checkin()

    def abort(self, exc: BaseException) -> None:
        """Roll back; a connection that cannot (or whose database is gone) is invalidated with the idle ones."""
        broken = isinstance(exc, self._unavailable)
        try:
            if self.conn.in_transaction():
                self.conn.rollback()
            else:
                self._driver.rollback(self.raw, self.cur)
        except Exception:  # noqa: BLE001 - the connection is gone: nothing left to undo
            broken = True
        if not broken:
            self.checkin()
            return
        self.conn.invalidate()  # a fresh connection next time
        self.conn.close()
        _close_all(self._idle)  # they share the outage; the pool hands out (and pre-pings) new ones

    def checkin(self) -> None:
        """Back to the idle list (a few are kept), or closed; only a connection that works comes here."""
        if len(self._idle) < IDLE_CONNECTIONS:
            self._idle.append(self)
        else:
            self.conn.close()


class Store:
    """The queue's SQL layer; every method is one short transaction and returns frozen snapshots."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.driver = drivers.for_engine(engine)
        self._idle: list[Tx] = []
        weakref.finalize(self, _close_all, self._idle)  # tests and tools drop stores without closing them
        dbapi = engine.dialect.dbapi
        self.unavailable: tuple[type[BaseException], ...] = SA_UNAVAILABLE + tuple(
            getattr(dbapi, name) for name in ("OperationalError", "InterfaceError") if hasattr(dbapi, name)
        )

    def disk_full(self, exc: BaseException) -> str | None:
        """Where the database ran out of space, when `exc` says so (SQLITE_FULL, PostgreSQL's disk_full)."""
        orig = getattr(exc, "orig", exc)
        if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
            return str(Path(self.engine.url.database or ".").resolve().parent)
        if getattr(orig, "sqlstate", None) == PG_DISK_FULL:  # psycopg 3 names it sqlstate
            return f"the PostgreSQL server {self.engine.url.host}"
        return None

    # -- transactions -------------------------------------------------------------------------
    def _tx(self, paid: bool = False) -> AbstractContextManager[Tx]:
        """The one way the store opens a write transaction (see Tx): on an idle connection of this store, so a
        task's enqueue, claim or completion costs no round trip through the engine's pool.

        `paid=True`: the commit is on disk when it returns (see engine.paid_transaction): it records a result
        we paid for.
        """
        try:
            tx = self._idle.pop()
        except IndexError:
            tx = Tx(self.engine.connect(), self.driver, self._idle, self.unavailable)
        return _paid(tx) if paid else tx

    def _read(self) -> Any:
        return self.engine.connect().execution_options(**READ_ONLY)

    @contextmanager
    def reading(self) -> Iterator[Reader]:
        """The queue's reads (traxd.queue.reads, where each is written once) on one of this store's pooled
        connections, given back afterwards."""
        reader = Reader(self.engine.raw_connection(), self.driver)
        try:
            yield reader
        finally:
            reader.close()

    # -- enqueue ------------------------------------------------------------------------------
    def enqueue(self, new: NewTask) -> tuple[Task, bool]:
        """Insert one task; with a dedupe key already present, return the existing task and False."""
        with self._tx() as tx:
            return self.driver.insert_one(tx.cur, new, self.clock.now(), None)

    def enqueue_many(self, tasks: Sequence[NewTask]) -> int:
        """Bulk insert in one transaction; duplicates of existing dedupe keys are skipped. Returns rows inserted."""
        if not tasks:
            return 0
        with self._tx() as tx:
            return self.driver.insert_many(tx.cur, tasks, self.clock.now())

    def create_job(self, job: NewJob, first: Sequence[NewTask]) -> tuple[Job, list[Task], bool]:
        """Create a job and its first tasks in one transaction; if the first task's dedupe key exists, do nothing."""
        with self._tx() as tx:
            return self._create_job_in(tx, job, first, self.clock.now())

    def create_jobs(
        self, items: Sequence[tuple[NewJob, NewTask]], files: Sequence[IngestedFile] = ()
    ) -> list[tuple[Job, Task, bool]]:
        """Many one-task jobs in one transaction (bulk ingest); an item whose dedupe key exists returns that task.

        `files` (the inbox files behind the items) are remembered in the same transaction.
        """
        now = self.clock.now()
        with self._tx() as tx:
            made = [self._create_job_in(tx, job, [task], now) for job, task in items]
            self._remember_in(tx.conn, files, now)
        return [(job, tasks[0], created) for job, tasks, created in made]

    def remember_files(self, files: Sequence[IngestedFile]) -> None:
        """Remember inbox files as ingested with their current stamp (URL files, queued one by one)."""
        with self._tx() as tx:
            self._remember_in(tx.conn, files, self.clock.now())

    def _remember_in(self, conn: Connection, files: Sequence[IngestedFile], now: float) -> None:
        for start in range(0, len(files), 500):
            rows = [{"host": f.host, "path": f.path, "outbox": f.outbox, "size": f.size, "mtime_ns": f.mtime_ns,
                     "inode": f.inode, "sha256": f.sha256, "seen_at": now} for f in files[start : start + 500]]  # fmt: skip
            conn.execute(self.driver.upsert(F, rows, ["host", "path"], FILE_COLUMNS))

    def ingested_files(self, host: str) -> list[IngestedFile]:
        """Every remembered inbox file of this host ("" = shared storage)."""
        with self.reading() as reader:
            return reader.ingested_files(host)

    def forget_files(self, host: str, paths: Sequence[str]) -> None:
        """Forget these remembered inbox files of this host (they are gone from their inbox)."""
        with self._tx() as tx:
            for start in range(0, len(paths), 500):
                tx.conn.execute(delete(F).where(F.c.host == host, F.c.path.in_(paths[start : start + 500])))

    def create_failed_job(self, job: NewJob, task: NewTask, reason: str) -> tuple[Job, Task, bool]:
        """Record rejected input (e.g. a file:// URL) as a job whose task already failed permanently with `reason`."""
        now = self.clock.now()
        with self._tx() as tx:
            jrow, (created_task,), created = self._create_job_in(tx, job, [task], now)
            if not created:
                return jrow, created_task, False
            entry = {"at": now, "attempt": 0, "kind": "permanent", "type": "Rejected", "message": reason[:2000]}
            stmt = (
                update(T).where(T.c.id == created_task.id)
                .values(state=TaskState.FAILED.value, error_kind="permanent", error_message=reason[:2000],
                        errors=[entry], finished_at=now, updated_at=now)
                .returning(*T.c)
            )  # fmt: skip
            return jrow, to_task(tx.conn.execute(stmt).one()), True

    def _create_job_in(self, tx: Tx, job: NewJob, first: Sequence[NewTask], now: float) -> tuple[Job, list[Task], bool]:
        conn = tx.conn
        key = first[0].dedupe_key if first else None
        if key is not None:
            row = conn.execute(select(T).where(T.c.dedupe_key == key)).first()
            if row is not None:
                existing = to_task(row)
                jrow = conn.execute(select(J).where(J.c.id == existing.job_id)).first()
                return (to_job(jrow) if jrow else _orphan_job(existing, job)), [existing], False
        self._check_after(conn, job.after)
        jrow = conn.execute(insert(J).values(_job_values(job, now)).returning(*J.c)).one()
        if job.after:
            conn.execute(insert(D), [{"job_id": jrow.id, "after_job_id": a} for a in sorted(set(job.after))])
        # The first task waits for the job's time (a later stage follows it, so it needs none).
        # The later of the job's own time and its folder's window (the task's run_after), whichever are set.
        first = [replace(t, run_after=max(t.run_after or 0.0, job.not_before)) if job.not_before else t for t in first]
        created = [self.driver.insert_one(tx.cur, t, now, jrow.id)[0] for t in first]
        return to_job(jrow), created, True

    @staticmethod
    def _check_after(conn: Connection, after: Sequence[int]) -> None:
        """Every job named in `after` exists (else UsageError): deps only on existing jobs keep the graph acyclic."""
        if not after:
            return
        found = {r.id for r in conn.execute(select(J.c.id).where(J.c.id.in_(sorted(set(after)))))}
        missing = sorted(set(after) - found)
        if missing:
            raise UsageError(f"--after {missing[0]}: no job #{missing[0]} (a job can wait only for one queued before it)")

    # -- claim and guarded writes -------------------------------------------------------------
    def claim(
        self, owner: str, limit: int, lease_seconds: float, types: Iterable[TaskType] | None = None,
        host: str | None = None, group: str | None = None,
    ) -> list[Task]:  # fmt: skip
        """Lease up to `limit` runnable tasks, highest priority (lowest number) first; attempts counted here.

        With `host`, tasks pinned to another host (their files live there) are left alone; with `group`, only
        tasks of that job group are taken. The pool's exchange without anything to settle.
        """
        return self.exchange(owner, [], [], limit, lease_seconds, types, host, group).claimed

    def complete(self, lease: Lease, result: dict[str, Any] | None, successors: Sequence[NewTask] = ()) -> bool:
        """Mark the task succeeded and enqueue its successors in one transaction; False if the lease was lost.

        The pool's exchange with one completion and nothing to claim.
        """
        return self.exchange("", [Completion(lease, result, successors)], [], 0, 0.0).done[0]

    def exchange(
        self,
        owner: str,
        done: Sequence[Completion],
        failed: Sequence[FailedRun],
        limit: int,
        lease_seconds: float,
        types: Iterable[TaskType] | None = None,
        host: str | None = None,
        group: str | None = None,
    ) -> Exchange:
        """Settle finished runs (each guarded by its lease) and lease up to `limit` new tasks with their jobs, in one
        transaction: a database that fails half way leaves nothing leased that no one will start.

        One commit per dispatcher round, however many runs it settles and tasks it claims.
        """
        now = self.clock.now()
        type_values = [t.value for t in TaskType] if types is None else [TaskType.parse(t).value for t in types]
        claim = drivers.Claim(owner, limit if type_values else 0, now + lease_seconds, now, tuple(type_values),
                              host, group)  # fmt: skip
        if not done and not failed and claim.limit <= 0:
            return Exchange([], [], [])
        with self._tx() as tx:
            failed_took = [self._apply_in(tx, f, now) for f in failed]
            done_took = self._complete_in(tx, done, now)
            claimed = self.driver.claim(tx.cur, claim) if claim.limit > 0 else []
            jobs = self._jobs_in(tx.conn, [task.job_id for task in claimed])
        return Exchange(done_took, failed_took, claimed, jobs)

    def _complete_in(self, tx: Tx, done: Sequence[Completion], now: float) -> list[bool]:
        """Guarded completions: plain ones in one executemany, the others one by one with what they bring."""
        plain = [i for i, c in enumerate(done) if not c.successors and not c.cost and not (c.result or {}).get(INDEX_KEY)]
        took: dict[int, bool] = {}
        if plain:
            took.update(zip(plain, self.driver.complete(tx.cur, [(done[i].lease, done[i].result) for i in plain], now)))
        for i in sorted(set(range(len(done))) - set(plain)):
            took[i] = self._complete_one(tx, done[i], now)
        return [took[i] for i in range(len(done))]

    def _complete_one(self, tx: Tx, done: Completion, now: float) -> bool:
        """One completion with its successors and its transcript for the archive, guarded like the others."""
        result, entry = done.result, None
        if result is not None and INDEX_KEY in result:
            result = dict(result)
            entry = result.pop(INDEX_KEY)
        if not self.driver.complete(tx.cur, [(done.lease, result)], now)[0]:
            return False
        job_id = tx.conn.execute(select(T.c.job_id).where(T.c.id == done.lease.task_id)).scalar()
        if entry:
            archive_index.replace_transcript_in(tx.conn, entry, job_id, now)
        self._insert_in(tx, done.successors, now, job_id)
        if done.cost is not None:
            tx.conn.execute(insert(K).values(_cost_values(done.cost, now)))
        return True

    def _insert_in(self, tx: Tx, tasks: Sequence[NewTask], now: float, job_id: int | None) -> None:
        """Successors inherit the job of what they follow, except NOTIFY: a delivery never counts in its job."""
        for new in tasks:
            own = new.job_id if new.job_id is not None else job_id
            self.driver.insert_one(tx.cur, new, now, None if new.type is TaskType.NOTIFY else own)

    def renew(self, owner: str, task_ids: Sequence[int], lease_seconds: float) -> set[int]:
        """Extend this owner's leases; returns the ids still held (a missing id means the lease was lost)."""
        if not task_ids:
            return set()
        now = self.clock.now()
        stmt = (
            update(T)
            .where(T.c.id.in_(list(task_ids)), T.c.lease_owner == owner, T.c.state == RUNNING)
            .values(lease_expires_at=now + lease_seconds, updated_at=now)
            .returning(T.c.id)
        )
        with self._tx() as tx:
            return {r.id for r in tx.conn.execute(stmt)}

    def checkpoint(self, lease: Lease, data: dict[str, Any], *, paid: bool = False) -> bool:
        """Store a running task's partial progress in its result (guarded); a retry reads it back.

        `paid=True`: the data holds a result we paid for (an API reply): the commit is synced to disk before this
        returns, so an OS crash or a power cut cannot make the next attempt pay for it again.
        """
        if paid:  # which attempt paid: a spooled result of an older one must not overwrite it (offer_paid)
            data = {**data, PAID_KEY: lease.attempt}
        stmt = update(T).where(_guard(lease)).values(result=data, updated_at=self.clock.now())
        with self._tx(paid=paid) as tx:
            return tx.conn.execute(stmt).rowcount == 1

    def offer_paid(self, lease: Lease, task_type: str, data: dict[str, Any]) -> str:
        """Commit a paid result that waited in the spool, fenced (see transitions.offer_verdict); the verdict.

        Synced like any paid checkpoint. RefusedWrite when the database refuses it for good (a changed schema,
        data it cannot store): the caller sets that spool aside instead of retrying it forever.
        """
        try:
            return self._offer_paid(lease, task_type, data)
        except self.unavailable:
            raise
        except (sa_exc.SQLAlchemyError, TypeError, ValueError) as exc:
            raise RefusedWrite(str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__) from None

    def _offer_paid(self, lease: Lease, task_type: str, data: dict[str, Any]) -> str:
        cols = select(T.c.type, T.c.state, T.c.lease_owner, T.c.attempts, T.c.result).where(T.c.id == lease.task_id)
        with self._tx(paid=True) as tx:
            found = tx.conn.execute(self.driver.lock_row(cols)).first()
            row = OfferRow(found.type, found.state, found.lease_owner, found.attempts, found.result) if found else None
            verdict = offer_verdict(lease, task_type, row)
            if verdict in (Offer.OURS, Offer.OFFERED):
                values = {"result": {**data, PAID_KEY: lease.attempt}, "updated_at": self.clock.now()}
                tx.conn.execute(update(T).where(T.c.id == lease.task_id).values(**values))
        return verdict

    def apply(self, lease: Lease, decision: Decision, error_type: str = "Error") -> bool:
        """Write a failure decision (retry, fail, pause the type) under the lease; False if the lease was lost.

        The pool's exchange with one failure and nothing to claim.
        """
        return self.exchange("", [], [FailedRun(lease, decision, error_type)], 0, 0.0).failed[0]

    def _apply_in(self, tx: Tx, failed: FailedRun, now: float) -> bool:
        conn, lease, decision = tx.conn, failed.lease, failed.decision
        row = conn.execute(self.driver.lock_row(select(T.c.errors, T.c.priority).where(_guard(lease)))).first()
        if row is None:
            return False
        entry = {"at": now, "attempt": lease.attempt, "kind": decision.error_kind.value,
                 "type": failed.error_type, "message": decision.message[:2000]}  # fmt: skip
        if decision.http_status is not None:
            entry["http_status"] = decision.http_status
        values = _decision_values(decision, now, row.priority)
        values["errors"] = [*row.errors, entry][-MAX_ERROR_HISTORY:]
        if decision.refund_attempt:
            values["attempts"] = T.c.attempts - 1
        conn.execute(update(T).where(_guard(lease)).values(**values))
        if decision.pause_scope:
            self._set_control_in(conn, decision.pause_scope, ControlState.PAUSED, decision.message, now)
        self._insert_in(tx, failed.successors, now, None)
        return True

    def release(self, lease: Lease) -> bool:
        """Hand a task back to the queue untouched (shutdown): requeued now, attempt refunded."""
        now = self.clock.now()
        stmt = (
            update(T)
            .where(_guard(lease))
            .values(state=QUEUED, lease_owner=None, lease_expires_at=None, run_after=now, updated_at=now,
                    attempts=T.c.attempts - 1)
        )  # fmt: skip
        with self._tx() as tx:
            return tx.conn.execute(stmt).rowcount == 1

    # -- rescue -------------------------------------------------------------------------------
    def running_leases(self, exclude_owner: str | None = None) -> list[Task]:
        """Tasks currently leased (optionally not by `exclude_owner`): input to the rescuer."""
        with self.reading() as reader:
            return reader.running_leases(exclude_owner)

    def rescue(self, lease: Lease, decision: Decision, successors: Sequence[NewTask] = ()) -> bool:
        """Requeue or poison-fail a task whose worker is gone, guarded by the lease it was last claimed under;
        `successors` (a poisoned job's end events) are queued in the same transaction if it takes."""
        return self.exchange("", [], [FailedRun(lease, decision, WORKER_LOST, successors)], 0, 0.0).failed[0]

    # -- reading ------------------------------------------------------------------------------
    def get(self, task_id: int) -> Task | None:
        """One task, or None."""
        with self.reading() as reader:
            return reader.task(task_id)

    def get_job(self, job_id: int) -> Job | None:
        """One job, or None."""
        with self.reading() as reader:
            return reader.job(job_id)

    @staticmethod
    def _jobs_in(conn: Connection, job_ids: Iterable[int | None]) -> dict[int, Job]:
        """The jobs of these ids that exist, by id, in one statement (None ids are skipped)."""
        wanted = sorted({i for i in job_ids if i is not None})
        if not wanted:
            return {}
        return {row.id: to_job(row) for row in conn.execute(select(J).where(J.c.id.in_(wanted)))}

    def tasks_of_job(self, job_id: int) -> list[Task]:
        """Every task a job spawned, oldest first."""
        with self.reading() as reader:
            return reader.tasks_of_job(job_id)

    def output_dirs_of_running(self) -> list[str]:
        """The output folders of jobs with a task still marked running (a writer there may have been killed)."""
        with self.reading() as reader:
            return reader.output_dirs_of_running()

    def list_tasks(
        self, state: TaskState | None = None, limit: int = 100, group: str | None = None
    ) -> list[Task]:
        """Tasks, newest first, optionally of one state or job group."""
        with self.reading() as reader:
            return reader.list_tasks(state, limit, group)

    def counts(self, group: str | None = None) -> dict[str, int]:
        """Number of tasks per state (every state present, zero when none)."""
        with self.reading() as reader:
            return reader.tasks_per_state(group)

    def has_work(self, types: Iterable[TaskType] | None = None, group: str | None = None) -> bool:
        """True while a task of these types is queued (even in backoff) or any task is running (in the group)."""
        with self.reading() as reader:
            return reader.has_work(types, group)

    # -- user actions -------------------------------------------------------------------------
    def retry(self, task_id: int) -> bool:
        """Queue a failed or cancelled task again with a fresh attempt budget."""
        with self._tx() as tx:
            return tx.conn.execute(self._requeue(T.c.id == task_id, FINISHED_BADLY)).rowcount == 1

    def retry_failed(self) -> int:
        """Queue every failed task again; returns how many."""
        with self._tx() as tx:
            return tx.conn.execute(self._requeue(T.c.state == TaskState.FAILED.value, [TaskState.FAILED.value])).rowcount

    def retry_job(self, job_id: int) -> int:
        """Queue a job's failed and cancelled tasks again, in one transaction; returns how many."""
        with self._tx() as tx:
            return tx.conn.execute(self._requeue(T.c.job_id == job_id, FINISHED_BADLY)).rowcount

    def reopen_job(self, job_id: int, group: str, options: dict[str, Any] | None = None) -> int:
        """Move a job into `group` (with new options, when given) and queue its failed or cancelled tasks again;
        returns how many were requeued. Tasks not yet run read the new options when they are claimed."""
        values: dict[str, Any] = {"group_name": group} | ({"options": options} if options is not None else {})
        with self._tx() as tx:
            tx.conn.execute(update(J).where(J.c.id == job_id).values(**values))
            return tx.conn.execute(self._requeue(T.c.job_id == job_id, FINISHED_BADLY)).rowcount

    def _requeue(self, which: Any, states: list[str]) -> Any:
        """UPDATE that puts matching failed/cancelled tasks back in the queue with a fresh attempt budget."""
        now = self.clock.now()
        # A job that has not reached its `--at` time yet keeps it (cancelled before it ran, then retried).
        not_before = select(J.c.not_before).where(J.c.id == T.c.job_id).scalar_subquery()
        run_after = case((not_before > now, not_before), else_=now)
        return (
            update(T)
            .where(which, T.c.state.in_(states))
            .values(state=QUEUED, attempts=0, run_after=run_after, updated_at=now, lease_owner=None,
                    lease_expires_at=None, finished_at=None)
        )  # fmt: skip

    def cancel(self, task_id: int, events: Sequence[NewTask] = ()) -> bool:
        """Cancel a queued task at once; a running one is cancelled when its worker reports back.

        `events` (the job's end notifications) are queued in the same transaction, only if it cancelled something.
        """
        with self._tx() as tx:
            took = tx.conn.execute(self._cancel(T.c.id == task_id)).rowcount == 1
            self._insert_in(tx, events if took else (), self.clock.now(), None)
            return took

    def cancel_job(self, job_id: int, events: Sequence[NewTask] = ()) -> int:
        """Cancel a job's queued and running tasks, in one transaction (with `events`, if any); returns how many."""
        with self._tx() as tx:
            changed = int(tx.conn.execute(self._cancel(T.c.job_id == job_id)).rowcount)
            self._insert_in(tx, events if changed else (), self.clock.now(), None)
            return changed

    def _cancel(self, which: Any) -> Any:
        """UPDATE that cancels the matching queued or running tasks (a running one's worker sees it at its next check)."""
        now = self.clock.now()
        return (
            update(T)
            .where(which, T.c.state.in_([QUEUED, RUNNING]))
            .values(state=TaskState.CANCELLED.value, lease_expires_at=None, finished_at=now, updated_at=now,
                    error_kind="cancelled", error_message="cancelled by the user")
        )  # fmt: skip

    def delete_job(self, job_id: int) -> bool:
        """Delete a finished job, its tasks and its transcript in the archive; False if missing or still active."""
        with self._tx() as tx:
            active = tx.conn.execute(select(T.c.id).where(T.c.job_id == job_id, T.c.state.in_([QUEUED, RUNNING]))).first()
            if active is not None or self._awaited(tx.conn, job_id):
                return False
            tx.conn.execute(delete(D).where(D.c.after_job_id == job_id))
            tx.conn.execute(delete(T).where(T.c.job_id == job_id))
            # its transcript and that transcript's segments leave the archive with it (ON DELETE CASCADE)
            return tx.conn.execute(delete(J).where(J.c.id == job_id)).rowcount == 1

    @staticmethod
    def _awaited(conn: Connection, job_id: int) -> bool:
        """True while an unfinished job waits for this one (`--after`): deleting it would set the waiter free."""
        waiting = select(D.c.job_id).where(D.c.after_job_id == job_id)
        stmt = select(T.c.id).where(T.c.job_id.in_(waiting), T.c.state.in_([QUEUED, RUNNING])).limit(1)
        return conn.execute(stmt).first() is not None

    # -- search archive -----------------------------------------------------------------------
    def index_transcript(self, entry: dict[str, Any], job_id: int | None = None) -> int:
        """Put one transcript into the archive (replacing its job's or its JSON's earlier entry); its id."""
        with self._tx() as tx:
            return archive_index.replace_transcript_in(tx.conn, entry, job_id, self.clock.now())

    def optimize_archive(self) -> None:
        """Merge the full-text index (after a bulk re-index: one transaction per transcript leaves it in pieces)."""
        with self._tx() as tx:
            archive_index.optimize(tx.conn)

    def search_archive(self, node: Node, filters: SearchFilters) -> list[SearchHit]:
        """Ranked transcript segments for a parsed query."""
        with self._read() as conn:
            return archive_index.ranked_hits(conn, node, filters)

    def archive_counts(self) -> tuple[int, int]:
        """(transcripts, segments) in the archive."""
        with self._read() as conn:
            return archive_index.counts(conn)

    def finished_transcripts(self) -> list[tuple[int | None, dict[str, Any]]]:
        """(job id, result) of every succeeded TRANSCRIBE task, oldest first: what a re-index reads back."""
        with self.reading() as reader:
            return reader.finished_transcripts()

    # -- predicted cost -----------------------------------------------------------------------
    def cost_history(self, host: str, task_type: TaskType, model: str) -> list[Cost]:
        """The latest finished runs of this type and model on this host (what traxd.costs predicts from)."""
        with self.reading() as reader:
            return [Cost(*r) for r in reader.cost_history(host, task_type.value, model[:255], COST_HISTORY)]

    def cost_models(self, host: str, task_type: TaskType) -> set[str]:
        """The models this host has finished runs of this type with (nothing to predict from for any other)."""
        with self.reading() as reader:
            return reader.cost_models(host, task_type.value)

    def next_queued(
        self, task_type: TaskType, host: str | None = None, group: str | None = None
    ) -> tuple[Task, Job | None] | None:
        """The task of this type the claim would take next (as the claim orders them), with its job, or None."""
        with self.reading() as reader:
            task = reader.next_queued(task_type.value, self.clock.now(), host, group)
            return None if task is None else (task, reader.job(task.job_id) if task.job_id is not None else None)

    # -- control ------------------------------------------------------------------------------
    def controls(self) -> dict[str, Control]:
        """Every control row by scope; a missing global row means running."""
        with self.reading() as reader:
            return reader.controls()

    def set_control(self, scope: str, state: ControlState, reason: str | None = None) -> None:
        """Write the desired state of a scope ('*' or a task type)."""
        with self._tx() as tx:
            self._set_control_in(tx.conn, scope, state, reason, self.clock.now())

    def _set_control_in(self, conn: Connection, scope: str, state: ControlState, reason: str | None, now: float) -> None:
        if scope != GLOBAL_SCOPE and state is ControlState.RUNNING:
            conn.execute(delete(C).where(C.c.scope == scope))
            return
        values = {"scope": scope, "state": state.value, "reason": reason, "updated_at": now}
        conn.execute(self.driver.upsert(C, values, ["scope"], ["state", "reason", "updated_at"]))

    def resume_all(self) -> None:
        """Set the queue running and lift every per-type pause."""
        now = self.clock.now()
        with self._tx() as tx:
            tx.conn.execute(delete(C).where(C.c.scope != GLOBAL_SCOPE))
            self._set_control_in(tx.conn, GLOBAL_SCOPE, ControlState.RUNNING, None, now)

    # -- workers ------------------------------------------------------------------------------
    def heartbeat(self, info: WorkerInfo) -> None:
        """Upsert this daemon's heartbeat row."""
        values = {"owner": info.owner, "host": info.host, "pid": info.pid, "started_at": info.started_at,
                  "last_seen": info.last_seen, "active_tasks": info.active_tasks, "slots": info.slots,
                  "rss_mb": info.rss_mb, "cpu_percent": info.cpu_percent}  # fmt: skip
        keep = [k for k in values if k != "owner"]
        with self._tx() as tx:
            tx.conn.execute(self.driver.upsert(W, values, ["owner"], keep))

    def workers(self) -> list[WorkerInfo]:
        """Every heartbeat row, most recent first."""
        with self.reading() as reader:
            return reader.workers()

    def remove_worker(self, owner: str) -> None:
        """Forget a daemon's heartbeat (clean shutdown, or a dead one after rescue)."""
        with self._tx() as tx:
            tx.conn.execute(delete(W).where(W.c.owner == owner))


@contextmanager
def _paid(tx: Tx) -> Iterator[Tx]:
    try:
        with paid_transaction(tx.conn):
            yield tx
    except BaseException as exc:
        tx.abort(exc)
        raise
    tx.checkin()


def _close_all(idle: list[Tx]) -> None:
    """Close a store's idle connections (at an outage, and when the store is collected)."""
    while idle:
        try:
            idle.pop().conn.close()
        except Exception:  # noqa: BLE001,S112 - closing a connection whose database is gone
            continue


def _decision_values(decision: Decision, now: float, priority: int) -> dict[str, Any]:
    values: dict[str, Any] = {
        "state": decision.state.value, "error_kind": decision.error_kind.value,
        "error_message": decision.message[:2000], "updated_at": now, "lease_expires_at": None,
    }  # fmt: skip
    if decision.state is TaskState.QUEUED:
        values["run_after"] = decision.run_after if decision.run_after is not None else now
        values["priority"] = priority + decision.priority_step
        values["lease_owner"] = None
    else:
        values["finished_at"] = now
    return values


def _cost_values(cost: TaskCost, now: float) -> dict[str, Any]:
    return {"host": cost.host[:255], "type": cost.type.value, "model": cost.model[:255], "seconds_audio": cost.seconds_audio,
            "wall_seconds": cost.wall_seconds, "peak_rss_mb": cost.peak_rss_mb, "finished_at": now}  # fmt: skip


def _job_values(job: NewJob, now: float) -> dict[str, Any]:
    return {"source": job.source, "name": job.name, "output_dir": job.output_dir, "group_name": job.group,
            "options": job.options, "created_at": now, "not_before": job.not_before}  # fmt: skip


def _orphan_job(task: Task, job: NewJob) -> Job:
    """The job to report for a task queued without one (by `enqueue`): it has no row, so no id (0)."""
    return Job(0, job.source, job.name, job.output_dir, job.group, job.options, task.created_at, job.not_before)
