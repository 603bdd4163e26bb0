"""The pool survives a database it cannot reach for a while: it backs off, keeps results, and finishes."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from traxd.daemon.pool import Pool, PoolConfig
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Store
from traxd.types import NewTask, TaskType


def test_a_writer_holding_the_lock_past_busy_timeout_only_delays_the_pool(tmp_path: Path) -> None:
    path = tmp_path / "trax.db"
    engine = open_engine(f"sqlite:///{path}", busy_timeout_ms=100)
    upgrade(engine)
    store = Store(engine)
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}) for i in range(200)])
    ran: list[int] = []
    first_ten = threading.Event()

    def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        ran.append(payload["i"])
        if len(ran) >= 10:
            first_ten.set()
        time.sleep(0.005)
        return {}

    pool = Pool(store, Registry({TaskType.TRANSCRIBE: handler}), PoolConfig(slots=4, db_retry_max_seconds=0.5))
    thread = threading.Thread(target=pool.run, kwargs={"drain": True}, daemon=True)
    blocker = sqlite3.connect(path, isolation_level=None, timeout=30)
    thread.start()
    assert first_ten.wait(30)
    blocker.execute("BEGIN IMMEDIATE")  # another process-like writer holds the lock for a while
    time.sleep(1.0)
    blocker.execute("COMMIT")
    blocker.close()
    thread.join(60)
    assert not thread.is_alive()
    assert store.counts()["succeeded"] == 200 and sorted(ran) == list(range(200))
    assert pool.stats.lost == 0
    engine.dispose()
