"""`trax batch` as a real process: plain progress lines, SIGINT then re-run, and a daemon running alongside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import batch_handlers

ROOT = Path(__file__).resolve().parent.parent
TRAX = Path(sys.executable).parent / "trax"

DAEMON = """
import signal, sys
from traxd.database import open_store
from traxd.config import load_settings
from traxd.daemon.pool import Pool, PoolConfig
from traxd.handlers import load_registry
settings = load_settings()
store = open_store(settings)
pool = Pool(store, load_registry(settings), PoolConfig(slots=2, idle_seconds=0.05, settings=settings))
signal.signal(signal.SIGTERM, lambda *a: pool.request_stop())
pool.run()
"""


def wait_for(cond: Callable[[], bool], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRAX_", "DEEPSEEK_", "OPENAI_"))}
    return {**base, "TRAX_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT),
            "TRAX_TEST_HANDLERS": "tests.batch_handlers:registry",
            batch_handlers.SIDE_EFFECTS_ENV: str(tmp_path / "effects.jsonl")}  # fmt: skip


def media(folder: Path, count: int, prefix: str = "f") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}{i:02d}.mp3").write_bytes(f"{prefix}{i}".encode() * 64)
    return folder


def runs(env: dict[str, str]) -> Counter[str]:
    return Counter(Path(x["source"]).name for x in batch_handlers.read_side_effects(Path(env[batch_handlers.SIDE_EFFECTS_ENV])))


def trax(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRAX), "batch", *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


def test_real_process_plain_progress_and_exit_codes(tmp_path: Path, env: dict[str, str]) -> None:
    folder = media(tmp_path / "in", 3)
    (folder / "bad.mp3").write_bytes(b"not media")
    done = trax(env, str(folder), "--progress-interval", "0.05")
    assert done.returncode == 1, done.stderr
    assert "Progress: 3/4 (75.0% success) | Active: 0 | Failed: 1 | Memory: " in done.stderr
    assert f"FAILED {folder / 'bad.mp3'} (preprocess): bad.mp3 is not a media file" in done.stdout
    assert trax(env, str(tmp_path / "nope")).returncode == 2


def test_sigint_then_rerun_runs_every_file_exactly_once(tmp_path: Path, env: dict[str, str]) -> None:
    folder = media(tmp_path / "in", 12)
    slow = {**env, batch_handlers.DELAY_ENV: "0.4"}
    proc = subprocess.Popen([str(TRAX), "batch", str(folder), "--workers", "2", "--progress-interval", "0.2"],
                            env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: sum(runs(env).values()) >= 3)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopping: running tasks finish" in err
    first = runs(env)
    assert 3 <= sum(first.values()) < 12 and set(first.values()) == {1}
    report = json.loads(max((folder / "transcripts").glob("trax-batch-*.json")).read_text())
    assert report["interrupted"] and report["pending"] == 12 - sum(first.values())

    again = trax(env, str(folder))
    assert again.returncode == 0, again.stderr
    assert runs(env) == {f"f{i:02d}.mp3": 1 for i in range(12)}  # finished files were not run again
    assert "already queued or done" in again.stderr


def test_second_sigint_releases_in_flight_tasks_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    folder = media(tmp_path / "in", 6)
    # Handlers would take 60 s and the grace period is 10 minutes: only a second Ctrl-C ends this quickly.
    slow = {**env, batch_handlers.DELAY_ENV: "60", "TRAX_GRACE_SECONDS": "600"}
    errfile = tmp_path / "stderr.txt"
    with open(errfile, "w") as err_fh:
        proc = subprocess.Popen([str(TRAX), "batch", str(folder), "--workers", "2"], env=slow,
                                stdout=subprocess.DEVNULL, stderr=err_fh, text=True)  # fmt: skip
        wait_for(lambda: sum(runs(env).values()) >= 2)
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping: running tasks finish" in errfile.read_text())  # the first one was seen
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    assert proc.returncode == 130, errfile.read_text()
    in_flight = runs(env)
    report = json.loads(max((folder / "transcripts").glob("trax-batch-*.json")).read_text())
    assert report["interrupted"] and report["succeeded"] == 0 and report["pending"] == 6  # released, not finished
    again = trax(env, str(folder))
    assert again.returncode == 0, again.stderr
    after = runs(env)
    assert set(after) == {f"f{i:02d}.mp3" for i in range(6)}
    assert {name for name, n in after.items() if n == 2} == set(in_flight)  # only those in flight ran twice


@pytest.fixture
def daemon(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    (tmp_path / "home").mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", DAEMON], env={**env, batch_handlers.DELAY_ENV: "0.05"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)


def test_runs_alongside_a_daemon_through_leases(tmp_path: Path, env: dict[str, str], daemon: subprocess.Popen[str]) -> None:
    from traxd.config import load_settings
    from traxd.database import open_store

    store = open_store(load_settings({"home": tmp_path / "home"}, env={}))
    wait_for(lambda: any(w.pid == daemon.pid for w in store.workers()))
    folder = media(tmp_path / "in", 20)
    done = trax({**env, batch_handlers.DELAY_ENV: "0.05"}, str(folder), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert f"another Trax worker ({next(w.owner for w in store.workers() if w.pid == daemon.pid)})" in done.stderr
    assert runs(env) == {f"f{i:02d}.mp3": 1 for i in range(20)}
    pids = {x["pid"] for x in batch_handlers.read_side_effects(Path(env[batch_handlers.SIDE_EFFECTS_ENV]))}
    assert daemon.pid in pids or len(pids) == 1  # the daemon usually takes a share; never a duplicate
    store.engine.dispose()
