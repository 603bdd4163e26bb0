"""`traxctl add --at/--not-before/--after` through typer, what status and list say about a waiting job, and a real
`traxd run --drain` that keeps a job's time and its dependency order."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.daemon_helpers import REPO, home_env
from tests.entry_points import clean_home, media
from traxd.cli.traxctl_cmd import app
from traxd.config import load_settings
from traxd.dashboard import data
from traxd.database import open_store
from traxd.queue.store import Store

runner = CliRunner()


def run(code: int, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_add_at_and_after_are_shown_waiting_and_bad_ids_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    clean_home(tmp_path, monkeypatch)
    out = tmp_path / "out"
    first = run(0, "add", str(media(tmp_path / "in", "a.mp3")), "--outbox", str(out), "--at", "2099-01-02T03:04")
    assert "(job 1, scheduled for 2099-01-02 03:04)" in first
    second = run(0, "add", str(media(tmp_path / "in", "b.mp3")), "--outbox", str(out), "--after", "1")
    assert "(job 2, waiting for job 1)" in second
    status = run(0, "status")
    assert "#1 a: scheduled for 2099-01-02 03:04" in status and "#2 b: waiting for job 1 (queued)" in status
    reasons = {j["job_id"]: j["reason"] for j in json.loads(run(0, "status", "--json"))["waiting_jobs"]}
    assert reasons == {1: "scheduled for 2099-01-02 03:04", 2: "waiting for job 1 (queued)"}
    store = open_store(load_settings())
    try:  # the dashboard's jobs table and job page say the same
        with store.reading() as reader:
            page = {j["id"]: j["waiting"] for j in data.jobs(reader, None, None, None, None)["jobs"]}
            second_job = data.job(reader, 2)
    finally:
        store.engine.dispose()
    assert page == reasons and second_job is not None and second_job["waiting"] == reasons[2]
    assert "#1 cancelled" in run(0, "cancel", "1")
    rows = {r["job_id"]: r["waiting"] for r in json.loads(run(0, "list", "--json"))}
    assert rows == {1: None, 2: "waiting for job 1 (cancelled)"}
    assert "waiting" in run(0, "list")  # the table column (its cell wraps at the runner's width)
    c = str(media(tmp_path / "in", "c.mp3"))
    assert "--after 7: no job #7" in run(2, "add", c, "--outbox", str(out), "--after", "7")
    assert "--at 'soon'" in run(2, "add", c, "--outbox", str(out), "--at", "soon")
    assert "not both" in run(2, "add", c, "--outbox", str(out), "--at", "02:00", "--not-before", "2099-01-01")
    store = open_store(load_settings())
    try:
        assert [t.job_id for t in store.list_tasks()] == [2, 1]  # nothing written by the refused adds
    finally:
        store.engine.dispose()


def test_a_real_daemon_waits_for_the_time_and_runs_in_dependency_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    home = clean_home(tmp_path, monkeypatch)
    out = str(tmp_path / "out")
    at = dt.datetime.now().replace(microsecond=0) + dt.timedelta(seconds=5)  # room for the adds and a start under load
    run(0, "add", str(media(tmp_path / "in", "late.mp3")), "--outbox", out, "--not-before", at.isoformat())
    run(0, "add", str(media(tmp_path / "in", "next.mp3")), "--outbox", out, "--after", "1")
    run(0, "add", str(media(tmp_path / "in", "free.mp3")), "--outbox", out)
    done = subprocess.run([sys.executable, "-m", "traxd.cli.traxd_cmd", "run", "--drain"], cwd=REPO, timeout=60,
                          env=home_env(home, "noop", TRAX_WORKERS="2"), capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout.decode()[-2000:]
    store = Store(open_store(load_settings()).engine)
    try:
        tasks = {j: store.tasks_of_job(j) for j in (1, 2, 3)}
    finally:
        store.engine.dispose()
    assert all(t.state.value == "succeeded" for ts in tasks.values() for t in ts)
    late, after_late, free = (min(t.started_at or 0 for t in tasks[j]) for j in (1, 2, 3))
    assert late >= at.timestamp()  # the daemon started it no earlier than its time
    assert free < late  # the free job did not wait for it (an order, not a time: the machine may be loaded)
    assert after_late >= max(t.finished_at or 0 for t in tasks[1])  # its dependant only once it had succeeded
