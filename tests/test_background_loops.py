"""Background loops on a real database: expected database trouble is retried, a plain bug is logged with its
traceback and reaches the supervisor (the pool stops as `traxctl stop` does; traxd then exits 1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from tests.daemon_helpers import wait_until
from traxd import logging as trax_logging
from traxd.config import WatchFolder
from traxd.daemon.pool import Pool, PoolConfig, PoolStats
from traxd.handlers.registry import Registry
from traxd.ingest.enqueue import Ingestor
from traxd.ingest.watcher import Watcher
from traxd.queue.store import Store
from traxd.resources import TreeSampler


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The JSON log the daemon writes, for this test."""
    trax_logging.configure("warning", tmp_path / "logs", tty=False)
    yield tmp_path / "logs" / trax_logging.LOG_FILE
    trax_logging.configure("warning")


def logged(path: Path, event: str) -> list[dict[str, Any]]:
    """The entries of the log with this event name."""
    trax_logging.flush()
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == event]


def broken_after_first(real: Any) -> Any:
    """A collaborator that works once, then fails with a plain bug (as a wrong call in new code would)."""
    calls = []

    def call(*args: Any) -> Any:
        calls.append(args)
        if len(calls) > 1:
            raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")
        return real(*args)

    return call


def test_a_bug_in_maintenance_is_logged_with_its_traceback_and_stops_the_pool(store: Store,
                                                                              log_file: Path) -> None:  # fmt: skip
    pool = Pool(store, Registry({}), PoolConfig(slots=1, lease_seconds=0.6, idle_seconds=0.05))
    pool.maintenance._sample = broken_after_first(TreeSampler())  # the start-up beat works
    done: list[PoolStats] = []
    runner = threading.Thread(target=lambda: done.append(pool.run()), daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert done, "the pool kept running after its maintenance loop broke"
    assert done[0].crashed is not None and done[0].crashed.startswith("maintenance: TypeError")
    (entry,) = logged(log_file, "background_loop_failed")
    assert entry["loop"] == "maintenance" and entry["level"] == "error"
    assert "Traceback" in entry["exception"] and "TypeError: unsupported operand" in entry["exception"]


def test_a_bug_in_the_watcher_is_logged_with_its_traceback_and_told(store: Store, tmp_path: Path,
                                                                    log_file: Path) -> None:  # fmt: skip
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ingestor = Ingestor(store)
    ingestor.ingest_files = broken_after_first(ingestor.ingest_files)  # type: ignore[method-assign]
    told: list[tuple[str, BaseException]] = []
    watcher = Watcher([WatchFolder(inbox, tmp_path / "out")], ingestor, settle_seconds=0.1, tick_seconds=0.02,
                      rescan_seconds=3600, crashed=lambda loop, exc: told.append((loop, exc)))  # fmt: skip
    (inbox / "a.mp3").write_bytes(b"first")
    watcher.start()
    try:
        wait_until(lambda: len(store.list_tasks()) == 1, what="the first file queued")
        (inbox / "b.mp3").write_bytes(b"second")
        wait_until(lambda: told, what="the watcher's bug reported")
    finally:
        watcher.stop()
    assert told[0][0] == "watcher" and isinstance(told[0][1], TypeError)
    (entry,) = logged(log_file, "background_loop_failed")
    assert entry["loop"] == "watcher" and "Traceback" in entry["exception"]


def test_an_unreachable_database_is_retried_not_reported(store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ingestor = Ingestor(store)
    real, failures = ingestor.ingest_files, []

    def busy_once(*args: Any) -> Any:
        if not failures:
            failures.append(1)
            raise sa_exc.OperationalError("INSERT INTO jobs", {}, Exception("the server closed the connection"))
        return real(*args)

    ingestor.ingest_files = busy_once  # type: ignore[method-assign]
    told: list[object] = []
    watcher = Watcher([WatchFolder(inbox, tmp_path / "out")], ingestor, settle_seconds=0.1, tick_seconds=0.02,
                      rescan_seconds=3600, crashed=lambda loop, exc: told.append(exc))  # fmt: skip
    (inbox / "a.mp3").write_bytes(b"first")
    watcher.start()
    try:
        wait_until(lambda: len(store.list_tasks()) == 1, what="the file queued after the retry")
    finally:
        watcher.stop()
    assert failures and told == []
