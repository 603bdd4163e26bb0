"""A real full filesystem (a small tmpfs, mounted as root) under the outbox: the paid transcription is kept, no
NAME.* is left behind, the reason names the folder, and a retry once space is back writes NAME.*, not NAME-2.*."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes import media
from tests.fakes.openai_server import FakeOpenAI
from tests.test_pipeline_e2e import add_file, by_type, make_settings, open_store
from traxd.cli.traxctl_cmd import app as traxctl
from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.daemon.runner import Outcome
from traxd.handlers import default_registry
from traxd.queue.transitions import RetryPolicy
from traxd.types import TaskState, TaskType

FAST_RETRY = RetryPolicy(base_seconds=0.01, factor=1.0, jitter=0.0)
KINDS = ("txt", "json", "srt", "vtt")


def mount_small_fs(folder: Path, size: str = "2m") -> None:
    """A tmpfs of `size` at `folder`, or skip the test saying why the machine does not allow it."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs that can fill up")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem says ENOSPC; returns it (delete it to free the space)."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    try:  # the last page too
        with open(folder / "filler-tail.bin", "wb") as fh:
            while True:
                fh.write(b"\0")
                fh.flush()
    except OSError:
        pass
    return filler


@pytest.fixture
def full_outbox(tmp_path: Path) -> Iterator[Path]:
    outbox = tmp_path / "out"
    mount_small_fs(outbox)
    try:
        fill(outbox)
        yield outbox
    finally:
        subprocess.run(["umount", "-l", str(outbox)], check=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(transcribe=media.media_transcription) as fake:
        yield fake


def free_space(outbox: Path) -> None:
    for name in ("filler.bin", "filler-tail.bin"):
        (outbox / name).unlink(missing_ok=True)


def uploads(server: FakeOpenAI) -> Counter[str]:
    return Counter(hashlib.sha256(c.file_bytes).hexdigest() for c in server.calls("/audio/transcriptions"))


def ours(outbox: Path) -> list[str]:
    """Everything in the outbox except the filler (hidden temp files included)."""
    return sorted(p.name for p in outbox.iterdir() if not p.name.startswith("filler"))


def test_full_outbox_keeps_the_paid_transcript_and_retry_failed_writes_name(
    tmp_path: Path, server: FakeOpenAI, full_outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "home", server, chunk_size=5.0)
    store = open_store(settings)
    job = add_file(store, media.tones_with_gaps(tmp_path / "lecture.mp3", [4.0, 4.0, 3.0], 0.5), full_outbox)
    Pool(store, default_registry(settings), PoolConfig(slots=2, policy=FAST_RETRY, settings=settings)).run(drain=True)
    task = by_type(store, job)[TaskType.TRANSCRIBE]
    assert task.state is TaskState.FAILED and task.attempts == task.max_retries + 1
    reason = task.error_message or ""
    assert "No space left on device" in reason and str(full_outbox) in reason and "needs" in reason, reason
    assert ours(full_outbox) == []  # no NAME.json placeholder, no NAME.txt, no temp file
    paid = uploads(server)
    assert len(paid) >= 3 and set(paid.values()) == {1}  # every chunk once, though the write failed 4 times
    assert not (tmp_path / "home" / "tmp" / f"job-{job.id}").exists()  # the job ended: its chunks are gone

    free_space(full_outbox)
    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(traxctl, ["retry", "--failed"])
    assert result.exit_code == 0 and "1 failed task(s) queued again" in result.output, result.output
    Pool(store, default_registry(settings), PoolConfig(slots=2, settings=settings)).run(drain=True)
    assert by_type(store, job)[TaskType.TRANSCRIBE].state is TaskState.SUCCEEDED
    assert ours(full_outbox) == [f"lecture.{k}" for k in sorted(KINDS)]  # NAME.*, not NAME-2.*
    assert uploads(server) == paid  # nothing sent again
    store.engine.dispose()


def test_full_outbox_the_automatic_retry_finishes_once_space_is_back(
    tmp_path: Path, server: FakeOpenAI, full_outbox: Path
) -> None:
    settings = make_settings(tmp_path / "home", server)
    store = open_store(settings)
    job = add_file(store, media.tone(tmp_path / "memo.wav", 1.5), full_outbox)
    seen: list[str] = []

    def on_outcome(outcome: Outcome, took: bool) -> None:
        # Runs on the dispatcher between settling and the next claim: the retry sees the space back.
        if outcome.failure is not None and "No space left on device" in outcome.failure.message:
            seen.append(outcome.failure.message)
            assert ours(full_outbox) == []
            free_space(full_outbox)

    Pool(store, default_registry(settings), PoolConfig(slots=2, policy=FAST_RETRY, settings=settings),
         PoolWiring(on_outcome=on_outcome)).run(drain=True)  # fmt: skip
    task = by_type(store, job)[TaskType.TRANSCRIBE]
    assert len(seen) == 1 and task.state is TaskState.SUCCEEDED and task.attempts == 2
    assert ours(full_outbox) == [f"memo.{k}" for k in sorted(KINDS)]
    assert set(uploads(server).values()) == {1}
    store.engine.dispose()


def test_a_set_that_runs_out_half_way_leaves_no_name_files(tmp_path: Path) -> None:
    from traxd import outputs
    from traxd.errors import DiskFullError

    outbox = tmp_path / "out"
    mount_small_fs(outbox)
    try:
        (outbox / "filler-room.bin").write_bytes(b"\0" * 250_000)  # freed below: room for NAME.txt only
        fill(outbox)
        (outbox / "filler-room.bin").unlink()
        words = " ".join(f"word{i}" for i in range(20_000))  # ~200 kB in each of txt, srt, vtt and json; 2.5 words a second
        doc = {"source": "/in/talk.mp3", "text": words, "segments": [{"start": 0.0, "end": 8000.0, "text": words}]}
        base = outputs.choose_base(outbox, "talk", "/in/talk.mp3")
        assert base == "talk" and ours(outbox) == ["talk.json"]  # the placeholder fits
        with pytest.raises(DiskFullError, match=r"No space left on device: writing talk\.txt.* needs [0-9.]+ (kB|MB), "):
            outputs.write_transcript(outbox, base, doc)
        assert ours(outbox) == []  # neither the NAME.txt that fitted, nor the placeholder, nor a temp file
        free_space(outbox)
        base = outputs.choose_base(outbox, "talk", "/in/talk.mp3")
        outputs.write_transcript(outbox, base, doc)
        assert ours(outbox) == [f"talk.{k}" for k in sorted(KINDS)]
    finally:
        subprocess.run(["umount", "-l", str(outbox)], check=False)


def test_a_rewrite_that_runs_out_half_way_keeps_the_whole_earlier_set(tmp_path: Path) -> None:
    # A re-run (new options) rewrites NAME.*: if the disk fills after NAME.txt, the user must not be left with the
    # new NAME.txt beside the old NAME.srt/.vtt/.json, but with the earlier set, whole.
    from traxd import outputs
    from traxd.errors import DiskFullError

    outbox = tmp_path / "out"
    mount_small_fs(outbox)
    try:
        said = [{"start": 0.0, "end": 2.0, "text": "Old words."}]
        old = {"source": "/in/talk.mp3", "text": "Old words.", "segments": said}
        base = outputs.choose_base(outbox, "talk", "/in/talk.mp3")
        outputs.write_transcript(outbox, base, old)
        before = {k: (outbox / f"talk.{k}").read_bytes() for k in KINDS}
        (outbox / "filler-room.bin").write_bytes(b"\0" * 250_000)  # freed below: room for the new NAME.txt only
        fill(outbox)
        (outbox / "filler-room.bin").unlink()
        words = " ".join(f"word{i}" for i in range(20_000))  # ~200 kB in each of txt, srt, vtt and json; 2.5 words a second
        new = {"source": "/in/talk.mp3", "text": words, "segments": [{"start": 0.0, "end": 8000.0, "text": words}]}
        with pytest.raises(DiskFullError, match=r"No space left on device: writing talk\.txt"):
            outputs.write_transcript(outbox, base, new)
        assert {k: (outbox / f"talk.{k}").read_bytes() for k in KINDS} == before
        assert ours(outbox) == [f"talk.{k}" for k in sorted(KINDS)]  # and no temp file
        free_space(outbox)
        outputs.write_transcript(outbox, base, new)
        assert (outbox / "talk.txt").read_text(encoding="utf-8").strip() == words
    finally:
        subprocess.run(["umount", "-l", str(outbox)], check=False)


def test_daemon_with_its_home_on_a_full_disk_pauses_with_a_reason_and_resumes(tmp_path: Path) -> None:
    from tests.daemon_helpers import Daemon, home_env, open_home_store, wait_until

    home = tmp_path / "home"
    mount_small_fs(home, "4m")
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    try:
        (home / "config.toml").write_text(f'watch = [{{inbox = "{inbox}", outbox = "{outbox}"}}]\n')
        marks = tmp_path / "marks"
        daemon = Daemon(home, home_env(home, TRAX_TEST_MARKS=str(marks))).start().wait_ready()
        try:
            fill(home)
            (inbox / "talk.mp3").write_bytes(b"a talk")
            wait_until(lambda: "No space left on device" in daemon.log.read_text(), what="the disk-full reason")
            text = daemon.log.read_text()
            assert f"the database disk is full: No space left on device in {home}" in text, text
            assert "Logging error" not in text and daemon.proc is not None and daemon.proc.poll() is None
            free_space(home)
            wait_until(lambda: marks.exists() and "done" in marks.read_text(), what="the file processed")
            daemon.term()
            assert daemon.wait_exit() == 0
        finally:
            daemon.stop()
        store = open_home_store(home)
        assert store.counts()["succeeded"] >= 1
        store.engine.dispose()
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def test_ffmpeg_on_a_full_scratch_disk_is_a_disk_error_not_bad_media(tmp_path: Path) -> None:
    from traxd.adapters import ffmpeg
    from traxd.errors import DiskFullError

    source = media.tone(tmp_path / "talk.wav", 3.0)
    scratch = tmp_path / "tmp"
    mount_small_fs(scratch)
    try:
        fill(scratch)
        with pytest.raises(DiskFullError, match=rf"No space left on device: FFmpeg's audio in {scratch}"):
            ffmpeg.preprocess(source, scratch / "job-1", 600.0)  # not "not a media file": it is retried
        free_space(scratch)
        assert ffmpeg.preprocess(source, scratch / "job-1", 600.0).duration > 2.5
    finally:
        subprocess.run(["umount", "-l", str(scratch)], check=False)
