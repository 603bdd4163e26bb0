"""Pause, resume and stop written by another process reach a running pool in another process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.test_crash import ROOT, lines, start_child, wait_for_progress
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue.store import Store
from traxd.types import NewTask, TaskType


def control(db_url: str, state: str, reason: str = "") -> None:
    args = [sys.executable, "-m", "tests.workers.control", db_url, state] + ([reason] if reason else [])
    subprocess.run(args, cwd=ROOT, check=True, timeout=60)


def wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_pause_resume_stop_from_another_process(tmp_path: Path, db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"sleep": 0.1}) for _ in range(2000)])
    log = tmp_path / "runs.log"
    child = start_child(db_url, log, mode="serve")
    wait_for_progress(log, 8, child)

    control(db_url, "paused", "lunch")
    wait_until(lambda: store.counts()["running"] == 0)
    paused_at = len(lines(log))
    time.sleep(1.5)  # proving an absence: the pool re-reads control every 0.2 s here, so 1.5 s is ample
    assert len(lines(log)) == paused_at, "the pool kept claiming after the pause"
    assert store.counts()["queued"] > 0

    control(db_url, "running")
    wait_for_progress(log, paused_at + 8, child)

    control(db_url, "stopping")
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert "exited cleanly" in out
    counts = store.counts()
    assert counts["running"] == 0 and counts["queued"] > 0 and counts["failed"] == 0
    assert store.workers() == []
    engine.dispose()


def test_stop_releases_what_does_not_finish_within_the_grace_period(tmp_path: Path, db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"sleep": 120}) for _ in range(6)])
    log = tmp_path / "runs.log"
    child = start_child(db_url, log, mode="serve", GRACE="0.5")
    wait_for_progress(log, 4, child)
    control(db_url, "stopping")
    _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    tasks = store.list_tasks()
    assert store.counts()["queued"] == 6
    assert all(t.attempts == 0 and t.lease_owner is None for t in tasks), "released tasks keep no lease or attempt"
    engine.dispose()

