"""`traxctl status` tells the truth: jobs not tasks, the current work not the whole history, leases as busy slots.

Each test reproduces one misleading report of issue 14 on a real database (SQLite, and PostgreSQL when given).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.daemon_helpers import forget_environment
from traxd.cli.traxctl_cmd import app
from traxd.clock import FakeClock
from traxd.costs import Cost
from traxd.daemon.owner import Owner
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.errors import UsageError
from traxd.jobviews import JobView, predicted_seconds
from traxd.queue.store import Store
from traxd.typedtime import parse_moment as parse_since
from traxd.types import NewJob, NewTask, Task, TaskState, TaskType, WorkerInfo

runner = CliRunner()
P, T = TaskType.PREPROCESS, TaskType.TRANSCRIBE
CONTRACT = ("state", "total", "queued", "running", "succeeded", "failed", "active_workers", "memory_mb",
            "cpu_percent", "eta_seconds", "paused_reason")  # fmt: skip


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store on the test's database whose clock starts an hour ago; traxctl reads the same database."""
    forget_environment(monkeypatch)
    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRAX_DATABASE_URL", db_url)
    (tmp_path / "home").mkdir()
    engine = open_engine(db_url)
    upgrade(engine)
    yield Store(engine, FakeClock(time.time() - 3600))
    engine.dispose()


def status(*args: str) -> dict:
    result = runner.invoke(app, ["status", "--json", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert all(k in data for k in CONTRACT)
    return data


def text(*args: str) -> str:
    result = runner.invoke(app, ["status", *args])
    assert result.exit_code == 0, result.output
    return result.output


def add(store: Store, name: str, first: TaskType = P) -> Task:
    _, (task,), _ = store.create_job(NewJob(f"/in/{name}", name), [NewTask(first, {"path": name}, dedupe_key=name)])
    return task


def run_one(store: Store, owner: str = "other:1:1.00", seconds: float = 1.0, duration: float | None = None) -> Task:
    """Claim the next task, let `seconds` pass, complete it (with a media duration when given)."""
    (task,) = store.claim(owner, 1, 600)
    store.clock.advance(seconds)  # type: ignore[attr-defined]
    assert store.complete(task.lease, {"duration": duration} if duration else {})
    return task


def live_daemon(store: Store, slots: int = 8, active: int = 0) -> str:
    """A fresh heartbeat of a process that exists (this one), claiming `active` busy slots in its row."""
    owner = str(Owner.current())
    now = time.time()
    store.heartbeat(WorkerInfo(owner, Owner.current().host, os.getpid(), now - 60, now, active, 100.0, 5.0, slots))
    return owner


def test_old_history_is_not_the_current_work(env: Store) -> None:
    for name in ("old1", "old2"):
        add(env, name)
        run_one(env)
    env.create_failed_job(NewJob("ftp://x/old3", "old3"), NewTask(P, {}, dedupe_key="old3"), "rejected")
    env.clock.advance(600)  # type: ignore[attr-defined]  # the queue sat idle
    add(env, "new1")
    add(env, "new2")
    env.claim("other:1:1.00", 1, 600)
    data = status()
    assert (data["total"], data["running"], data["queued"], data["succeeded"], data["failed"]) == (2, 1, 1, 0, 0)
    assert data["unit"] == "jobs" and data["scope"] == "current"
    assert status("--all")["total"] == 5 and status("--all")["succeeded"] == 2
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(env.clock.now() - 5))
    assert status("--since", since)["total"] == 2
    assert status("--since", "2h")["total"] == 5


def test_a_job_is_counted_once_whatever_its_tasks(env: Store) -> None:
    """Two tasks of one job (preprocess done, transcribe queued) are one queued job, not 1 done + 1 queued."""
    add(env, "a.wav")
    (task,) = env.claim("other:1:1.00", 1, 600)
    assert env.complete(task.lease, {"duration": 30.0}, [NewTask(T, {"path": "a.wav"})])
    data = status()
    assert (data["total"], data["queued"], data["succeeded"]) == (1, 1, 0)


def test_an_idle_queue_shows_its_last_run_and_cancelled_jobs_do_not_pull_success_down(env: Store) -> None:
    add(env, "older")
    run_one(env)
    env.clock.advance(600)  # type: ignore[attr-defined]
    for name in ("a", "b"):
        add(env, name)
        run_one(env)
    cancelled = add(env, "c")
    assert env.cancel(cancelled.id)
    data = status()
    assert (data["total"], data["succeeded"], data["cancelled"], data["success_rate"]) == (3, 2, 1, 100.0)
    assert text().startswith("Progress: 2/2 (100.0% success)")


def test_daemon_busy_slots_are_the_leases_it_holds(env: Store) -> None:
    owner = live_daemon(env, slots=8, active=0)  # its heartbeat row lags behind
    add(env, "x.wav")
    add(env, "y.wav")
    env.claim(owner, 1, 600)
    env.claim("gone:9:9.00", 1, 600)  # a lease of no live daemon
    data = status()
    assert data["running"] == 2 and data["active_workers"] == 2
    assert data["daemons"][0]["active_tasks"] == 1 and data["unowned_running"] == 1
    out = text()
    assert "1/8 busy" in out and "1 task(s) run under no live daemon" in out


def test_running_jobs_show_their_stage(env: Store) -> None:
    owner = live_daemon(env)
    add(env, "talk.mp3")
    (task,) = env.claim(owner, 1, 600)
    assert env.complete(task.lease, {"duration": 12.0}, [NewTask(T, {"path": "talk.mp3"})])
    env.claim(owner, 1, 600)
    data = status()
    assert [(r["name"], r["stage"], r["attempt"]) for r in data["running_jobs"]] == [("talk.mp3", "transcribe", 1)]
    assert "talk.mp3: transcribe (attempt 1" in text()


def test_eta_is_weighted_by_media_duration(env: Store) -> None:
    """One finished job of 100 s media took 2 s: a 100 s job left takes about 2 s, not minutes."""
    live_daemon(env, slots=4)
    add(env, "done.wav")
    run_one(env, seconds=2.0, duration=100.0)
    add(env, "left.wav")
    assert status()["eta_seconds"] == pytest.approx(2.0, abs=0.1)


def test_since_parsing() -> None:
    assert parse_since("2h", 10_000.0) == 10_000.0 - 7200
    assert parse_since("90s", 100.0) == 10.0
    with pytest.raises(UsageError, match="--since 'soon'"):
        parse_since("soon", 0.0)
    result = runner.invoke(app, ["status", "--all", "--since", "1h"])
    assert result.exit_code == 2 and "not both" in result.output


def test_status_loads_neither_alembic_nor_the_orm_nor_sdks(env: Store) -> None:
    add(env, "a.wav")
    code = ("import sys\nfrom traxd.cli.traxctl_cmd import app\n"
            "try:\n    app(['status', '--json'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = [m for m in ('alembic', 'sqlalchemy', 'sqlalchemy.orm', 'traxd.db.models', 'traxd.queue.store', "
            "'openai', 'httpx', 'yt_dlp', 'watchdog', 'structlog') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=os.environ, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"total": 1' in done.stdout
    assert "HEAVY []" in done.stdout


def test_the_entry_point_answers_status_without_typer_rich_pydantic_or_psutil(env: Store) -> None:
    """`traxctl status` (the console script's main) reads and prints before any of the CLI's heavy imports."""
    add(env, "a.wav")
    code = ("import sys\nsys.argv = ['traxctl', 'status', '--json']\nfrom traxd.cli import traxctl_cmd\n"
            "try:\n    traxctl_cmd.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = [m for m in ('typer', 'click', 'pydantic', 'rich', 'psutil', 'platformdirs', 'traxd.cli.traxctl_app', "
            "'alembic', 'sqlalchemy', 'traxd.db.models', 'traxd.queue.store', 'openai', 'httpx', 'structlog') "
            "if m in sys.modules]\nprint('HEAVY', heavy)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=os.environ, timeout=120)
    assert done.returncode == 0, done.stderr
    printed, _, heavy = done.stdout.partition("HEAVY ")
    assert heavy.strip() == "[]"
    assert json.loads(printed) == status()  # the same report as the Typer command's, key for key


def test_other_status_lines_go_to_typer_and_the_fast_path_keeps_its_errors(env: Store) -> None:
    add(env, "a.wav")
    cli = [sys.executable, "-m", "traxd.cli.traxctl_cmd", "status"]
    run = lambda *a: subprocess.run([*cli, *a], check=False, capture_output=True, text=True, env=os.environ, timeout=120)
    helped = run("--help")
    assert helped.returncode == 0 and "--follow" in helped.stdout and "Usage:" in helped.stdout
    typo = run("--jsn")
    assert typo.returncode == 2 and "No such option" in typo.stderr
    too_fast = run("--follow", "--interval", "0")
    assert too_fast.returncode == 2 and "--interval" in too_fast.stderr
    both = run("--all", "--since", "1h")
    assert both.returncode == 2 and both.stderr == "error: give --all or --since, not both\n"
    plain = run()
    assert plain.returncode == 0 and plain.stdout == text(), plain.stderr


def test_follow_on_a_terminal_is_a_live_display(env: Store) -> None:
    add(env, "a.wav")
    leader, follower = pty.openpty()
    cmd = [sys.executable, "-m", "traxd.cli.traxctl_cmd", "status", "--follow", "--interval", "0.1", "--count", "2"]
    proc = subprocess.Popen(cmd, stdout=follower, stderr=follower, env=os.environ | {"COLUMNS": "120"})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    out = b"".join(chunks).decode(errors="replace")
    assert "Transcribing" in out and "ok 0 | failed 0" in out and "current work since" in out


def test_follow_without_a_terminal_prints_the_progress_line(env: Store) -> None:
    out = text("--follow", "--interval", "0.1", "--count", "2")
    assert out.count("Progress: 0/0") == 2 and "Transcribing" not in out


def test_an_old_schema_takes_the_full_path_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database from an older Trax is upgraded by the first status, then read on the light path."""
    from alembic import command
    from traxd import database
    from traxd.db import migrate, readonly

    forget_environment(monkeypatch)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TRAX_HOME", str(home))
    engine = open_engine(f"sqlite:///{home / 'trax.db'}")
    command.upgrade(migrate.alembic_config(engine), "0002")
    engine.dispose()
    assert status()["total"] == 0
    conn, _ = readonly.connect(f"sqlite:///{home / 'trax.db'}")  # type: ignore[misc]
    assert readonly.schema_version(conn) == database.shipped_head()
    conn.close()


def test_queued_jobs_with_a_known_length_get_their_predicted_time() -> None:
    history = [Cost(60.0, 6.0, 300.0), Cost(120.0, 12.0, 400.0)]
    views = [JobView(1, TaskState.QUEUED, (), 0.0, 90.0, 0.0), JobView(2, TaskState.QUEUED, (), 0.0, None, 0.0),
             JobView(3, TaskState.RUNNING, (), 0.0, 90.0, 0.0)]  # fmt: skip
    assert predicted_seconds(views, history) == {1: pytest.approx(9.0)}
    assert predicted_seconds(views, []) == {}


def test_trax_batch_predicts_from_the_same_history(tmp_path: Path) -> None:
    """`trax batch`'s ETA reads this machine's history of finished local runs, as status does (and only locally)."""
    from traxd.batching.run import BatchRun
    from traxd.config import Settings
    from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
    from traxd.daemon.pool_setup import resource_monitor
    from traxd.handlers.registry import Registry

    engine = open_engine(f"sqlite:///{tmp_path / 'trax.db'}")
    upgrade(engine)
    store = Store(engine)
    T = TaskType.TRANSCRIBE
    store.enqueue_many([NewTask(T, {"duration": d}) for d in (60.0, 120.0)])
    readings = iter(range(100, 10_000, 50))
    ran = Pool(store, Registry({T: lambda ctx, p: {"backend": "local", "model": "tiny.en", "duration": p["duration"]}}),
               PoolConfig(slots=1), PoolWiring(memory=lambda: float(next(readings)))).run(drain=True)  # fmt: skip
    assert ran.succeeded == 2 and len(store.cost_history(Owner.current().host, T, "tiny.en")) == 2
    views = [JobView(1, TaskState.QUEUED, (), 0.0, 90.0, 0.0)]
    for backend, predicted in (("local", True), ("openai", False)):
        settings = Settings(home=tmp_path, backend=backend, local_model="tiny.en", openai_api_key="sk-x")
        run = BatchRun(store, Registry({}), settings, "g", slots=1, monitor=resource_monitor(settings))
        assert (1 in run._predicted(views)) is predicted
    store.engine.dispose()
