"""traxctl and traxd through typer's CliRunner: every command, and one-line errors with the right exit codes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.daemon_helpers import forget_environment
from traxd.cli import traxd_cmd
from traxd.cli.traxctl_cmd import app
from traxd.config import load_settings
from traxd.daemon import folders as folders_mod
from traxd.database import open_store
from traxd.queue.store import Store
from traxd.types import ControlState, TaskState

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    forget_environment(monkeypatch)
    home = tmp_path / "home"
    monkeypatch.setenv("TRAX_HOME", str(home))
    return home


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    s = open_store(load_settings())
    yield s
    s.engine.dispose()


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def err(code: int, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def media(folder: Path, name: str, content: bytes = b"audio") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("args", [[], ["status"], ["pause"], ["resume"], ["stop"], ["add"], ["list"], ["show"],
                                  ["retry"], ["cancel"], ["watch"], ["watch", "add"], ["watch", "remove"],
                                  ["watch", "list"], ["doctor"], ["service"], ["service", "install"],
                                  ["service", "uninstall"], ["service", "status"]])  # fmt: skip
def test_help_everywhere(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_traxd_help() -> None:
    result = runner.invoke(traxd_cmd.app, ["run", "--help"])
    assert result.exit_code == 0 and "--drain" in result.output and "--workers" in result.output


def test_status_with_no_daemon(home: Path) -> None:
    out = ok("status")
    assert out.startswith("Progress: 0/0 (0.0% success) | Active: 0 | Failed: 0")
    assert "No daemon is running" in out
    data = json.loads(ok("status", "--json"))
    for key in ("state", "total", "queued", "running", "succeeded", "failed", "active_workers", "memory_mb",
                "cpu_percent", "eta_seconds", "paused_reason"):  # fmt: skip
        assert key in data
    assert data["state"] == "stopped"


def test_status_shows_pauses_stale_heartbeats_and_follows(home: Path, store: Store) -> None:
    from traxd.types import WorkerInfo

    now = store.clock.now()
    store.heartbeat(WorkerInfo("otherhost:1:1.00", "otherhost", 1, now - 500, now - 400, 0, 50.0, 1.0, 8))
    store.set_control("transcribe", ControlState.PAUSED, "OpenAI refused the key (401): set OPENAI_API_KEY")
    out = ok("status")
    assert "[STALE]" in out and "Paused transcribe tasks: OpenAI refused the key" in out
    data = json.loads(ok("status", "--json"))
    assert data["paused_types"] == {"transcribe": "OpenAI refused the key (401): set OPENAI_API_KEY"}
    assert data["daemons"][0]["stale"] is True
    follow = ok("status", "--follow", "--interval", "0.1", "--count", "2")
    assert follow.count("Progress:") == 2


def test_pause_resume_stop_write_controls(home: Path, store: Store) -> None:
    assert "paused" in ok("pause", "--reason", "lunch")
    assert store.controls()["*"].state is ControlState.PAUSED and store.controls()["*"].reason == "lunch"
    assert json.loads(ok("status", "--json"))["paused_reason"] == "lunch"
    store.set_control("enhance", ControlState.PAUSED, "402")
    ok("resume")
    assert store.controls()["*"].state is ControlState.RUNNING and "enhance" not in store.controls()
    assert "no daemon" in ok("stop")
    assert store.controls()["*"].state is ControlState.STOPPING
    ok("stop", "--now")
    assert store.controls()["*"].reason == "now"


def test_add_files_folders_urls_and_duplicates(home: Path, tmp_path: Path, store: Store) -> None:
    a = media(tmp_path / "in", "a.mp3")
    media(tmp_path / "in" / "sub", "b.m4a", b"other")
    out = ok("add", str(a), "--priority", "2", "--enhance")
    assert "#1 queued preprocess" in out
    task = store.get(1)
    assert task is not None and task.priority == 2
    job = store.get_job(task.job_id or 0)
    assert job is not None and job.options["enhance"] is True and job.output_dir == str(home / "outbox")
    out = err(1, "add", str(tmp_path / "in"), "https://www.youtube.com/watch?v=x", "file:///etc/passwd")
    assert "already queued (queued)" in out and "youtube" in out and "only http and https" in out
    assert "1 of 4 input(s) not queued" in out
    assert store.counts()["queued"] == 3 and store.counts()["failed"] == 1


def test_add_word_timestamps_is_a_job_option(home: Path, tmp_path: Path, store: Store) -> None:
    ok("add", str(media(tmp_path / "in", "a.mp3")), "--word-timestamps")
    ok("add", str(media(tmp_path / "in2", "b.mp3", b"other")))
    jobs = [store.get_job(store.get(i).job_id or 0) for i in (1, 2)]  # type: ignore[union-attr]
    # Not given: the setting when the job is queued (traxd.joboptions), here the default.
    assert [j.options["word_timestamps"] for j in jobs if j is not None] == [True, False]


def test_add_errors(home: Path, tmp_path: Path, store: Store) -> None:
    assert "no such file or folder" in err(2, "add", str(tmp_path / "missing.mp3"))
    link = tmp_path / "link.mp3"
    link.symlink_to(media(tmp_path, "real.mp3"))
    assert f"{link} is not an input: symlink (add the file it points to)" in err(2, "add", str(link))
    err(2, "add")
    err(2, "add", str(tmp_path / "real.mp3"), "--priority", "-1")
    assert store.counts()["queued"] == 0


def test_list_show_retry_cancel(home: Path, tmp_path: Path, store: Store) -> None:
    out = err(1, "add", str(media(tmp_path, "a.mp3")), str(media(tmp_path, "b.mp3", b"b")), "ftp://x.org/c.mp3")
    assert "#3 not queued: rejected ftp://x.org/c.mp3" in out and "#1 queued" in out and "#2 queued" in out
    assert "#3 already failed: rejected" in err(1, "add", "ftp://x.org/c.mp3")
    listing = ok("list")
    assert "preprocess" in listing and "failed" in listing
    rows = json.loads(ok("list", "--state", "failed", "--json"))
    assert [r["id"] for r in rows] == [3] and rows[0]["source"] == "ftp://x.org/c.mp3"
    err(2, "list", "--state", "bogus")
    shown = json.loads(ok("show", "1", "--json"))
    assert shown["payload"]["path"] == str(tmp_path / "a.mp3") and shown["state"] == "queued"
    assert "error_message: rejected ftp://" in ok("show", "3")
    assert "#2 cancelled" in ok("cancel", "2")
    assert "is cancelled: only queued or running" in err(1, "cancel", "2")
    assert "#2 queued again" in ok("retry", "2")
    assert "1 failed task(s)" in ok("retry", "--failed")
    assert store.get(3).state is TaskState.QUEUED  # type: ignore[union-attr]
    assert "is queued: only failed or cancelled" in err(1, "retry", "1")
    for cmd in (["show", "99"], ["retry", "99"], ["cancel", "99"]):
        assert "no task #99" in err(1, *cmd)
    err(2, "show", "abc")
    err(2, "retry")
    err(2, "retry", "1", "--failed")


def test_watch_add_list_remove_and_errors(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "podcasts"
    inbox.mkdir()
    config = home / "config.toml"
    home.mkdir()
    config.write_text("# my settings\nworkers = 3\n")
    out = ok("watch", "add", str(inbox), "--outbox", str(tmp_path / "transcripts"))
    assert f"watching {inbox} -> {tmp_path / 'transcripts'}" in out
    text = config.read_text()
    assert "# my settings" in text and "workers = 3" in text and str(inbox) in text
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    settings = load_settings()
    assert [w.inbox for w in settings.watch] == [home / "inbox", inbox]
    assert str(inbox) in ok("watch", "list")
    assert "already watched" in err(1, "watch", "add", str(inbox))
    assert "does not exist" in err(2, "watch", "add", str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    assert "not a folder" in err(2, "watch", "add", str(tmp_path / "file"))
    inner = tmp_path / "transcripts" / "in"
    inner.mkdir(parents=True)
    assert "overlaps" in err(2, "watch", "add", str(inner))
    nested = tmp_path / "n"
    nested.mkdir()
    assert "overlap" in err(2, "watch", "add", str(nested), "--outbox", str(nested / "out"))
    monkeypatch.setattr(folders_mod, "fs_type", lambda _p: "nfs4")
    assert "network filesystem (nfs4)" in err(2, "watch", "add", str(nested))
    monkeypatch.undo()
    monkeypatch.setenv("TRAX_HOME", str(home))
    words = tmp_path / "lectures"
    words.mkdir()
    ok("watch", "add", str(words), "--outbox", str(tmp_path / "lecture-notes"), "--word-timestamps")
    assert [w.word_timestamps for w in load_settings().watch] == [None, None, True]
    assert "no longer watching" in ok("watch", "remove", str(inbox))
    assert [w.word_timestamps for w in load_settings().watch] == [None, True]  # kept when config.toml is rewritten
    ok("watch", "remove", str(words))
    assert "is not watched" in err(1, "watch", "remove", str(inbox))
    assert [w.inbox for w in load_settings().watch] == [home / "inbox"]


def test_watch_add_creates_a_missing_home(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "not" / "yet"
    monkeypatch.setenv("TRAX_HOME", str(home))
    inbox = tmp_path / "in"
    inbox.mkdir()
    assert f"watching {inbox}" in ok("watch", "add", str(inbox))
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    assert [w.inbox for w in load_settings().watch] == [home / "inbox", inbox]
    assert not list(home.glob(".config.toml.*.tmp"))


def test_unreadable_inbox_is_refused(home: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read every folder")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    assert "not readable" in err(2, "watch", "add", str(locked))


def test_config_typo_and_wrong_type_are_one_line_usage_errors(home: Path) -> None:
    home.mkdir()
    (home / "config.toml").write_text("wrokers = 3\n")
    out = err(2, "status")
    assert "unknown key 'wrokers'" in out and "did you mean 'workers'" in out and len(out.strip().splitlines()) == 1
    (home / "config.toml").write_text('workers = "many"\n')
    assert "must be int" in err(2, "list")
    result = runner.invoke(traxd_cmd.app, ["run"])
    assert result.exit_code == 2 and "must be int" in result.output


def test_doctor_reports_without_printing_keys(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-doctor-secret-123456")
    monkeypatch.setenv("TRAX_TRANSCRIBE_MODEL", "gpt-transcribe")
    result = runner.invoke(app, ["doctor"])
    assert "sk-doctor-secret" not in result.output
    assert "OpenAI key: set" in result.output and "ffmpeg" in result.output and "database" in result.output
    assert "backend: openai" in result.output
    assert result.exit_code == 0, result.output


def test_doctor_fails_on_a_world_readable_config_with_keys(home: Path, store: Store) -> None:
    config = home / "config.toml"
    config.write_text('openai_api_key = "sk-in-config-1234567"\n')
    config.chmod(0o644)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1 and "config mode" in result.output and "sk-in-config" not in result.output
