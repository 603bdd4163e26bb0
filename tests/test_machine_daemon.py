"""Issue 27 with a real `traxd run`: a fake power-supply folder unplugged and plugged in, a strict policy stopping
a local transcription at a chunk boundary (resumed later, no chunk decoded twice), and active hours."""

from __future__ import annotations

import datetime as dt
import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from tests.daemon_helpers import Daemon, home_env, traxctl, wait_until
from tests.fakes import media

WITHIN = 30.0  # the issue: claims resume within 30 s of the power coming back


def power(folder: Path, plugged: bool, percent: int = 42) -> Path:
    """Write a Linux-shaped power-supply folder: the charger's online flag and the battery."""
    for name, files in (("AC", {"online": "1" if plugged else "0"}),
                        ("BAT0", {"status": "Not charging" if plugged else "Discharging", "capacity": str(percent)})):  # fmt: skip
        (folder / name).mkdir(parents=True, exist_ok=True)
        for key, value in files.items():
            (folder / name / key).write_text(value + "\n")
    return folder


def tasks(home: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(home / "trax.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT id, type, state, attempts, run_after, result, errors FROM tasks")]


def states(home: Path) -> list[tuple[str, str]]:
    return sorted((t["type"], t["state"]) for t in tasks(home))


def note(home: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((home / "waiting.json").read_text()))
    except (OSError, ValueError):
        return {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unplugged_claims_nothing_and_plugged_in_resumes_within_30_seconds(tmp_path: Path) -> None:
    home, supply, port = tmp_path / "home", power(tmp_path / "supply", plugged=False), free_port()
    env = home_env(home, "noop", TRAX_RUN_ON="ac", TRAX_POWER_SUPPLY=str(supply))
    daemon = Daemon(home, env, ("--dashboard", "--dashboard-port", str(port))).start()
    try:
        daemon.wait_ready()
        wait_until(lambda: note(home).get("kind") == "power", 10, "the daemon to see the battery")
        media.tone(home / "inbox" / "talk.wav", 0.3)
        wait_until(lambda: states(home) == [("preprocess", "queued")], 10, "the file to be queued")
        time.sleep(1.0)  # several claim rounds
        assert states(home) == [("preprocess", "queued")]
        shown = traxctl(home, "status", env=env).stdout
        assert "Waiting: on battery (42%), policy ac" in shown, shown
        assert json.loads(traxctl(home, "status", "--json", env=env).stdout)["waiting_reason"] == "on battery (42%), policy ac"
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/api/summary", timeout=30).json()["waiting"]["reason"] == "on battery (42%), policy ac"
        assert 'trax_waiting{reason="power"} 1.0' in httpx.get(base + "/metrics", timeout=30).text
        assert "Waiting: on battery (42%)" in httpx.get(base + "/", timeout=30).text
        power(supply, plugged=True, percent=100)  # a full battery on the charger: external power
        plugged = time.monotonic()
        wait_until(lambda: states(home) == [("preprocess", "succeeded")], WITHIN, "the claim")
        assert time.monotonic() - plugged < WITHIN
        assert "Waiting" not in traxctl(home, "status", env=env).stdout
    finally:
        daemon.stop()
    assert not (home / "waiting.json").exists()


def chunks_decoded(marks: Path) -> list[str]:
    return [line.split()[1] for line in marks.read_text().splitlines() if line.startswith("chunk ")] if marks.exists() else []


def test_strict_stops_a_local_transcription_at_a_chunk_and_resumes_it_from_its_checkpoint(tmp_path: Path) -> None:
    home, supply, marks = tmp_path / "home", power(tmp_path / "supply", plugged=True), tmp_path / "marks"
    env = home_env(home, "chunked", TRAX_RUN_ON="ac,strict", TRAX_POWER_SUPPLY=str(supply), TRAX_CHUNK_SIZE="1",
                   TRAX_TEST_SLEEP="0.4", TRAX_TEST_MARKS=str(marks), TRAX_BACKEND="local")  # fmt: skip
    daemon = Daemon(home, env).start()
    try:
        daemon.wait_ready()
        media.tone(home / "inbox" / "long talk.wav", 24.0)
        wait_until(lambda: len(chunks_decoded(marks)) >= 2, 30, "the first chunks")
        power(supply, plugged=False)
        wait_until(lambda: ("transcribe", "queued") in states(home), 15, "the transcription to stop")
        stopped = chunks_decoded(marks)
        time.sleep(1.0)
        assert chunks_decoded(marks) == stopped, "a chunk was decoded after the stop"
        transcribe = next(t for t in tasks(home) if t["type"] == "transcribe")
        plan = json.loads(transcribe["result"])["plan"]
        assert 2 <= len(json.loads(transcribe["result"])["done"]) == len(stopped) < len(plan)
        assert "Waiting: on battery (42%), policy ac,strict" in traxctl(home, "status", env=env).stdout
        power(supply, plugged=True)
        wait_until(lambda: ("transcribe", "succeeded") in states(home), WITHIN + 15, "the resumed transcription")
    finally:
        daemon.stop()
    decoded = chunks_decoded(marks)
    assert len(decoded) == len(set(decoded)) == len(plan), "a chunk was decoded twice or never"
    done = next(t for t in tasks(home) if t["type"] == "transcribe")
    assert done["attempts"] == 1 and json.loads(done["errors"]) == []  # the stop was a release, not a failure
    assert "task_stopping_at_chunk" in daemon.log.read_text()


def closed_window() -> str:
    """A one-hour window starting two hours from now (local time): closed now."""
    start = dt.datetime.now() + dt.timedelta(hours=2)
    end = start + dt.timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def test_active_hours_of_the_machine_and_of_a_watch_folder(tmp_path: Path) -> None:
    home, window = tmp_path / "home", closed_window()
    home.mkdir()
    (home / "config.toml").write_text(
        f'[[watch]]\ninbox = "{tmp_path / "night"}"\noutbox = "{tmp_path / "night-out"}"\nactive_hours = "{window}"\n'
        f'[[watch]]\ninbox = "{tmp_path / "any"}"\noutbox = "{tmp_path / "any-out"}"\n'
    )  # fmt: skip
    (tmp_path / "night").mkdir(), (tmp_path / "any").mkdir()
    daemon = Daemon(home, home_env(home, "noop")).start()
    try:
        daemon.wait_ready()
        media.tone(tmp_path / "night" / "late.wav", 0.3)
        media.tone(tmp_path / "any" / "now.wav", 0.3)
        wait_until(lambda: states(home) == [("preprocess", "queued"), ("preprocess", "succeeded")], 20, "the other file")
        waiting = [t for t in tasks(home) if t["state"] == "queued"]
        assert [t["type"] for t in waiting] == ["preprocess"]  # recorded at once, not started
        opens = dt.datetime.fromtimestamp(waiting[0]["run_after"])
        assert f"{opens:%H:%M}" == window[:5] and opens > dt.datetime.now()
    finally:
        daemon.stop()
    env = home_env(home, "noop", TRAX_ACTIVE_HOURS=window)
    daemon = Daemon(home, env).start()
    try:
        daemon.wait_ready()
        media.tone(tmp_path / "any" / "second.wav", 0.4, freq=620)  # not a duplicate of now.wav
        wait_until(lambda: len(tasks(home)) == 3, 10, "the second file to be queued")
        time.sleep(1.0)
        assert [t["state"] for t in tasks(home)].count("queued") == 2
        assert f"Waiting: outside active hours {window} (opens {window[:5]})" in traxctl(home, "status", env=env).stdout
    finally:
        daemon.stop()
