"""Acceptance (issue 3, scaled down): a real `traxd run` with the REAL pipeline against the fake OpenAI server.

A dozen files of mixed formats and awkward names are dropped into the inbox (some while the daemon is stopped);
the daemon is killed with SIGKILL at random moments and restarted; the fake server injects a 429 with
Retry-After, a 500, a dropped connection and one 401 (which pauses TRANSCRIBE until `traxctl resume`); the queue
is paused, resumed and stopped through the real `traxctl`. Then: nothing lost, nothing paid twice beyond
in-flight work, no duplicate or partial output, the database intact, and the API key written nowhere.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

from tests.daemon_helpers import Daemon, home_env, open_home_store, traxctl, wait_until
from tests.fakes import media
from tests.fakes.openai_server import FakeOpenAI
from tests.store_checks import integrity_ok
from traxd.types import TaskState, TaskType

TRANSCRIPTIONS = "/audio/transcriptions"
WORKERS = 2
DEADLINE = 240.0


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def first_batch(inbox: Path) -> list[Path]:
    """Dropped while the daemon is stopped. Durations differ so each chunk is recognisable by its length."""
    return [
        media.tone(inbox / "a tone.wav", 1.0, freq=440),
        media.tone(inbox / "ünïcødé 日本語 memo.mp3", 1.4, freq=520),
        media.tone(inbox / "-leading-dash.m4a", 1.8, freq=610),
        media.video(inbox / "clip with sound.mp4", 2.2, audio=True),
        media.noise(inbox / "noise.ogg", 2.6),
    ]


def second_batch(inbox: Path, dup_of: Path) -> list[Path]:
    """Dropped while the daemon runs: bad files, a duplicate under another name, a URL list, a subfolder."""
    (inbox / "sub dir").mkdir()
    urls = inbox / "links.txt"
    urls.write_text("file:///etc/passwd\nftp://example.com/talk.mp3\n")
    text = inbox / "not audio.mp3"
    text.write_text("plain text pretending to be audio\n" * 10)
    dup = inbox / "copy of a tone.wav"
    shutil.copyfile(dup_of, dup)
    return [
        media.tone(inbox / "sub dir" / "nested (1).wav", 3.0, freq=700),
        media.video(inbox / "silent film.mp4", 1.0, audio=False),
        media.tone(inbox / "name with  spaces .mp3", 3.4, freq=800),
        text, dup, urls,
    ]


def settled(store) -> bool:  # type: ignore[no-untyped-def]
    counts = store.counts()
    return counts["queued"] == 0 and counts["running"] == 0 and sum(counts.values()) > 0


def all_tasks(store) -> list:  # type: ignore[no-untyped-def]
    return store.list_tasks(limit=100_000)


def test_daemon_acceptance_kills_faults_pause_resume_stop(tmp_path: Path) -> None:
    rng = random.Random()
    key = f"sk-test-{secrets.token_hex(16)}"
    home = tmp_path / "home"
    inbox, outbox = home / "inbox", home / "outbox"
    inbox.mkdir(parents=True)
    with FakeOpenAI(latency=0.4, transcribe=media.media_transcription) as server:
        env = home_env(home, handlers=None, OPENAI_API_KEY=key, OPENAI_BASE_URL=server.base_url,
                       TRAX_WORKERS=str(WORKERS), TRAX_CHUNK_SIZE="4", TRAX_LEASE_SECONDS="6",
                       TRAX_GRACE_SECONDS="10")  # fmt: skip
        daemon = Daemon(home, env)
        store = None
        kills = 0
        try:
            dropped = first_batch(inbox)  # while stopped: the start-up scan must find them
            # The first transcription requests meet a 429 with Retry-After, a 500 and a dropped connection.
            server.fail_next(429, headers={"retry-after": "1"}, path=TRANSCRIPTIONS)
            server.fail_next(500, path=TRANSCRIPTIONS)
            server.fail_next(drop=True, path=TRANSCRIPTIONS)
            daemon.start().wait_ready()
            store = open_home_store(home)

            # Kill 1: mid-processing, once the API has been reached (faults included) and a little later.
            first_kill_at = 3 + rng.randint(1, 3)  # the three faults, then a random number of real uploads
            wait_until(lambda: len(server.calls(TRANSCRIPTIONS)) >= first_kill_at, DEADLINE, "first uploads")
            daemon.kill9()
            kills += 1
            daemon.start().wait_ready()

            # Kill 2: during ingestion of the second drop.
            dropped += second_batch(inbox, dup_of=dropped[0])
            wait_until(lambda: "file_ingested" in daemon.log.read_text(), DEADLINE, "ingestion to begin")
            daemon.kill9()
            kills += 1
            daemon.start().wait_ready()

            # Kill 3: at a random moment after more uploads.
            seen = len(server.calls(TRANSCRIPTIONS))
            wait_until(lambda: len(server.calls(TRANSCRIPTIONS)) >= seen + rng.randint(1, 3), DEADLINE, "more uploads")
            daemon.kill9()
            kills += 1

            # While stopped: pause, then the longest file arrives; nothing is claimed until resume.
            assert traxctl(home, "pause", env=env).returncode == 0
            long_file = media.tones_with_gaps(inbox / "long lecture.mp3", [3.0, 3.0, 2.0], 0.6)
            dropped.append(long_file)
            daemon.start().wait_ready()
            long_sha = sha(long_file)
            wait_until(lambda: any(t.payload.get("sha256") == long_sha for t in all_tasks(store)), DEADLINE,
                       "the long file ingested while paused")  # fmt: skip
            mine = f":{daemon.proc.pid}:"  # type: ignore[union-attr]
            assert not [t for t in store.list_tasks(TaskState.RUNNING) if mine in (t.lease_owner or "")]  # paused
            status = traxctl(home, "status", env=env)
            assert status.returncode == 0 and "paused" in status.stdout.lower(), status.stdout

            # One 401: the next upload is refused, TRANSCRIBE pauses with the reason shown by `traxctl status`.
            server.fail_next(401, path=TRANSCRIPTIONS, body={"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})
            refused_before = sum(1 for c in server.calls(TRANSCRIPTIONS) if c.status == 401)
            assert traxctl(home, "resume", env=env).returncode == 0

            def transcribe_paused() -> bool:
                return "transcribe" in json.loads(traxctl(home, "status", "--json", env=env).stdout).get(
                    "paused_types", {})

            wait_until(transcribe_paused, DEADLINE, "TRANSCRIBE paused by the 401")
            assert sum(1 for c in server.calls(TRANSCRIPTIONS) if c.status == 401) == refused_before + 1
            status = traxctl(home, "status", env=env)
            assert "transcribe" in status.stdout.lower() and "401" in status.stdout, status.stdout
            assert key not in status.stdout
            assert traxctl(home, "resume", env=env).returncode == 0  # the fake accepts the key again

            wait_until(lambda: settled(store), DEADLINE, "every task settled")
            stop = traxctl(home, "stop", env=env)
            assert stop.returncode == 0, stop.stderr
            assert daemon.wait_exit(120) == 0, daemon.log.read_text()[-3000:]
        finally:
            daemon.stop()

        tasks = all_tasks(store)
        assert store is not None and integrity_ok(store)
        calls = server.calls(TRANSCRIPTIONS)

    # Nothing lost: every dropped media file (the duplicate by its content) is a transcript or a failed task.
    jobs = {t.job_id: store.get_job(t.job_id) for t in tasks if t.job_id is not None}
    by_job: dict[int, list] = {}
    for t in tasks:
        by_job.setdefault(t.job_id, []).append(t)
    media_files = [p for p in dropped if p.suffix != ".txt"]
    digests = Counter(sha(p) for p in media_files)
    preprocess = [t for t in tasks if t.type is TaskType.PREPROCESS]
    queued_digests = Counter(t.payload.get("sha256") for t in preprocess)
    assert set(queued_digests) == set(digests), (queued_digests, digests)
    assert set(queued_digests.values()) == {1}  # each content queued once (the renamed copy is not queued again)
    ok, failed = [], []
    for job_id, job_tasks in by_job.items():
        states = {t.state for t in job_tasks}
        assert states <= {TaskState.SUCCEEDED, TaskState.FAILED}, (jobs[job_id], job_tasks)
        if TaskState.FAILED in states:
            bad = [t for t in job_tasks if t.state is TaskState.FAILED]
            assert all(t.error_message for t in bad), bad
            failed.append(jobs[job_id].source)
        else:
            assert {t.type for t in job_tasks} == {TaskType.PREPROCESS, TaskType.TRANSCRIBE}, job_tasks
            ok.append(jobs[job_id])
    failed_names = {Path(s).name if "://" not in s else s for s in failed}
    assert failed_names == {"not audio.mp3", "silent film.mp4", "file:///etc/passwd", "ftp://example.com/talk.mp3"}
    assert len(ok) == len(digests) - 2

    # Outputs: one set per transcript, names unique, no temp or partial file left.
    out_files = [p for p in outbox.rglob("*") if p.is_file()]
    assert not [p for p in out_files if p.name.endswith((".tmp", ".part", ".partial")) or p.name.startswith(".")]
    txts = [p for p in out_files if p.suffix == ".txt"]
    assert len(txts) == len(ok), sorted(p.name for p in out_files)
    stems = Counter(p.stem for p in txts)
    assert set(stems.values()) == {1}
    for p in txts:
        for ext in (".json", ".srt", ".vtt"):
            assert p.with_suffix(ext).exists(), p

    # Nothing paid twice beyond in-flight work: successful uploads per chunk (recognised by its duration)
    # are at most 1 + the kills, and in total at most the chunks plus what was in flight at each kill.
    chunks = sum(len(t.result["chunks"]) for t in preprocess if t.state is TaskState.SUCCEEDED)
    answered = [c for c in calls if c.status == 200]
    per_chunk = Counter(round(float(c.headers["x-fake-duration"]), 1) for c in answered)
    assert max(per_chunk.values()) <= 1 + kills, per_chunk
    assert chunks <= len(answered) <= chunks + kills * WORKERS, (chunks, len(answered))
    assert {c.headers["authorization"] for c in calls} == {f"Bearer {key}"}

    # The key is nowhere under TRAX_HOME (logs, DB, WAL, scratch) nor in any output.
    assert not (home / "config.toml").exists() or key not in (home / "config.toml").read_text()
    leaks = [p for p in home.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaks == []
    con = sqlite3.connect(home / "trax.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    assert key not in dump
    store.engine.dispose()
