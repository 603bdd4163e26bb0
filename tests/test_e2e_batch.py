"""Acceptance: `trax batch` as a user runs it, with the REAL pipeline (FFmpeg, the openai SDK, outputs) against
the fake OpenAI-compatible server. No TRAX_TEST_HANDLERS: every file goes PREPROCESS -> TRANSCRIBE (-> ENHANCE).

Media is generated at test time with imageio-ffmpeg's binary; each test runs one or two `trax batch` processes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon_helpers import clean_env
from tests.fakes import media
from tests.fakes.openai_server import FakeOpenAI, default_chat

ROOT = Path(__file__).resolve().parent.parent
TRAX = Path(sys.executable).parent / "trax"
OUTPUT_KINDS = (".txt", ".json", ".srt", ".vtt")
TRANSCRIPTIONS = "/audio/transcriptions"


def wait_for(cond: Callable[[], object], deadline: float = 180.0, what: str = "condition") -> None:
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(transcribe=media.media_transcription) as fake:
        yield fake


@pytest.fixture
def key() -> str:
    return f"sk-test-{secrets.token_hex(12)}"


def user_env(tmp_path: Path, server: FakeOpenAI, key: str, deepseek: bool = False, **extra: str) -> dict[str, str]:
    """A user's shell: a key and base URL in the environment, nothing from the developer's own TRAX_/API vars."""
    env = clean_env()
    env.update(TRAX_HOME=str(tmp_path / "home"), OPENAI_API_KEY=key, OPENAI_BASE_URL=server.base_url,
               PYTHONPATH=str(ROOT))  # fmt: skip
    if deepseek:
        env.update(DEEPSEEK_API_KEY=f"sk-deepseek-{secrets.token_hex(6)}", DEEPSEEK_BASE_URL=server.base_url)
    env.update(extra)
    return env


def trax(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRAX), "batch", *args], check=False, env=env, capture_output=True, text=True, timeout=timeout)


def outputs(folder: Path, stem: str) -> list[Path]:
    return [folder / f"{stem}{ext}" for ext in OUTPUT_KINDS if (folder / f"{stem}{ext}").exists()]


def report_of(folder: Path) -> dict:
    reports = sorted(folder.glob("trax-batch-*.json"))
    assert reports, f"no batch report in {folder}"
    return json.loads(reports[-1].read_text())


def uploads_by_content(server: FakeOpenAI, ok_only: bool = True) -> Counter[str]:
    """How many times each distinct chunk (by its bytes) was sent for transcription (and answered 200)."""
    calls = server.calls(TRANSCRIPTIONS)
    return Counter(hashlib.sha256(c.file_bytes).hexdigest() for c in calls if not ok_only or c.status == 200)


def good_media(folder: Path) -> dict[str, Path]:
    """Four short inputs of the formats users drop: WAV, MP3, M4A and a video with sound."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "tone": media.tone(folder / "tone.wav", 1.5, freq=440),
        "noise": media.noise(folder / "noise.mp3", 1.5),
        "voice memo": media.tone(folder / "voice memo.m4a", 1.5, freq=660),
        "clip": media.video(folder / "clip.mp4", 1.5, audio=True),
    }


def test_folder_of_media_becomes_transcripts_and_a_matching_report(tmp_path: Path, server: FakeOpenAI, key: str) -> None:
    files = good_media(tmp_path / "in")
    done = trax(user_env(tmp_path, server, key), str(tmp_path / "in"), "--model", "whisper-1", "--workers", "2",
                "--progress-interval", "1")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "in" / "transcripts"
    for stem in files:
        assert [p.suffix for p in outputs(out, stem)] == list(OUTPUT_KINDS), stem
        doc = json.loads((out / f"{stem}.json").read_text())
        assert doc["segments"] and "hello from the fake server." in (out / f"{stem}.txt").read_text()
        assert "-->" in (out / f"{stem}.srt").read_text() and (out / f"{stem}.vtt").read_text().startswith("WEBVTT")
    assert "Progress: 4/4 (100.0% success) | Active: 0 | Failed: 0" in done.stderr
    assert "FAILED" not in done.stdout
    # The JSON report says the same as the summary.
    report = report_of(out)
    assert (report["total"], report["succeeded"], report["failed"]) == (4, 4, 0)
    assert not report["interrupted"] and report["failures"] == []
    assert report["options"]["model"] == "whisper-1"
    # Exactly one upload per file (each under a chunk), every one asking for whisper-1 segments.
    calls = server.calls(TRANSCRIPTIONS)
    assert len(calls) == 4 and len(uploads_by_content(server)) == 4
    assert {c.fields["model"] for c in calls} == {"whisper-1"}
    assert {c.headers["authorization"] for c in calls} == {f"Bearer {key}"}
    # The key the user exported is not written anywhere (home, outputs, report).
    for path in [*(tmp_path / "home").rglob("*"), *out.rglob("*")]:
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_bad_files_fail_with_a_reason_each_and_write_nothing(tmp_path: Path, server: FakeOpenAI, key: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tone(folder / "good.wav", 1.0)
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "notes.mp3").write_text("this is a text file with an .mp3 name\n" * 20)
    media.video(folder / "silent film.mp4", 1.0, audio=False)
    done = trax(user_env(tmp_path, server, key), str(folder), "--progress-interval", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # An empty file is skipped, with the reason, like a partial download (the inbox, too, never takes one).
    assert f"skipped {folder / 'empty.mp3'}: empty file" in done.stderr
    expect = {"notes.mp3": "not a media file", "silent film.mp4": "without an audio track"}
    for name, reason in expect.items():
        mine = [ln for ln in lines if ln.startswith(f"FAILED {folder / name} (")]
        assert len(mine) == 1 and reason in mine[0], (name, done.stdout)
        assert "Traceback" not in done.stdout + done.stderr
    out = folder / "transcripts"
    assert [p.suffix for p in outputs(out, "good")] == list(OUTPUT_KINDS)
    for name in [*expect, "empty.mp3"]:
        assert outputs(out, Path(name).stem) == []
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    report = report_of(out)
    assert (report["total"], report["succeeded"], report["failed"]) == (3, 1, 2)
    assert report["ignored"] == [{"source": str(folder / "empty.mp3"), "reason": "empty file"}]
    assert {Path(f["source"]).name: f["type"] for f in report["failures"]} == dict.fromkeys(expect, "preprocess")
    assert all(f["reason"] for f in report["failures"])
    assert len(server.calls(TRANSCRIPTIONS)) == 1  # bad files never reach the API


def test_interrupted_batch_rerun_sends_no_finished_file_again(tmp_path: Path, key: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        media.tone(folder / f"part {i}.mp3", 1.0 + i * 0.25, freq=300 + 100 * i)  # distinct bytes per file
    with FakeOpenAI(latency=1.5, transcribe=media.media_transcription) as server:
        env = user_env(tmp_path, server, key)
        errfile = tmp_path / "first.err"
        with open(errfile, "w") as err:
            proc = subprocess.Popen([str(TRAX), "batch", str(folder), "--workers", "1", "--progress-interval", "0.5"],
                                    env=env, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
            wait_for(lambda: len(server.calls(TRANSCRIPTIONS)) >= 1, what="the first upload")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=180) == 130, errfile.read_text()
        first = uploads_by_content(server)
        report = report_of(folder / "transcripts")
        assert report["interrupted"] and 1 <= report["succeeded"] < 4, report
        assert sum(first.values()) == report["succeeded"]  # the in-flight upload finished, nothing else started

        server.latency = 0.0
        again = trax(env, str(folder))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already queued or done" in again.stderr
        total = uploads_by_content(server)
        assert len(total) == 4 and set(total.values()) == {1}  # each file's chunk paid for exactly once
        assert len(server.calls(TRANSCRIPTIONS)) == 4
    for i in range(4):
        assert len(outputs(folder / "transcripts", f"part {i}")) == 4


def test_cli_options_reach_the_api_and_enhance_writes_enhanced_text(tmp_path: Path, server: FakeOpenAI, key: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tones_with_gaps(folder / "lecture.mp3", [3.0, 3.0, 3.0, 2.0], 0.5)  # ~12.5 s with gaps to cut at
    media.tone(folder / "short.wav", 1.0)
    env = user_env(tmp_path, server, key, deepseek=True)
    server.chat = lambda req: default_chat(req).replace("hello from", "Hello from")  # a visible clean-up
    done = trax(env, str(folder), "--language", "de", "--model", "gpt-4o-transcribe", "--chunk-size", "4",
                "--enhance", "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    calls = server.calls(TRANSCRIPTIONS)
    assert {c.fields.get("model") for c in calls} == {"gpt-4o-transcribe"}
    assert {c.fields.get("language") for c in calls} == {"de"}
    durations = [media.duration_of(c.file_bytes, Path(c.file_name or "x.ogg").suffix) for c in calls]
    assert len(calls) >= 4 and max(durations) <= 4.5, durations  # the long file went up in <= 4 s chunks
    assert len(uploads_by_content(server)) == len(calls)
    # --enhance: one ENHANCE per file, through DeepSeek's base URL (the fake) and its own key.
    chats = server.calls("/chat/completions")
    assert chats and {c.headers["authorization"] for c in chats} == {f"Bearer {env['DEEPSEEK_API_KEY']}"}
    out = tmp_path / "out"
    for stem in ("lecture", "short"):
        assert len(outputs(out, stem)) == 4
        enhanced = (out / f"{stem}.enhanced.txt").read_text()
        assert enhanced.startswith("Hello from the fake server.") and "hello" not in enhanced
        assert json.loads((out / f"{stem}.json").read_text())["enhancement"]["status"] == "accepted"
    report = report_of(out)
    assert report["options"] == {"enhance": True, "language": "de", "model": "gpt-4o-transcribe", "backend": "openai",
                                 "chunk_size": 4.0, "word_timestamps": False}  # fmt: skip
    assert (report["succeeded"], report["failed"]) == (2, 0)


def test_enhance_without_deepseek_key_still_writes_transcripts(tmp_path: Path, server: FakeOpenAI, key: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tone(folder / "memo.wav", 1.0)
    media.tone(folder / "call.mp3", 1.0, freq=550)
    done = trax(user_env(tmp_path, server, key), str(folder), "--enhance")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--enhance without DEEPSEEK_API_KEY" in done.stderr
    out = folder / "transcripts"
    for stem in ("memo", "call"):
        assert len(outputs(out, stem)) == 4  # the transcript is complete
        assert not (out / f"{stem}.enhanced.txt").exists()
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith(f"FAILED {folder / stem}"))
        assert "(enhance): DEEPSEEK_API_KEY is not set" in line
    assert server.calls("/chat/completions") == []
    report = report_of(out)
    assert (report["failed"], report["pending"]) == (2, 0)
    assert {f["type"] for f in report["failures"]} == {"enhance"}



@pytest.mark.parametrize("status", [401, 402])
def test_deepseek_refusing_the_key_ends_the_batch_reported_and_a_rerun_finishes_it(
    tmp_path: Path, server: FakeOpenAI, key: str, status: int
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tone(folder / "memo.wav", 1.0)
    media.tone(folder / "call.mp3", 1.0, freq=550)
    server.fail_next(status=status, times=50, path="/chat/completions")
    env = user_env(tmp_path, server, key, deepseek=True)
    done = trax(env, str(folder), "--enhance", timeout=240)
    assert done.returncode == 1, done.stdout + done.stderr
    out = folder / "transcripts"
    report = report_of(out)
    assert (report["succeeded"], report["failed"], report["pending"]) == (0, 0, 2)
    assert "enhance is paused for this database: DeepSeek" in report["pending_reason"]
    assert "run the batch again" in report["pending_reason"]
    for stem in ("memo", "call"):
        assert len(outputs(out, stem)) == 4  # the paid transcript is written whatever DeepSeek says
    # The key is fixed: the same command finishes the enhancements without paying for a transcription again.
    server.faults.clear()
    again = trax(env, str(folder), "--enhance", timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "note: enhance tasks were paused" in again.stderr
    assert (report_of(out)["succeeded"], report_of(out)["pending"]) == (2, 0)
    assert all((out / f"{stem}.enhanced.txt").exists() for stem in ("memo", "call"))
    assert set(uploads_by_content(server).values()) == {1} and len(uploads_by_content(server)) == 2
