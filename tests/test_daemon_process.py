"""Real `traxd run` subprocesses: drops while stopped, kill -9 loops, pause/resume/stop, SIGTERM, one daemon per home."""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests.daemon_helpers import Daemon, home_env, open_home_store, traxctl, wait_until
from traxd.queue.store import Store
from traxd.types import TaskState, TaskType


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def spawn(daemons: list[Daemon], home: Path, handlers: str = "noop", *args: str, **env: str) -> Daemon:
    d = Daemon(home, home_env(home, handlers, TRAX_TEST_MARKS=str(home.parent / "marks"), **env), args)
    daemons.append(d)
    return d.start()


def file_tasks(store: Store) -> list[str]:
    return [t.payload["path"] for t in store.list_tasks(limit=100_000) if t.type is TaskType.PREPROCESS]


def marks(home: Path, what: str = "done") -> Counter[int]:
    path = home.parent / "marks"
    lines = path.read_text().split("\n") if path.exists() else []
    return Counter(int(line.split()[1]) for line in lines if line.startswith(what + " "))


def drop(inbox: Path, names: range, prefix: str) -> None:
    for i in names:
        (inbox / f"{prefix}-{i:04}.mp3").write_bytes(f"{prefix} {i}".encode())


def test_files_dropped_while_stopped_and_running_kill9_during_ingestion(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    first = spawn(daemons, home).wait_ready()
    first.kill9()
    drop(inbox, range(60), "stopped")  # the daemon is down: found by the start scan
    rng = random.Random(7)
    batches = [range(60, 100), range(100, 140), range(140, 170), range(170, 200)]
    for batch in batches:
        d = spawn(daemons, home).wait_ready()
        drop(inbox, batch, "live")
        store = open_home_store(home)
        try:
            # Kill while the batch is still settling or being ingested.
            target = rng.randint(1, len(batch))
            wanted = batch.start - 60 + target
            wait_until(lambda s=store, n=wanted, d=d: len(file_tasks(s)) >= n or d.proc.poll() is not None)
        finally:
            store.engine.dispose()
        d.kill9()
    last = spawn(daemons, home).wait_ready()
    store = open_home_store(home)
    try:
        wait_until(lambda: len(file_tasks(store)) >= 200 and store.counts()["succeeded"] >= 200, what="all 200")
        paths = file_tasks(store)
        assert len(paths) == 200 and len(set(paths)) == 200
        assert store.counts() == {"queued": 0, "running": 0, "succeeded": 200, "failed": 0, "cancelled": 0}
    finally:
        store.engine.dispose()
    last.term()
    assert last.wait_exit() == 0


def test_kill9_during_processing_loses_nothing_and_repeats_only_in_flight(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, range(30), "work")
    for _round in range(3):
        d = spawn(daemons, home, "slow", "--workers", "3", TRAX_TEST_SLEEP="0.4").wait_ready()
        started = sum(marks(home, "start").values())
        wait_until(lambda n=started + 4: sum(marks(home, "start").values()) >= n, what="tasks running")
        d.kill9()
    d = spawn(daemons, home, "slow", "--workers", "3", TRAX_TEST_SLEEP="0.4").wait_ready()
    store = open_home_store(home)
    try:
        wait_until(lambda: store.counts()["succeeded"] == 30, what="all succeeded", timeout=120)
        assert len(file_tasks(store)) == 30
        done = marks(home, "done")
        assert sorted(done) == sorted(t.id for t in store.list_tasks(limit=100))
        # Only runs in flight at a kill -9 (at most 3 slots x 3 kills) can be repeated; finished work never is.
        assert sum(done.values()) - 30 <= 9
    finally:
        store.engine.dispose()
    d.term()
    assert d.wait_exit() == 0


def test_pause_from_another_process_stops_claims_then_resume(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, range(60), "p")
    d = spawn(daemons, home, "slow", "--workers", "2", TRAX_TEST_SLEEP="1").wait_ready()
    store = open_home_store(home)
    try:
        wait_until(lambda: store.counts()["succeeded"] >= 1, what="some progress")
        assert traxctl(home, "pause").returncode == 0
        paused_at = store.controls()["*"].updated_at
        wait_until(lambda: store.counts()["running"] == 0, what="running tasks to finish")
        claims_after = [t.id for t in store.list_tasks(limit=100) if (t.started_at or 0) > paused_at + 1.0]
        assert claims_after == [], "a task was claimed more than 1 s after pause"
        assert store.counts()["queued"] > 0
        status = traxctl(home, "status", "--json")
        assert '"state": "paused"' in status.stdout and "paused by traxctl" in status.stdout
        assert traxctl(home, "resume").returncode == 0
        resumed_at = store.clock.now()
        wait_until(lambda: any((t.started_at or 0) > resumed_at for t in store.list_tasks(limit=100)), what="claim")
    finally:
        store.engine.dispose()
    d.term()
    assert d.wait_exit() == 0


def test_traxctl_stop_exits_zero_within_grace_and_finishes_running_task(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, range(1), "s")
    d = spawn(daemons, home, "slow", TRAX_TEST_SLEEP="2", TRAX_GRACE_SECONDS="20").wait_ready()
    wait_until(lambda: marks(home, "start"), what="task started")
    assert traxctl(home, "stop").returncode == 0
    assert d.wait_exit(timeout=20 + 30) == 0
    store = open_home_store(home)
    try:
        assert store.counts()["succeeded"] == 1  # finished inside the grace period
        assert store.workers() == []  # clean exit removes the heartbeat
    finally:
        store.engine.dispose()
    # The next start is not stopped by the old request.
    d2 = spawn(daemons, home).wait_ready()
    d2.term()
    assert d2.wait_exit() == 0


def test_sigterm_releases_what_outlives_grace_and_kills_children(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, range(1), "c")
    d = spawn(daemons, home, "spawn", TRAX_GRACE_SECONDS="1").wait_ready()
    wait_until(lambda: marks(home, "child"), what="child started")
    (child,) = marks(home, "child")
    assert psutil.pid_exists(child)
    d.term()
    assert d.wait_exit(timeout=60) == 0
    wait_until(lambda: not _alive(child), what="child gone", timeout=10)
    store = open_home_store(home)
    try:
        (task,) = store.list_tasks()
        assert task.state is TaskState.QUEUED and task.attempts == 0  # released, attempt refunded
    finally:
        store.engine.dispose()


def test_second_signal_exits_at_once(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, range(1), "n")
    d = spawn(daemons, home, "slow", TRAX_TEST_SLEEP="120", TRAX_GRACE_SECONDS="120").wait_ready()
    wait_until(lambda: marks(home, "start"), what="task started")
    d.term()
    wait_until(lambda: "daemon_started" in d.log.read_text(), what="log")
    d.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
    assert d.wait_exit(timeout=60) == 0


def test_kill9_leaves_no_orphan_children(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, range(1), "o")
    d = spawn(daemons, home, "spawn").wait_ready()
    wait_until(lambda: marks(home, "child"), what="child started")
    (child,) = marks(home, "child")
    d.kill9()
    assert _alive(child)  # orphaned by kill -9 ...
    d2 = spawn(daemons, home, "noop").wait_ready()
    wait_until(lambda: not _alive(child), what="orphan reaped at start", timeout=30)  # ... reaped by the next start
    d2.term()
    assert d2.wait_exit() == 0


def test_second_daemon_on_the_same_home_refuses(home: Path, daemons: list[Daemon]) -> None:
    spawn(daemons, home).wait_ready()
    second = spawn(daemons, home)
    assert second.wait_exit(timeout=60) == 1
    text = second.log.read_text()
    assert "another traxd (pid" in text and "Traceback" not in text


def test_drain_processes_the_inbox_and_exits_zero(home: Path, daemons: list[Daemon]) -> None:
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    drop(inbox, range(5), "d")
    d = spawn(daemons, home, "noop", "--drain")
    assert d.wait_exit(timeout=90) == 0
    store = open_home_store(home)
    try:
        assert store.counts()["succeeded"] == 5
    finally:
        store.engine.dispose()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


assert os.name == "posix"
