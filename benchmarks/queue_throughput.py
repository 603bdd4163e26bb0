"""Queue throughput: enqueue (single, bulk), end-to-end no-op tasks with 8 slots, and a hand-written ceiling.

Run: uv run python benchmarks/queue_throughput.py [--tasks 10000] [--slots 8] [--synchronous NORMAL]
     uv run python benchmarks/queue_throughput.py --backlog 100000   (throughput with a large queued backlog)
     uv run python benchmarks/queue_throughput.py --db postgresql+psycopg://...  (see --processes)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from traxd.daemon.pool import Pool, PoolConfig  # noqa: E402
from traxd.db.engine import open_engine  # noqa: E402
from traxd.db.migrate import upgrade  # noqa: E402
from traxd.handlers.registry import Registry  # noqa: E402
from traxd.queue.store import Store  # noqa: E402
from traxd.types import NewTask, TaskType  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_store(folder: Path, name: str, synchronous: str) -> Store:
    """A migrated store on a new SQLite file."""
    engine = open_engine(f"sqlite:///{folder / name}", synchronous=synchronous)
    upgrade(engine)
    return Store(engine)


def bench_enqueue(folder: Path, n: int, synchronous: str) -> tuple[float, float]:
    """Tasks/s enqueued one by one (one transaction each) and in one bulk call."""
    store = fresh_store(folder, "enqueue.db", synchronous)
    single = min(n, 5000)
    t0 = time.perf_counter()
    for i in range(single):
        store.enqueue(NewTask(TaskType.TRANSCRIBE, {"i": i}, dedupe_key=f"k{i}"))
    one = single / (time.perf_counter() - t0)
    tasks = [NewTask(TaskType.TRANSCRIBE, {"i": i}) for i in range(n)]
    t0 = time.perf_counter()
    store.enqueue_many(tasks)
    bulk = n / (time.perf_counter() - t0)
    store.engine.dispose()
    return one, bulk


def bench_trax(folder: Path, n: int, slots: int, synchronous: str, backlog: int) -> tuple[float, int]:
    """End-to-end no-op tasks/s through the Trax pool (claim + run + durable completion)."""
    store = fresh_store(folder, f"trax-{backlog}.db", synchronous)
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
    t0 = time.perf_counter()
    pool.run(drain=True)
    rate = n / (time.perf_counter() - t0)
    store.engine.dispose()
    return rate, ran[0]


CEILING_SCHEMA = """
CREATE TABLE q (id INTEGER PRIMARY KEY, payload TEXT, state TEXT, priority INT, owner TEXT, expires REAL);
CREATE INDEX q_claim ON q(priority, id) WHERE state = 'queued';
"""
CLAIM = """UPDATE q SET state='running', owner=?, expires=? WHERE id IN
  (SELECT id FROM q WHERE state='queued' ORDER BY priority, id LIMIT 1) RETURNING id, payload"""


def bench_ceiling(folder: Path, n: int, slots: int, synchronous: str) -> float:
    """A minimal hand-written sqlite3 lease queue: one UPDATE…RETURNING claim + one update per task, per thread."""
    path = folder / "ceiling.db"
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
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.perf_counter() - t0)


def main() -> None:
    """Run every measurement in one process on the same DB settings and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--synchronous", default="NORMAL")
    ap.add_argument("--backlog", type=int, default=100_000, help="queued low-priority tasks for the backlog run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one, bulk = bench_enqueue(folder, args.tasks, args.synchronous)
        print(f"enqueue one-by-one : {one:10,.0f} tasks/s")
        print(f"enqueue bulk       : {bulk:10,.0f} tasks/s")
        trax, ran = bench_trax(folder, args.tasks, args.slots, args.synchronous, 0)
        assert ran == args.tasks, f"ran {ran} of {args.tasks}"
        rss = peak_rss_mb()
        ceiling = bench_ceiling(folder, args.tasks, args.slots, args.synchronous)
        print(f"end-to-end Trax    : {trax:10,.0f} tasks/s  ({args.slots} slots, {args.tasks:,} no-op tasks)")
        print(f"hand-written floor : {ceiling:10,.0f} tasks/s  (sqlite3, UPDATE…RETURNING claim + 1 update/task)")
        print(f"Trax / hand-written: {trax / ceiling:10.2f}")
        print(f"peak RSS           : {rss:10.1f} MB (after {args.tasks:,} tasks)")
        if args.backlog:
            big, _ = bench_trax(folder, args.tasks, args.slots, args.synchronous, args.backlog)
            print(f"with {args.backlog:,} queued  : {big:10,.0f} tasks/s  (loss {100 * (1 - big / trax):.1f}%)")
    print(f"synchronous={args.synchronous}, SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")  # fmt: skip


if __name__ == "__main__":
    main()
