"""The whole pipeline on a real SQLite queue: media -> PREPROCESS -> TRANSCRIBE -> outputs; bad inputs; kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import media
from tests.fakes.openai_server import FakeOpenAI
from traxd.config import Settings, load_settings
from traxd.daemon.pool import Pool, PoolConfig
from traxd.database import open_store
from traxd.errors import classify
from traxd.handlers import default_registry
from traxd.handlers.preprocess import preprocess
from traxd.handlers.registry import TaskContext
from traxd.queue.store import Store
from traxd.types import ErrorKind, Job, NewJob, NewTask, Task, TaskState, TaskType

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(transcribe=media.media_transcription) as fake:
        yield fake


def make_settings(home: Path, server: FakeOpenAI, **extra: object) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    return load_settings({"home": home, "openai_api_key": "sk-test", "openai_base_url": server.base_url, **extra}, env={})


def add_file(store: Store, path: Path, outbox: Path, options: dict | None = None) -> Job:
    """Queue a media file the way ingestion does."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "0" * 64
    first = NewTask(TaskType.PREPROCESS, {"path": str(path), "sha256": digest}, dedupe_key=f"file:{digest}:{outbox}:{path.name}")
    job, _, _ = store.create_job(NewJob(str(path), path.stem, str(outbox), "test", options or {}), [first])
    return job


def drain(store: Store, settings: Settings) -> None:
    pool = Pool(store, default_registry(settings), PoolConfig(slots=4, lease_seconds=30.0, settings=settings))
    pool.run(drain=True)


def by_type(store: Store, job: Job) -> dict[TaskType, Task]:
    return {t.type: t for t in store.tasks_of_job(job.id)}


def test_media_files_become_transcripts(tmp_path: Path, server: FakeOpenAI) -> None:
    settings = make_settings(tmp_path / "home", server, chunk_size=5.0)
    store, outbox = open_store(settings), tmp_path / "out"
    long_job = add_file(store, media.tones_with_gaps(tmp_path / "lecture.mp3", [4.0, 4.0, 4.0, 3.0], 0.5), outbox)
    clip_job = add_file(store, media.video(tmp_path / "clip.mp4", 2.0, audio=True), outbox)
    drain(store, settings)
    for job in (long_job, clip_job):
        tasks = by_type(store, job)
        assert {t: s.state for t, s in tasks.items()} == {TaskType.PREPROCESS: TaskState.SUCCEEDED, TaskType.TRANSCRIBE: TaskState.SUCCEEDED}
        assert tasks[TaskType.PREPROCESS].attempts == 1
    doc = json.loads((outbox / "lecture.json").read_text())
    assert len(doc["chunks"]) >= 3 and doc["duration"] == pytest.approx(16.5, abs=0.2)
    ends = [s["end"] for s in doc["segments"]]
    assert ends == sorted(ends) and ends[-1] == pytest.approx(16.5, abs=0.2)
    assert sorted(p.name for p in outbox.iterdir()) == sorted(f"{n}.{e}" for n in ("clip", "lecture") for e in ("json", "srt", "txt", "vtt"))
    assert not any((settings.tmp_dir).glob("job-*/*.ogg"))


def test_bad_inputs_fail_with_a_reason_and_leave_no_output(tmp_path: Path, server: FakeOpenAI) -> None:
    settings = make_settings(tmp_path / "home", server)
    store, outbox, inbox = open_store(settings), tmp_path / "out", tmp_path / "in"
    inbox.mkdir()
    (inbox / "empty.mp3").write_bytes(b"")
    (inbox / "readme.mp3").write_text("not audio at all\n" * 40)
    whole = media.tone(inbox / "whole.wav", 3.0).read_bytes()
    (inbox / "whole.wav").unlink()
    (inbox / "cut.wav").write_bytes(whole[: len(whole) // 2])
    media.video(inbox / "mute.mp4", 1.0, audio=False)
    media.tone(inbox / "vanished.wav", 1.0)
    expected = {"empty.mp3": "empty file", "readme.mp3": "not a media file", "cut.wav": "truncated WAV",
                "mute.mp4": "video without an audio track", "vanished.wav": "file not found"}  # fmt: skip
    jobs = {name: add_file(store, inbox / name, outbox) for name in expected}
    (inbox / "vanished.wav").unlink()  # deleted after it was queued
    drain(store, settings)
    for name, reason in expected.items():
        tasks = by_type(store, jobs[name])
        assert list(tasks) == [TaskType.PREPROCESS], name
        task = tasks[TaskType.PREPROCESS]
        assert task.state is TaskState.FAILED and task.error_kind == ErrorKind.PERMANENT.value, name
        assert reason in (task.error_message or "") and "Traceback" not in (task.error_message or ""), name
        assert task.attempts == 1
    assert not outbox.exists() or not any(outbox.iterdir())
    assert server.calls() == []


def test_unreadable_file_fails_with_permission_denied(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="trax-perm-"))
    try:
        folder.chmod(0o755)
        locked = media.tone(folder / "locked.wav", 1.0)
        locked.chmod(0)
        work = folder / "work"
        work.mkdir(mode=0o777)
        work.chmod(0o777)
        unprivileged = os.geteuid() == 0
        kind, message = _preprocess_as_unprivileged(locked, work) if unprivileged else _preprocess_here(locked, work)
        assert kind == ErrorKind.PERMANENT.value and "permission denied" in message
    finally:
        locked.chmod(0o644)
        shutil.rmtree(folder)


def _context(work: Path) -> TaskContext:
    task = Task(1, TaskType.PREPROCESS, {}, TaskState.RUNNING, 6, 1, 3, 0.0, "me", None, None, None, [], None, None,
                None, 0.0, 0.0, None, None)  # fmt: skip
    return TaskContext(task, work_dir=work)


def _preprocess_here(path: Path, work: Path) -> tuple[str, str]:
    try:
        preprocess(_context(work), {"path": str(path)})
    except Exception as exc:  # noqa: BLE001 - the test reports the classification like the runner does
        failure = classify(exc)
        return failure.kind.value, failure.message
    return "succeeded", ""


def _preprocess_as_unprivileged(path: Path, work: Path) -> tuple[str, str]:
    """Root reads anything despite mode 0000, so run the handler in a forked child as `nobody`."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, report, exit without cleanup
        os.close(read_end)
        os.setgid(65534)
        os.setuid(65534)
        kind, message = _preprocess_here(path, work)
        os.write(write_end, json.dumps([kind, message]).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    kind, message = json.loads(data)
    return kind, message


def test_kill_9_mid_transcription_resumes_at_the_right_chunk(tmp_path: Path) -> None:
    home, outbox = tmp_path / "home", tmp_path / "out"
    with FakeOpenAI(latency=0.4, transcribe=media.media_transcription) as server:
        settings = make_settings(home, server, chunk_size=3.0)
        store = open_store(settings)
        job = add_file(store, media.tones_with_gaps(tmp_path / "long.mp3", [2.5] * 8, 0.4), outbox)  # 23.2 s, 8 chunks
        child = _start_child(home, server)
        _wait_for(lambda: len(server.calls("/audio/transcriptions")) >= 3, child)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        sent_before = len(server.calls())
        assert not (outbox / "long.json").exists()
        second = _start_child(home, server)
        assert second.wait(timeout=240) == 0, second.stdout.read() if second.stdout else ""
        calls = server.calls("/audio/transcriptions")
    tasks = by_type(store, job)
    assert tasks[TaskType.PREPROCESS].attempts == 1  # the finished stage was not run again
    assert tasks[TaskType.TRANSCRIBE].state is TaskState.SUCCEEDED and tasks[TaskType.TRANSCRIBE].attempts == 2
    doc = json.loads((outbox / "long.json").read_text())
    sends = Counter(c.file_bytes for c in calls)
    assert len(sends) == len(doc["chunks"]) >= 7
    assert sum(n - 1 for n in sends.values()) <= 1  # only the chunk in flight at the kill may be sent twice
    assert len(calls) - sent_before <= len(doc["chunks"]) - (sent_before - 1)


def _start_child(home: Path, server: FakeOpenAI) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.fakes.pool_child", str(home), server.base_url, "3.0"]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(condition: object, child: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert child.poll() is None, f"worker exited early: {child.stdout.read() if child.stdout else ''}"
        assert time.monotonic() < deadline, "worker made no progress"
        time.sleep(0.05)

