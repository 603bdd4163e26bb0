"""Leftovers: chunk folders go when their job ends in any state; the start-up sweep removes the scratch of ended
jobs and the temp output files of writers killed with SIGKILL, never those of a live writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from traxd.config import load_settings
from traxd.daemon.pool import Pool, PoolConfig
from traxd.daemon.scratch import sweep_at_start
from traxd.errors import PermanentError, RetryableError
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Store
from traxd.types import NewJob, NewTask, TaskState, TaskType

T = TaskType.TRANSCRIBE
ROOT = Path(__file__).resolve().parent.parent


def add_job(store: Store, name: str, outbox: Path | None = None) -> int:
    _job, tasks, _ = store.create_job(NewJob(f"/in/{name}.mp3", name, str(outbox) if outbox else None, "t", {}),
                                     [NewTask(T, {"name": name})])  # fmt: skip
    return tasks[0].id


def test_chunk_folders_go_when_their_job_ends_in_any_state(store: Store, tmp_path: Path) -> None:
    settings = load_settings({"home": tmp_path / "home"}, env={})
    ids = {name: add_job(store, name) for name in ("ok", "bad", "gone")}
    started = threading.Event()

    def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        assert ctx.work_dir is not None
        (ctx.work_dir).mkdir(parents=True, exist_ok=True)
        (ctx.work_dir / "chunk_0000.ogg").write_bytes(b"opus")
        if payload["name"] == "bad":
            raise PermanentError("not media")
        if payload["name"] == "gone":
            started.set()
            if not ctx.cancelled.wait(60):
                raise AssertionError("the cancel never reached the handler")
            raise RetryableError("stopped: cancelled")
        return {}

    pool = Pool(store, Registry({T: handler}), PoolConfig(slots=3, lease_seconds=0.6, settings=settings))
    thread = threading.Thread(target=pool.run, kwargs={"drain": True}, daemon=True)
    thread.start()
    assert started.wait(60)
    assert store.cancel(ids["gone"])
    thread.join(60)
    assert not thread.is_alive()
    states = {name: store.get(i).state for name, i in ids.items()}  # type: ignore[union-attr]
    assert states == {"ok": TaskState.SUCCEEDED, "bad": TaskState.FAILED, "gone": TaskState.CANCELLED}
    assert sorted(p.name for p in settings.tmp_dir.iterdir()) == []


KILLED_WRITER = """
import os, sys, time
from traxd import outputs
def stuck(fd):  # the writer has written its temp file and is about to fsync it
    print("ready", flush=True)
    time.sleep(3600)
os.fsync = stuck
outputs.write_text_atomic(sys.argv[1], "half a transcript")
"""


def start_writer(target: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_start_up_sweep_removes_dead_leftovers_and_keeps_live_ones(store: Store, tmp_path: Path) -> None:
    settings = load_settings({"home": tmp_path / "home"}, env={})
    outbox, elsewhere = tmp_path / "out", tmp_path / "batch-out"
    done_id, live_id, cut_id = add_job(store, "done"), add_job(store, "live"), add_job(store, "cut", elsewhere)
    store.cancel(done_id)
    store.claim("host:1:1.0", 1, 30.0, [T])  # "live" is running (its chunks are in use)
    cut = store.claim("host:1:1.0", 1, 30.0, [T])[0]  # "cut" was running in a `trax batch` that was killed
    assert cut.id == cut_id
    for task_id in (done_id, live_id, cut_id):
        job = store.get(task_id).job_id  # type: ignore[union-attr]
        (settings.tmp_dir / f"job-{job}").mkdir(parents=True)
    (settings.tmp_dir / "job-999").mkdir()  # a job the database no longer knows
    killed = [start_writer(outbox / "talk.json"), start_writer(elsewhere / "cut.srt")]
    for proc in killed:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    live = start_writer(outbox / "other.txt")
    try:
        temps = sorted(p.name for p in [*outbox.iterdir(), *elsewhere.iterdir()])
        assert len(temps) == 3 and all(n.endswith(".tmp") for n in temps), temps
        old = time.time() - 10  # left a while ago (a sweep never takes a temp file younger than 2 s)
        for p in [*outbox.iterdir(), *elsewhere.iterdir()]:
            os.utime(p, (old, old))
        sweep_at_start(store, settings.tmp_dir, [outbox])
        assert [p.name for p in outbox.iterdir()] == [next(n for n in temps if n.startswith(".other.txt."))]
        assert list(elsewhere.iterdir()) == []
        live_job = store.get(live_id).job_id  # type: ignore[union-attr]
        cut_job = store.get(cut_id).job_id  # type: ignore[union-attr]
        assert sorted(p.name for p in settings.tmp_dir.iterdir()) == sorted([f"job-{live_job}", f"job-{cut_job}"])
    finally:
        live.kill()
        live.wait()


def test_traxctl_cancel_of_a_queued_task_removes_its_chunks(tmp_path: Path, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from traxd.cli.traxctl_cmd import app
    from traxd.database import open_store

    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    settings = load_settings()
    store = open_store(settings)
    task_id = add_job(store, "talk")
    job_id = store.get(task_id).job_id  # type: ignore[union-attr]
    (settings.tmp_dir / f"job-{job_id}").mkdir(parents=True)  # its PREPROCESS ran, the TRANSCRIBE waits
    result = CliRunner().invoke(app, ["cancel", str(task_id)])
    assert result.exit_code == 0, result.output
    assert not (settings.tmp_dir / f"job-{job_id}").exists()
    store.engine.dispose()
