"""What the output writer promises a user: durable whole files, safe names, a tidy folder, readable cues and text."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest

from traxd import outputs, timeline


def _killed_writer(target: Path, text: str = "half") -> None:
    """A writer (a fork of this process, so it runs this process's code) killed by SIGKILL before its rename."""
    pid = os.fork()
    if pid == 0:
        try:
            os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[assignment] # the child only
            outputs.write_text_atomic(target, text)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_rewrite_removes_the_temp_file_a_writer_killed_by_sigkill_left(tmp_path: Path) -> None:
    target = tmp_path / "talk.txt"
    _killed_writer(target)
    (leftover,) = tmp_path.iterdir()
    _age(leftover, 60)
    outputs.write_text_atomic(target, "whole")
    assert [p.name for p in tmp_path.iterdir()] == ["talk.txt"] and target.read_text() == "whole"


def test_a_transcript_rewrite_sweeps_the_leftovers_of_its_four_files_with_one_listing_of_the_outbox(
    tmp_path: Path,
) -> None:
    # A big outbox (10,000 transcripts = 40,000 files) made each of the four writes list it again: once per set now.
    for ext in ("txt", "srt", "vtt", "json"):
        _killed_writer(tmp_path / f"talk.{ext}")
    other = tmp_path / ".memo.txt.abc.tmp"  # another name's leftover: its own rewrite (or the start-up sweep) takes it
    other.write_text("x")
    for path in tmp_path.iterdir():
        _age(path, 60)
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        listed.append(str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    with mock.patch("os.scandir", scandir):
        doc = {"text": "Hello.", "segments": [{"start": 0, "end": 1, "text": "Hello."}]}
        outputs.write_transcript(tmp_path, "talk", doc)
    assert listed == [str(tmp_path)]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".memo.txt.abc.tmp", "talk.json", "talk.srt", "talk.txt", "talk.vtt"]


def test_leftovers_older_than_two_seconds_are_swept_and_younger_ones_kept(tmp_path: Path) -> None:
    stale, young = tmp_path / ".talk.txt.aaa.tmp", tmp_path / ".talk.txt.bbb.tmp"
    stale.write_text("x")
    young.write_text("y")
    _age(stale, 2.5)
    _age(young, 1.0)
    outputs.write_text_atomic(tmp_path / "talk.txt", "done")
    assert not stale.exists() and young.exists()


def test_an_unreadable_leftover_does_not_stop_the_write(tmp_path: Path) -> None:
    odd = tmp_path / ".talk.txt.dir.tmp"
    odd.mkdir()  # unlink() fails on a folder
    _age(odd, 60)
    assert outputs.write_text_atomic(tmp_path / "talk.txt", "done").read_text() == "done"


def test_the_start_up_sweep_removes_what_killed_writers_left_and_nothing_else(tmp_path: Path) -> None:
    _killed_writer(tmp_path / "talk.txt")
    _killed_writer(tmp_path / "memo.json")
    mine = [tmp_path / ".notes.tmp", tmp_path / "talk.mp3.tmp", tmp_path / "draft.txt"]
    for path in [*tmp_path.iterdir(), *mine]:
        path.write_text("x")
        _age(path, 60)
    assert outputs.sweep_temps(tmp_path) == 2
    assert sorted(tmp_path.iterdir()) == sorted(mine)
    assert outputs.sweep_temps(tmp_path / "no such folder") == 0


def test_a_stalled_writer_still_finishes_while_sweeps_run_past_its_temp_file(tmp_path: Path) -> None:
    # A writer held up between its temp file and the rename (a slow disk, a suspended laptop) for longer than the
    # sweep's age limit must not lose its temp file to the start-up sweep or to another write of the same name.
    target, stalled, go = tmp_path / "talk.txt", threading.Event(), threading.Event()
    real_replace, errors = os.replace, []

    def replace(src: str, dst: Path) -> None:
        if threading.current_thread().name == "slow-writer":
            stalled.set()
            go.wait(60)
        real_replace(src, dst)

    def slow() -> None:
        try:
            outputs.write_text_atomic(target, "the slow writer's words")
        except OSError as exc:
            errors.append(exc)

    with mock.patch("traxd.outputs.os.replace", replace):
        writer = threading.Thread(target=slow, name="slow-writer")
        writer.start()
        assert stalled.wait(60)
        (temp,) = tmp_path.glob(".talk.txt.*.tmp")
        _age(temp, 60)
        assert outputs.sweep_temps(tmp_path) == 0
        outputs.write_text_atomic(target, "a quicker writer's words")
        assert temp.exists()
        go.set()
        writer.join(60)
    assert errors == [] and target.read_text() == "the slow writer's words"
    assert [p.name for p in tmp_path.iterdir()] == ["talk.txt"]


STRACE = shutil.which("strace")


@pytest.mark.skipif(STRACE is None or not sys.platform.startswith("linux"), reason="needs strace (.ci/run installs it)")
def test_the_text_reaches_the_disk_before_the_file_takes_its_name(tmp_path: Path) -> None:
    """System calls of this process: the temp file's data is written, then fsynced, then renamed over the target."""
    log = tmp_path / "strace.log"
    cmd = [str(STRACE), "-f", "-e", "trace=write,fsync,fdatasync,rename,renameat,renameat2", "-o", str(log),
           "-p", str(os.getpid())]  # fmt: skip
    tracer = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        assert tracer.stderr is not None
        line = tracer.stderr.readline()  # "strace: Process N attached" once it traces us
        assert "attached" in line, line
        target = outputs.write_text_atomic(tmp_path / "out" / "talk.txt", "durable words\n")
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    # Another thread's call at the same moment splits a line into "fsync(7 <unfinished ...>" and "<... resumed>".
    calls = [re.sub(r"^\d+\s+", "", line) for line in log.read_text().splitlines()]
    write = next(i for i, c in enumerate(calls) if c.startswith("write(") and "durable words" in c)
    fd = re.match(r"write\((\d+),", calls[write]).group(1)  # type: ignore[union-attr]
    sync = next(i for i, c in enumerate(calls) if re.match(rf"f(data)?sync\({fd}(\)| <unfinished)", c))
    rename = next(i for i, c in enumerate(calls) if c.startswith("rename") and str(target) in c)
    assert write < sync < rename


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("cafe\u0301", "caf\u00e9"),  # decomposed é (as macOS file names arrive) becomes one character
        ("team   call \u2003 notes", "team call notes"),
        ("x" * 119 + " tail", "x" * 119),  # the 120-character cut leaves no trailing space
        ("notes. . .", "notes"),
        (".Xylophone.", "Xylophone"),  # only dots go from the ends, never a letter
        ("Project X. ", "Project X"),
        ("\U0001f600" * 150, "\U0001f600" * 50),  # 200 bytes of UTF-8 at most
        ("x" + "\U0001f600" * 60, "x" + "\U0001f600" * 49),  # cut one character at a time: 197 bytes, not less
        ("\u00e9" * 99 + " " + "\u00e9" * 20, "\u00e9" * 99),  # the byte cut leaves no trailing space either
        ("con.txt", "_con.txt"),
        ("COM9", "_COM9"),
        ("COM10", "COM10"),
        ("PRN", "_PRN"),
        ("aux.log", "_aux.log"),
        ("Nul", "_Nul"),
        ("LPT9", "_LPT9"),
        ("LPT10", "LPT10"),
        ("...", "transcript"),
    ],
)
def test_a_name_is_made_safe_for_every_file_system(raw: str, safe: str) -> None:
    name = outputs.sanitize_name(raw)
    assert name == safe
    assert len(name.encode()) <= 200 and unicodedata.is_normalized("NFC", name)


def test_when_every_name_is_taken_by_other_inputs_the_error_says_so(tmp_path: Path) -> None:
    for n in range(1, 10_000):
        base = "talk" if n == 1 else f"talk-{n}"
        (tmp_path / f"{base}.json").write_text(json.dumps({"source": f"/other/{n}"}))
    with pytest.raises(RuntimeError, match="no free output name for 'talk'"):
        outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3")


def test_a_name_whose_json_is_unreadable_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / "talk.json").write_text("{not json")
    (tmp_path / "memo.json").write_text("[1, 2]")
    assert outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3") == "talk-2"
    assert outputs.choose_base(tmp_path, "memo", "/inbox/memo.mp3") == "memo-2"


def test_a_segment_of_exactly_the_limit_is_one_cue() -> None:
    text = "a" * 159 + "."
    assert [t for _, _, t in outputs.cues([{"start": 0, "end": 4, "text": text}])] == [text]


def test_a_segment_exactly_as_long_as_a_cue_may_stay_on_screen_is_one_cue() -> None:
    seconds = timeline.MAX_CUE_SECONDS
    assert outputs.cues([{"start": 3.0, "end": 3.0 + seconds, "text": "Short words, long pause."}]) == [
        (3.0, 3.0 + seconds, "Short words, long pause.")]


def test_a_segment_one_character_over_the_limit_is_cut_into_cues_within_it() -> None:
    text = "A" * 78 + ". " + "B" * 80 + "."  # 161 characters
    assert len(text) == 161
    cues = outputs.cues([{"start": 0, "end": 4, "text": text}])  # short enough in time: cut for its length only
    assert len(cues) > 1 and all(len(t) <= 160 for _, _, t in cues)
    assert " ".join(t for _, _, t in cues) == text
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(4) and all(a < b for a, b, _ in cues)


def test_cue_times_are_shared_out_by_length_and_empty_or_timeless_segments_give_none() -> None:
    segments = [{"start": 1, "end": 1, "text": "no time"}, {"start": 2, "end": 3, "text": "   "},
                {"start": 10, "end": 13, "text": "A" * 99 + ". " + "B" * 199 + "."}]  # fmt: skip
    (first, second) = outputs.cues(segments)
    assert first[:2] == (10.0, 11.0) and second[:2] == (11.0, 13.0)
    assert outputs.stamp(-0.4, ",") == "00:00:00,000"


def test_the_text_file_has_no_empty_lines_for_silent_segments() -> None:
    segments = [{"text": " one "}, {"text": ""}, {"start": 1.0}, {"text": "  \n "}, {"text": "two \n  words"}]
    assert outputs.to_txt(segments) == "one\ntwo words\n"
    assert outputs.to_txt(segments, "   ") == "one\ntwo words\n"  # a blank model text falls back to the segments


def test_update_json_starts_afresh_from_a_missing_file_or_one_that_is_not_an_object(tmp_path: Path) -> None:
    missing, listed = tmp_path / "new.json", tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert outputs.update_json(missing, {"a": 1}) == {"a": 1} == json.loads(missing.read_text())
    assert outputs.update_json(listed, {"b": 2}) == {"b": 2} == json.loads(listed.read_text())


def test_a_set_that_fails_half_way_is_not_marked_complete(tmp_path: Path) -> None:
    (tmp_path / "talk.vtt").mkdir()  # the .vtt cannot be written
    with pytest.raises(OSError):
        outputs.write_transcript(tmp_path, "talk", {"text": "hi", "segments": [{"start": 0, "end": 1, "text": "hi"}]})
    assert not (tmp_path / "talk.json").exists()


def test_the_json_keeps_non_ascii_text_readable(tmp_path: Path) -> None:
    path = outputs.write_json_atomic(tmp_path / "a.json", {"text": "Grüße, 你好"})
    assert "Grüße, 你好" in path.read_text(encoding="utf-8")
    doc = {"source": "s", "text": "Grüße, 你好", "segments": [{"start": 0.0, "end": 1.0, "text": "Grüße, 你好"}]}
    paths = outputs.write_transcript(tmp_path, "talk", doc)  # the transcript's own NAME.json, read in an editor
    assert Path(paths["json"]).read_text(encoding="utf-8").count("Grüße, 你好") == 2


def test_a_reserved_name_is_readable_like_any_output_while_it_is_being_written(tmp_path: Path) -> None:
    base = outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3")
    placeholder = tmp_path / f"{base}.json"
    assert oct(placeholder.stat().st_mode)[-3:] == "644"
    assert json.loads(placeholder.read_text()) == {"source": "/inbox/talk.mp3", "status": "writing"}


@pytest.mark.parametrize("ext", ["txt", "srt", "vtt"])
def test_a_users_own_file_of_any_output_kind_keeps_its_name(tmp_path: Path, ext: str) -> None:
    mine = tmp_path / f"talk.{ext}"
    mine.write_text("the user's own subtitles")
    assert outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3") == "talk-2"
    assert mine.read_text() == "the user's own subtitles"



@pytest.mark.parametrize("link", ["gone.json", "missing-folder/talk.json", "/nonexistent/talk.json", "../talk.json"])
def test_a_link_in_the_outbox_is_someone_elses_name_and_nothing_is_written_through_it(tmp_path: Path, link: str) -> None:
    # A user's or a sync tool's link named like an output, even a dangling one, keeps its name: the transcript
    # takes the next free one, and nothing appears where the link points.
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "talk.json").symlink_to(link)
    assert outputs.choose_base(outbox, "talk", "/inbox/talk.mp3") == "talk-2"
    assert os.readlink(outbox / "talk.json") == link
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["outbox", "talk-2.json", "talk.json"]


def test_a_link_named_like_any_output_kind_keeps_its_name(tmp_path: Path) -> None:
    (tmp_path / "talk.srt").symlink_to("elsewhere.srt")
    assert outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3") == "talk-2"


def test_two_writers_racing_for_one_name_get_two_names(tmp_path: Path) -> None:
    # Another daemon (or a `trax batch`) reserves `talk` between our look at the folder and our create: we take
    # `talk-2`, and its reservation stays as it made it.
    real_open, raced = os.open, []

    def open_after_the_other(path: str, flags: int, mode: int = 0o777) -> int:
        if not raced and Path(path).name == "talk.json":
            raced.append("racing")
            raced[0] = outputs.choose_base(tmp_path, "talk", "/other/talk.mp3")
        return real_open(path, flags, mode)

    with mock.patch("traxd.outputs.os.open", open_after_the_other):
        mine = outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3")
    assert raced == ["talk"] and mine == "talk-2"
    assert json.loads((tmp_path / "talk.json").read_text()) == {"source": "/other/talk.mp3", "status": "writing"}
    assert json.loads((tmp_path / "talk-2.json").read_text())["source"] == "/inbox/talk.mp3"


def test_a_segment_the_diarizer_left_unlabelled_is_shown_as_an_unknown_speaker() -> None:
    segments = [{"start": 0, "end": 1, "speaker": "A", "text": "hello"}, {"start": 1, "end": 2, "text": "who is it"},
                {"start": 2, "end": 3, "speaker": "<&>", "text": "odd label"}]  # fmt: skip
    assert outputs.to_txt(segments) == "A: hello\n?: who is it\n<&>: odd label\n"
    vtt = outputs.to_vtt(segments)
    assert "\n<v A>hello\n" in vtt and "\nwho is it\n" in vtt and "\n<v ?>odd label\n" in vtt


def test_a_diarized_segment_without_text_adds_nothing_to_the_speaker_turns() -> None:
    """A segment the model left without text (no `text` key at all) shows no made-up words in the .txt."""
    segments = [{"start": 0, "end": 1, "speaker": "A", "text": "hello"}, {"start": 1, "end": 2, "speaker": "B"},
                {"start": 2, "end": 3, "speaker": "A", "text": "again"}]  # fmt: skip
    assert outputs.to_txt(segments) == "A: hello again\n"


def test_an_output_folder_that_does_not_exist_yet_is_created_however_deep(tmp_path: Path) -> None:
    # A watch folder's outbox on a new disk layout, or a translation folder: nothing there yet, not even the parent.
    target = outputs.write_text_atomic(tmp_path / "Transcripts" / "2026" / "talk.meta.json", "{}\n")
    assert target.read_text() == "{}\n"
    outputs.write_text_atomic(target, "{}\n")  # and again, once it exists


def test_the_start_up_sweep_takes_leftovers_older_than_two_seconds_only(tmp_path: Path) -> None:
    stale, young = tmp_path / ".talk.txt.aaa.tmp", tmp_path / ".memo.json.bbb.tmp"
    stale.write_text("x")
    young.write_text("y")
    _age(stale, 2.5)
    _age(young, 1.0)  # a writer may be between creating its temp file and locking it
    assert outputs.sweep_temps(tmp_path) == 1
    assert not stale.exists() and young.exists()


def test_a_fifo_named_like_a_temp_file_does_not_hang_the_sweep(tmp_path: Path) -> None:
    # Opening a FIFO for reading waits for a writer: the sweep must never open anything but a regular file.
    fifo = tmp_path / ".talk.txt.abc.tmp"
    os.mkfifo(fifo)
    _age(fifo, 60)
    swept: list[int] = []
    sweeper = threading.Thread(target=lambda: swept.append(outputs.sweep_temps(tmp_path)), daemon=True)
    sweeper.start()
    sweeper.join(30)
    if sweeper.is_alive():  # let it go: a writer end opened without blocking ends the reader's wait
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        sweeper.join(30)
        pytest.fail("the sweep opened a FIFO and waited for a writer")
    assert swept == [0] and fifo.exists()


def test_a_retry_does_not_keep_its_old_name_once_another_input_holds_it(tmp_path: Path) -> None:
    # The first attempt chose `talk`; meanwhile its files were removed and another input's transcript took the name.
    (tmp_path / "talk.json").write_text(json.dumps({"source": "/inbox/other.mp3", "text": "theirs"}))
    assert outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3", prefer="talk") == "talk-2"
    assert json.loads((tmp_path / "talk.json").read_text())["text"] == "theirs"


def test_a_name_is_reserved_in_an_outbox_that_does_not_exist_yet(tmp_path: Path) -> None:
    outbox = tmp_path / "Transcripts" / "2026"
    assert outputs.choose_base(outbox, "talk", "/inbox/talk.mp3") == "talk"
    assert json.loads((outbox / "talk.json").read_text())["source"] == "/inbox/talk.mp3"


@pytest.mark.parametrize("name", [".", "", "sub/..", "../out"])
def test_an_output_name_that_is_the_folder_itself_or_leaves_it_is_refused(tmp_path: Path, name: str) -> None:
    outbox = tmp_path / "out"
    outbox.mkdir()
    with pytest.raises(ValueError, match="escapes the output folder"):
        outputs.inside(outbox, name)


def test_a_rewrite_that_fails_keeps_the_earlier_complete_transcript(tmp_path: Path) -> None:
    doc = {"source": "/inbox/talk.mp3", "text": "first", "segments": [{"start": 0, "end": 1, "text": "first"}]}
    base = outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3")
    outputs.write_transcript(tmp_path, base, doc)
    (tmp_path / "talk.vtt").unlink()
    (tmp_path / "talk.vtt").mkdir()  # the re-run (new options, a retry) cannot write its .vtt
    with pytest.raises(OSError):
        outputs.write_transcript(tmp_path, base, {**doc, "text": "second"})
    assert json.loads((tmp_path / "talk.json").read_text())["source"] == "/inbox/talk.mp3"


def test_a_failed_rewrite_keeps_an_existing_txt_even_one_reading_like_a_reservation(tmp_path: Path) -> None:
    """Only NAME.json can be a name's reservation: a failed rewrite removes the files it created, never an
    existing .txt, even when the earlier transcript's text happens to read like a reservation's JSON."""
    said = json.dumps({"source": "/inbox/talk.mp3", "status": outputs.PLACEHOLDER})  # someone dictating JSON
    doc = {"source": "/inbox/talk.mp3", "text": said, "segments": [{"start": 0, "end": 1, "text": said}]}
    base = outputs.choose_base(tmp_path, "talk", "/inbox/talk.mp3")
    outputs.write_transcript(tmp_path, base, doc)
    (tmp_path / "talk.vtt").unlink()
    (tmp_path / "talk.vtt").mkdir()  # the re-run cannot write its .vtt
    with pytest.raises(OSError):
        outputs.write_transcript(tmp_path, base, doc)
    assert (tmp_path / "talk.txt").read_text() == said + "\n" and (tmp_path / "talk.srt").exists()


def test_cue_times_on_the_minute_and_the_hour_read_as_such() -> None:
    assert outputs.stamp(60.0, ",") == "00:01:00,000" and outputs.stamp(3600.0, ".") == "01:00:00.000"


def test_a_file_written_alone_is_0644_whatever_the_umask_or_the_mode_asked_for(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        shared = outputs.write_text_atomic(tmp_path / "summary.md", "# Talk\n")
        private = outputs.write_text_atomic(tmp_path / "config.toml", "key = 1\n", mode=0o600)
    finally:
        os.umask(old)
    assert (oct(shared.stat().st_mode)[-3:], oct(private.stat().st_mode)[-3:]) == ("644", "600")


def test_a_set_whose_rename_fails_half_way_leaves_no_temp_file_and_no_new_name(tmp_path: Path) -> None:
    # NAME.srt is a folder (someone else's): NAME.txt is renamed into place, the .srt rename fails. The new NAME.txt
    # goes again, the folder stays as it was, and no temp file of the four is left.
    (tmp_path / "talk.srt").mkdir()
    (tmp_path / "talk.srt" / "theirs.txt").write_text("theirs")
    doc = {"text": "Hello.", "segments": [{"start": 0.0, "end": 1.0, "text": "Hello."}]}
    with pytest.raises(OSError) as failed:
        outputs.write_transcript(tmp_path, "talk", doc)
    assert not isinstance(failed.value, FileNotFoundError)  # the rename's own error, not one of the clean-up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.srt"]
    assert (tmp_path / "talk.srt" / "theirs.txt").read_text() == "theirs"


def test_a_set_is_written_into_an_outbox_that_does_not_exist_yet(tmp_path: Path) -> None:
    outbox = tmp_path / "new" / "outbox"
    paths = outputs.write_transcript(outbox, "talk", {"text": "Hi.", "segments": [{"start": 0, "end": 1, "text": "Hi."}]})
    assert sorted(Path(p).name for p in paths.values()) == sorted(p.name for p in outbox.iterdir()) == [
        "talk.json", "talk.srt", "talk.txt", "talk.vtt"]  # fmt: skip


FIRST = {"source": "/inbox/talk.mp3", "text": "first", "segments": [{"start": 0, "end": 1, "text": "first"}]}


def first_set(folder: Path) -> tuple[str, dict[str, str]]:
    """A first talk.* set written in `folder`: its base name and each file's text."""
    base = outputs.choose_base(folder, "talk", "/inbox/talk.mp3")
    outputs.write_transcript(folder, base, FIRST)
    return base, {p.name: p.read_text() for p in folder.iterdir()}


def vtt_rename_fails() -> Callable[[str | Path, str | Path], None]:
    """os.replace, except that putting a new talk.vtt in place fails with an I/O error (restoring an old one works)."""
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if str(dst).endswith("talk.vtt") and ".old." not in str(src):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    return replace


def test_a_rewrite_whose_rename_fails_half_way_puts_the_old_files_back(tmp_path: Path) -> None:
    # The re-run's .txt and .srt are renamed into place, then the .vtt rename fails (an I/O error): the old .txt
    # and .srt come back, so no new text sits beside the old .json, and no temp file or kept link is left.
    base, before = first_set(tmp_path)
    second = {**FIRST, "text": "second", "segments": [{"start": 0, "end": 2, "text": "second"}]}
    with mock.patch.object(outputs.os, "replace", vtt_rename_fails()), pytest.raises(OSError, match="Input/output"):
        outputs.write_transcript(tmp_path, base, second)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
    assert sorted(before) == ["talk.json", "talk.srt", "talk.txt", "talk.vtt"]
    outputs.write_transcript(tmp_path, base, second)  # the retry publishes the whole new set
    assert (tmp_path / "talk.txt").read_text() == "second\n" and "second" in (tmp_path / "talk.json").read_text()


def test_the_outbox_is_synced_after_the_renames_that_publish_a_set(tmp_path: Path) -> None:
    # strace shows each rename and each fsync with the path of its fd: the folder's own fsync comes after the last
    # rename of the set (the JSON), so a power cut cannot take the published names back.
    if shutil.which("strace") is None:
        pytest.skip("needs strace (Debian package; .ci/run installs it)")
    outbox, trace = tmp_path / "outbox", tmp_path / "strace.txt"
    code = ("import sys; from pathlib import Path; from traxd import outputs; "
            "outputs.write_transcript(Path(sys.argv[1]), 'talk', {'text': 'Hi.', 'segments': []}); "
            "outputs.write_text_atomic(Path(sys.argv[1]) / 'talk.summary.md', '# Hi')")  # fmt: skip
    cmd = ["strace", "-f", "-yy", "-o", str(trace), "-e", "trace=rename,renameat,renameat2,fsync,fdatasync",
           sys.executable, "-c", code, str(outbox)]  # fmt: skip
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    calls = [line for line in trace.read_text().splitlines() if "rename" in line or "sync(" in line]
    published = [i for i, line in enumerate(calls) if "rename" in line and str(outbox) in line]
    dir_syncs = [i for i, line in enumerate(calls) if re.search(rf"sync\(\d+<{re.escape(str(outbox))}>\)", line)]
    assert len(published) == 5, calls
    set_end, summary = published[3], published[4]
    assert any(set_end < i < summary for i in dir_syncs), calls  # after the set's JSON, before the next write
    assert any(i > summary for i in dir_syncs), calls  # and after a file written alone


def test_a_rewrite_on_a_file_system_without_hard_links_keeps_the_old_files_by_copy(tmp_path: Path) -> None:
    base, before = first_set(tmp_path)
    no_links = mock.patch.object(outputs.os, "link", side_effect=OSError(1, "Operation not permitted"))
    with no_links, mock.patch.object(outputs.os, "replace", vtt_rename_fails()), pytest.raises(OSError, match="Input/output"):
        outputs.write_transcript(tmp_path, base, {**FIRST, "text": "second"})
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
    with no_links:
        outputs.write_transcript(tmp_path, base, {**FIRST, "text": "second"})
    assert (tmp_path / "talk.txt").read_text() == "second\n" and not list(tmp_path.glob(".*"))


def test_a_folder_its_file_system_cannot_sync_still_gets_its_outputs(tmp_path: Path) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(22, "Invalid argument")  # what some FUSE and network file systems answer for a folder
        real_fsync(fd)

    with mock.patch.object(outputs.os, "fsync", fsync):
        outputs.write_transcript(tmp_path, "talk", {"text": "Hi.", "segments": [{"start": 0, "end": 1, "text": "Hi."}]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.json", "talk.srt", "talk.txt", "talk.vtt"]
