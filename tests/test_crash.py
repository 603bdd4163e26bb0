"""A real child process running a pool is killed with SIGKILL mid-task, again and again: nothing is lost."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.store_checks import integrity_ok
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue.store import Store
from traxd.types import NewTask, TaskType

ROOT = Path(__file__).resolve().parent.parent
SLOTS = 4


def start_child(db_url: str, log: Path, mode: str = "drain", **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers.pool_child", db_url, str(log), str(SLOTS), mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
    )  # fmt: skip


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_for_progress(log: Path, at_least: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(lines(log)) < at_least:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "child died"
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.01)


def test_sigkill_mid_task_loses_nothing_and_reruns_only_what_was_in_flight(tmp_path: Path, db_url: str) -> None:
    total, kills = 300, 3
    engine = open_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}, priority=i % 7) for i in range(total)])
    log = tmp_path / "side-effects.log"
    rng = random.Random(1234)
    for k in range(kills):
        child = start_child(db_url, log)
        wait_for_progress(log, len(lines(log)) + 20, child)
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, f"kill {k} came too late: the child had finished"
    # The last start must rescue the dead predecessors' leases at once: leases last 600 s here.
    final = start_child(db_url, log)
    _out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    runs = collections.Counter(int(line.split()[0]) for line in lines(log))
    assert store.counts() == {"queued": 0, "running": 0, "succeeded": total, "failed": 0, "cancelled": 0}
    assert len(runs) == total, "a task never ran"
    twice = [t for t, n in runs.items() if n > 1]
    assert len(twice) <= kills * SLOTS, f"{len(twice)} tasks ran twice; at most {kills * SLOTS} were in flight"
    assert all(n <= 2 for n in runs.values())
    assert integrity_ok(store)
    for task in store.list_tasks(limit=total):
        assert task.attempts == runs[task.id] or task.attempts == runs[task.id] + 1
    engine.dispose()
