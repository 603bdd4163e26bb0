"""Queue throughput against hand-written ceilings measured in the same run: enqueue one by one (each its own
durable transaction) against raw sqlite3 single inserts, enqueue in bulk against raw executemany in one
transaction (both into the same migrated `tasks` table), and end-to-end no-op tasks with 8 slots against a
minimal sqlite3 lease queue that claims one task per statement. Every run is printed; the summary takes the
best run's ratio and, stricter, the best rate against the best ceiling (neighbours on a shared machine
only ever slow a run down). Peak RSS is taken in a child process that only runs the tasks, as a daemon would.

Run: uv run python benchmarks/queue_throughput.py [--tasks 10000] [--slots 8] [--synchronous NORMAL] [--repeat 3]
     uv run python benchmarks/queue_throughput.py --backlog 100000   (throughput with a large queued backlog)
     uv run python benchmarks/queue_throughput.py --db postgresql+psycopg://USER@HOST:PORT/DB [--processes 1,2,4]

With --db (PostgreSQL) it runs N pool processes (each `--slots` slots, like N daemons) on one database, and the
same workload through a minimal hand-written psycopg FOR UPDATE SKIP LOCKED queue (N processes x `--slots`
threads, one claim statement + one update per task) as the ceiling. The URL must be allowed to CREATE DATABASE:
each run gets a fresh database, dropped afterwards. Process start-up is not timed: every process connects,
says it is ready, and the clock starts when all are told to go.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event

from tests.pgdb import fresh_pg_database
from traxd.daemon.owner import Owner
from traxd.daemon.pool import Pool, PoolConfig
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers.registry import Registry
from traxd.queue.store import Completion, Store
from traxd.types import NewTask, Task, TaskType


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far: Linux's VmHWM, which unlike ru_maxrss does not count what
    the process was before exec (`uv run`, or the parent of a child)."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_store(folder: Path, name: str, synchronous: str) -> Store:
    """A migrated store on a new SQLite file."""
    engine = open_engine(f"sqlite:///{folder / name}", synchronous=synchronous)
    upgrade(engine)
    return Store(engine)


def rss_of_one_run(folder: Path, n: int, slots: int, synchronous: str) -> tuple[float, float]:
    """Peak RSS of a process that only runs the n-task run, like a daemon (its database already migrated, so
    Alembic is never loaded): (peak MB, MB after the imports). The database is migrated by this process first."""
    path = folder / "rss.db"
    fresh_store(folder, path.name, synchronous).engine.dispose()
    out = subprocess.run([sys.executable, __file__, "--child", "rss", "--db", str(path), "--tasks", str(n),
                          "--slots", str(slots), "--synchronous", synchronous],
                         check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    return float(out[-2]), float(out[-1])


def child_rss(path: str, n: int, slots: int, synchronous: str) -> None:
    """The measured process: enqueue n tasks, run them with no-op handlers, print peak and import-time RSS."""
    imported = peak_rss_mb()
    engine = open_engine(f"sqlite:///{path}", synchronous=synchronous)
    upgrade(engine)  # at head: one SELECT, no Alembic
    store = Store(engine)
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}, priority=i % 10) for i in range(n)])
    pool = Pool(store, Registry({TaskType.TRANSCRIBE: lambda _ctx, _payload: {}}), PoolConfig(slots=slots))
    assert pool.run(drain=True).succeeded == n
    assert "alembic" not in sys.modules
    print(peak_rss_mb(), imported)


RAW_INSERT = (
    "INSERT INTO tasks (type, payload, state, priority, attempts, max_retries, run_after, errors, dedupe_key, "
    "job_id, created_at, updated_at, affinity) VALUES (?, ?, 'queued', ?, 0, ?, ?, '[]', ?, NULL, ?, ?, NULL)"
)
BULK_ROUNDS = 3
BLOCK = 250  # one-by-one enqueues alternate between Trax and the ceiling in blocks, so both see the same load


def raw_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    """A plain sqlite3 connection with Trax's settings (WAL, the same synchronous level)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def bench_enqueue(folder: Path, n: int, synchronous: str, run: int) -> tuple[float, float, float, float]:
    """Tasks/s enqueued one by one (one durable transaction each) and in one bulk call, through Trax and through
    raw sqlite3 into the same migrated table (BEGIN IMMEDIATE/INSERT/COMMIT per task; one executemany in one
    transaction): (trax one, raw one, trax bulk, raw bulk)."""
    store = fresh_store(folder, f"enqueue-{run}.db", synchronous)
    fresh_store(folder, f"enqueue-raw-{run}.db", synchronous).engine.dispose()
    conn = raw_connection(folder / f"enqueue-raw-{run}.db", synchronous)
    single, trax_s, raw_s = min(n, 5000), 0.0, 0.0
    for start in range(0, single, BLOCK):
        t0 = time.perf_counter()
        for i in range(start, min(single, start + BLOCK)):
            store.enqueue(NewTask(TaskType.TRANSCRIBE, {"i": i}, dedupe_key=f"k{i}"))
        t1 = time.perf_counter()
        for i in range(start, min(single, start + BLOCK)):
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(RAW_INSERT, ("transcribe", json.dumps({"i": i}), 6, 3, now, f"k{i}", now, now))
            conn.execute("COMMIT")
        trax_s, raw_s = trax_s + t1 - t0, raw_s + time.perf_counter() - t1
    bulk_s, raw_bulk_s = 0.0, 0.0
    for _ in range(BULK_ROUNDS):  # alternated too; each round adds n rows to either table
        tasks = [NewTask(TaskType.TRANSCRIBE, {"i": i}) for i in range(n)]
        t0 = time.perf_counter()
        store.enqueue_many(tasks)
        t1 = time.perf_counter()
        now = time.time()
        rows = [("transcribe", json.dumps({"i": i}), 6, 3, now, None, now, now) for i in range(n)]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(RAW_INSERT, rows)
        conn.execute("COMMIT")
        bulk_s, raw_bulk_s = bulk_s + t1 - t0, raw_bulk_s + time.perf_counter() - t1
    conn.close()
    store.engine.dispose()
    return single / trax_s, single / raw_s, BULK_ROUNDS * n / bulk_s, BULK_ROUNDS * n / raw_bulk_s


def bench_trax(folder: Path, n: int, slots: int, synchronous: str, backlog: int,
               run: int) -> tuple[float, int, float, float]:  # fmt: skip
    """End-to-end no-op tasks/s through the Trax pool (claim + run + durable completion), how many ran, and the CPU
    microseconds per task the process spent meanwhile (all threads) and its dispatcher alone (this thread)."""
    store = fresh_store(folder, f"trax-{backlog}-{run}.db", synchronous)
    if backlog:
        store.enqueue_many([NewTask(TaskType.ENHANCE, {"i": i}, priority=20) for i in range(backlog)])
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}, priority=i % 10) for i in range(n)])
    ran = [0]
    lock = threading.Lock()

    def noop(_ctx: object, _payload: dict) -> dict:
        with lock:
            ran[0] += 1
        return {}

    pool = Pool(store, Registry({TaskType.TRANSCRIBE: noop}), PoolConfig(slots=slots))
    t0, cpu, mine = time.perf_counter(), time.process_time(), time.thread_time()
    pool.run(drain=True)  # the dispatcher runs in the calling thread
    rate, cpu = n / (time.perf_counter() - t0), (time.process_time() - cpu) * 1e6 / n
    store.engine.dispose()
    return rate, ran[0], cpu, (time.thread_time() - mine) * 1e6 / n


def settle_and_claim(folder: Path, synchronous: str, rounds: int = 200, batch: int = 8) -> tuple[float, float]:
    """One settle-and-claim transaction (`batch` settled, `batch` claimed, as a pool round with that many slots),
    run alone: the pages it writes to the WAL (from the WAL's size, automatic checkpoints off) and its median
    wall time in µs."""
    path = folder / "wal-pages.db"
    engine = open_engine(f"sqlite:///{path}", synchronous=synchronous)
    event.listen(engine, "connect", lambda conn, _record: conn.execute("PRAGMA wal_autocheckpoint=0"))
    engine.dispose()  # the connection open_engine made without it
    upgrade(engine)
    store = Store(engine)
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}, priority=i % 10) for i in range(10_000)])
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    held: list[Task] = []
    owner = str(Owner.current())  # a claim writes it into each row: its length is part of what a page holds
    took = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        held = store.exchange(owner, [Completion(t.lease, {}) for t in held], [], batch, 30.0).claimed
        took.append(time.perf_counter() - t0)
    pages = (path.with_name(path.name + "-wal").stat().st_size - 32) / (24 + page)  # header, then frame headers
    engine.dispose()
    return pages / rounds, statistics.median(took) * 1e6


CEILING_SCHEMA = """
CREATE TABLE q (id INTEGER PRIMARY KEY, payload TEXT, state TEXT, priority INT, owner TEXT, expires REAL);
CREATE INDEX q_claim ON q(priority, id) WHERE state = 'queued';
"""
CLAIM = """UPDATE q SET state='running', owner=?, expires=? WHERE id IN
  (SELECT id FROM q WHERE state='queued' ORDER BY priority, id LIMIT 1) RETURNING id, payload"""


def bench_ceiling(folder: Path, n: int, slots: int, synchronous: str, run: int) -> tuple[float, float]:
    """A minimal hand-written sqlite3 lease queue: one UPDATE…RETURNING claim + one update per task, per thread.
    Tasks/s and CPU microseconds per task."""
    path = folder / f"ceiling-{run}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(CEILING_SCHEMA)
    conn.executemany("INSERT INTO q(payload, state, priority) VALUES (?, 'queued', ?)",
                     [(json.dumps({"i": i}), i % 10) for i in range(n)])  # fmt: skip
    conn.close()

    def worker(me: str) -> None:
        c = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        c.execute(f"PRAGMA synchronous={synchronous}")
        while True:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute(CLAIM, (me, time.time() + 30)).fetchone()
            c.execute("COMMIT")
            if row is None:
                return
            json.loads(row[1])
            c.execute("BEGIN IMMEDIATE")
            c.execute("UPDATE q SET state='done' WHERE id=? AND owner=? AND state='running'", (row[0], me))
            c.execute("COMMIT")

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(slots)]
    t0, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.perf_counter() - t0), (time.process_time() - cpu) * 1e6 / n


# -- PostgreSQL: several processes on one database ---------------------------------------------------
PG_CEILING_SCHEMA = (
    (
        "CREATE TABLE q (id BIGSERIAL PRIMARY KEY, payload TEXT, state TEXT, priority INT, owner TEXT, "
        "expires DOUBLE PRECISION)"
    ),
    "CREATE INDEX q_claim ON q (priority, id) WHERE state = 'queued'",
)
PG_CLAIM = """UPDATE q SET state = 'running', owner = %s, expires = %s WHERE id = (
  SELECT id FROM q WHERE state = 'queued' ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, payload"""
PG_DONE = "UPDATE q SET state = 'done' WHERE id = %s AND owner = %s AND state = 'running'"


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a plain libpq one (for psycopg.connect)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def run_processes(kind: str, url: str, processes: int, slots: int) -> tuple[float, float]:
    """Start `processes` children of this script, start the clock when all are ready.

    Returns (seconds until the last one finished, CPU seconds the children spent after the start).
    """
    cmd = [sys.executable, __file__, "--child", kind, "--db", url, "--slots", str(slots)]
    children = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]  # fmt: skip
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready", f"{kind} child failed"
        t0 = time.monotonic()  # CLOCK_MONOTONIC is system-wide: comparable with the children's readings
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        ends, cpu = [], 0.0
        for child in children:
            out, _ = child.communicate(timeout=3600)
            assert child.returncode == 0, f"{kind} child exited with {child.returncode}"
            end, used = out.split()[-2:]
            ends.append(float(end))
            cpu += float(used)
        return max(ends) - t0, cpu
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def wait_for_go() -> float:
    print("ready", flush=True)
    sys.stdin.readline()
    return time.process_time()


def report_end(cpu_at_go: float) -> None:
    """The end time (system-wide monotonic clock) and the CPU this process used since the go."""
    print(time.monotonic(), time.process_time() - cpu_at_go, flush=True)


def child_trax(url: str, slots: int) -> None:
    """One daemon-like pool process: drain the queue with no-op handlers."""
    engine = open_engine(url)
    store = Store(engine)
    pool = Pool(store, Registry({TaskType.TRANSCRIBE: lambda _ctx, _payload: {}}), PoolConfig(slots=slots))
    cpu = wait_for_go()
    pool.run(drain=True)
    report_end(cpu)
    engine.dispose()


def child_ceiling(url: str, slots: int) -> None:
    """The hand-written queue: `slots` threads, each on its own connection, claim one + finish one per task."""
    import psycopg

    me = f"{os.uname().nodename}:{os.getpid()}"
    conns = [psycopg.connect(libpq_url(url), autocommit=True) for _ in range(slots)]

    def worker(conn: psycopg.Connection, name: str) -> None:
        while True:
            row = conn.execute(PG_CLAIM, (name, time.time() + 30)).fetchone()
            if row is None:
                return
            json.loads(row[1])
            conn.execute(PG_DONE, (row[0], name))

    threads = [threading.Thread(target=worker, args=(c, f"{me}:{i}")) for i, c in enumerate(conns)]
    cpu = wait_for_go()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report_end(cpu)


def bench_pg_trax(admin_url: str, n: int, processes: int, slots: int) -> tuple[float, float]:
    """End-to-end no-op tasks/s through `processes` Trax pools on one fresh PostgreSQL database."""
    with fresh_pg_database(admin_url) as url:
        engine = open_engine(url)
        upgrade(engine)
        store = Store(engine)
        store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}, priority=i % 10) for i in range(n)])
        seconds, cpu = run_processes("trax", url, processes, slots)
        counts = store.counts()
        assert counts["succeeded"] == n, f"only {counts} after the run"
        engine.dispose()
    return n / seconds, 1000 * cpu / n


def bench_pg_ceiling(admin_url: str, n: int, processes: int, slots: int) -> tuple[float, float]:
    """The same workload through the hand-written psycopg SKIP LOCKED queue."""
    import psycopg

    with fresh_pg_database(admin_url) as url, psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for stmt in PG_CEILING_SCHEMA:
            conn.execute(stmt)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO q (payload, state, priority) VALUES (%s, 'queued', %s)",
                            [(json.dumps({"i": i}), i % 10) for i in range(n)])  # fmt: skip
        seconds, cpu = run_processes("ceiling", url, processes, slots)
        left = conn.execute("SELECT count(*) FROM q WHERE state <> 'done'").fetchone()
        assert left is not None and left[0] == 0, f"{left} rows not done"
    return n / seconds, 1000 * cpu / n


def main_pg(admin_url: str, n: int, slots: int, processes: list[int], repeat: int) -> None:
    """The PostgreSQL table: Trax pools vs the hand-written ceiling per process count."""
    import psycopg

    load = os.getloadavg()
    print(f"{n:,} no-op tasks per run (best of {repeat}), {slots} slots per process, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")  # fmt: skip
    print("client CPU = CPU ms per task spent in the queue processes (not the server), start-up excluded")
    print(f"{'processes':>9} | {'Trax tasks/s':>12} | {'ceiling tasks/s':>15} | {'Trax/ceiling':>12} | "
          f"{'client CPU Trax':>15} | {'ceiling':>7}")  # fmt: skip
    for p in processes:
        # Best of `repeat` (neighbours on a shared machine only ever slow a run down), alternating the two.
        trax, trax_cpu, ceiling, ceiling_cpu = 0.0, 0.0, 0.0, 0.0
        for _ in range(repeat):
            rate, cpu = bench_pg_trax(admin_url, n, p, slots)
            if rate > trax:
                trax, trax_cpu = rate, cpu
            rate, cpu = bench_pg_ceiling(admin_url, n, p, slots)
            if rate > ceiling:
                ceiling, ceiling_cpu = rate, cpu
        print(f"{p:>9} | {trax:>12,.0f} | {ceiling:>15,.0f} | {trax / ceiling:>12.2f} | "
              f"{trax_cpu:>12.2f} ms | {ceiling_cpu:>4.2f} ms", flush=True)  # fmt: skip
    with psycopg.connect(libpq_url(admin_url)) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    load = os.getloadavg()
    print(f"PostgreSQL {version[0] if version else '?'}, psycopg {psycopg.__version__}, Python "
          f"{sys.version.split()[0]}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end")  # fmt: skip


def main() -> None:
    """Run every measurement in one process on the same DB settings and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=None, help="no-op tasks per run (10,000; 5,000 on PostgreSQL)")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--synchronous", default="NORMAL")
    ap.add_argument("--backlog", type=int, default=100_000, help="queued low-priority tasks for the backlog run")
    ap.add_argument("--db", help="a PostgreSQL URL (allowed to create databases); without it: SQLite files")
    ap.add_argument("--processes", default="1,2,4", help="PostgreSQL: pool process counts to measure")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (the best run counts)")
    ap.add_argument("--child", choices=("trax", "ceiling", "rss"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "rss":
        child_rss(args.db, args.tasks, args.slots, args.synchronous)
        return
    if args.child:
        (child_trax if args.child == "trax" else child_ceiling)(args.db, args.slots)
        return
    if args.db:
        if not args.db.startswith("postgresql"):
            ap.error("--db takes a PostgreSQL URL (postgresql+psycopg://...); omit it for the SQLite benchmark")
        processes = [int(p) for p in args.processes.split(",") if p.strip()]
        main_pg(args.db, args.tasks or 5_000, args.slots, processes, args.repeat)
        return
    args.tasks = args.tasks or 10_000
    with tempfile.TemporaryDirectory() as tmp:
        main_sqlite(Path(tmp), args.tasks, args.slots, args.synchronous, args.backlog, args.repeat)
    print(f"synchronous={args.synchronous}, SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")  # fmt: skip


def main_sqlite(folder: Path, n: int, slots: int, synchronous: str, backlog: int, repeat: int) -> None:
    """Every SQLite figure `repeat` times, each next to its ceiling from the same run; then the best ratio of a
    run and, stricter on a noisy machine, Trax's best rate against the ceiling's best rate."""
    load = os.getloadavg()
    print(f"{n:,} tasks per run, {slots} slots, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")
    print(f"{'run':>3} | {'one by one':>10} {'ceiling':>8} {'ratio':>5} | {'bulk':>8} {'ceiling':>8} {'ratio':>5} | "
          f"{'processing':>10} {'ceiling':>8} {'ratio':>5} | {'CPU µs/task':>11} {'ceiling':>7} "
          f"{'dispatcher':>10}")  # fmt: skip
    ratios: list[tuple[float, float, float]] = []
    rates: list[tuple[float, ...]] = []
    for run in range(repeat):
        one, raw_one, bulk, raw_bulk = bench_enqueue(folder, n, synchronous, run)
        trax, ran, trax_cpu, dispatcher_cpu = bench_trax(folder, n, slots, synchronous, 0, run)
        assert ran == n, f"ran {ran} of {n}"
        ceiling, ceiling_cpu = bench_ceiling(folder, n, slots, synchronous, run)
        ratios.append((one / raw_one, bulk / raw_bulk, trax / ceiling))
        rates.append((one, raw_one, bulk, raw_bulk, trax, ceiling))
        print(f"{run + 1:>3} | {one:>10,.0f} {raw_one:>8,.0f} {one / raw_one:>5.2f} | {bulk:>8,.0f} {raw_bulk:>8,.0f} "
              f"{bulk / raw_bulk:>5.2f} | {trax:>10,.0f} {ceiling:>8,.0f} {trax / ceiling:>5.2f} | {trax_cpu:>11.0f} "
              f"{ceiling_cpu:>7.0f} {dispatcher_cpu:>10.0f}", flush=True)  # fmt: skip
    best = [max(r[i] for r in ratios) for i in range(3)]
    print(f"best ratio: one by one {best[0]:.2f} (goal 0.8), bulk {best[1]:.2f} (goal 0.7), "
          f"processing {best[2]:.2f} (goal 1.0)")  # fmt: skip
    top = [max(r[i] for r in rates) for i in range(6)]
    print(f"best rate / best ceiling: one by one {top[0] / top[1]:.2f}, bulk {top[2] / top[3]:.2f}, "
          f"processing {top[4] / top[5]:.2f}")  # fmt: skip
    print("ceilings: raw sqlite3 BEGIN IMMEDIATE/INSERT/COMMIT per task; raw executemany in one transaction; "
          "sqlite3 lease queue, one UPDATE…RETURNING claim + one guarded update per task per thread")  # fmt: skip
    pages, micros = settle_and_claim(folder, synchronous, batch=slots)
    print(f"settle-and-claim transaction alone ({slots} settled + {slots} claimed): {pages:.2f} WAL pages, "
          f"{micros:.0f} µs median")
    rss, imported = rss_of_one_run(folder, n, slots, synchronous)
    print(f"peak RSS           : {rss:10.1f} MB in a process that runs {n:,} tasks ({imported:.1f} MB after its "
          f"imports); this benchmark process: {peak_rss_mb():.1f} MB")  # fmt: skip
    if backlog:
        big, *_ = bench_trax(folder, n, slots, synchronous, backlog, repeat)
        print(f"with {backlog:,} queued  : {big:10,.0f} tasks/s")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end")

if __name__ == "__main__":
    main()
