"""Outputs: atomic writes, safe names inside the output folder, clash suffixes, valid SRT/VTT, update_json."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from unittest import mock

import pytest

from traxd import outputs


def test_write_text_atomic_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    outputs.write_text_atomic(target, "first")
    with mock.patch("traxd.outputs.os.replace", side_effect=OSError("disk full")), pytest.raises(OSError):
        outputs.write_text_atomic(target, "second")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_update_json_merges_top_level_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    outputs.write_json_atomic(path, {"text": "x", "enhancement": {"status": "pending"}})
    outputs.update_json(path, {"enhancement": {"status": "rejected", "similarity": 0.4}})
    assert json.loads(path.read_text()) == {"text": "x", "enhancement": {"status": "rejected", "similarity": 0.4}}


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("interview", "interview"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("a/b\\c:d*e?f", "a_b_c_d_e_f"),
        ("  .hidden ", "hidden"),
        ("CON", "_CON"),
        ("", "transcript"),
        ("line\nbreak\ttab", "line_break_tab"),
        ("x" * 500, "x" * 120),
    ],
)
def test_sanitize_name(raw: str, safe: str) -> None:
    assert outputs.sanitize_name(raw) == safe


def test_names_never_leave_the_output_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escapes"):
        outputs.inside(tmp_path, "../x.txt")
    base = outputs.choose_base(tmp_path / "out", "../../evil", "src")
    assert outputs.inside(tmp_path / "out", f"{base}.json").parent == (tmp_path / "out").resolve()


def test_different_inputs_get_a_suffix_and_the_same_input_keeps_its_name(tmp_path: Path) -> None:
    a = outputs.choose_base(tmp_path, "talk", "/inbox/one/talk.mp3")
    b = outputs.choose_base(tmp_path, "talk", "/inbox/two/talk.mp3")
    assert (a, b) == ("talk", "talk-2")
    assert outputs.choose_base(tmp_path, "talk", "/inbox/one/talk.mp3") == "talk"
    (tmp_path / "notes.txt").write_text("a file of the user's")
    assert outputs.choose_base(tmp_path, "notes", "/inbox/notes.m4a") == "notes-2"


SEGMENTS = [{"start": 0.0, "end": 2.5, "text": " Hello there."}, {"start": 3655.0, "end": 3661.25, "text": "General Kenobi!"}]


def test_srt_and_vtt_are_well_formed() -> None:
    srt = outputs.to_srt(SEGMENTS)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n01:00:55,000 --> 01:01:01,250\n")
    vtt = outputs.to_vtt(SEGMENTS)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n")
    for line in vtt.splitlines():
        if "-->" in line:
            assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", line)


def test_a_segmentless_model_still_yields_timed_cues() -> None:
    long_text = " ".join(f"Sentence number {i} says something." for i in range(12))
    cues = outputs.cues([{"start": 30.0, "end": 60.0, "text": long_text}])
    assert len(cues) > 1 and cues[0][0] == 30.0 and cues[-1][1] == pytest.approx(60.0)
    assert all(a < b for a, b, _ in cues) and all(len(t) <= 160 for _, _, t in cues)
    assert " ".join(t for _, _, t in cues) == long_text


def test_a_segment_missing_its_text_or_times_invents_no_cue() -> None:
    """A model's segment without text, start or end (a malformed answer) gives no subtitle with made-up words or
    times: no text is no cue, a missing start is the file's start, a missing end leaves nothing to show."""
    assert outputs.cues([{"start": 1.0, "end": 2.0}]) == []
    assert outputs.cues([{"end": 0.5, "text": "Early."}]) == [(0.0, 0.5, "Early.")]
    assert outputs.cues([{"text": "Timeless."}, {"start": 0.0, "text": "Endless."}]) == []


def test_write_transcript_writes_the_four_files(tmp_path: Path) -> None:
    paths = outputs.write_transcript(tmp_path, "a", {"source": "s", "text": "Hello there. General Kenobi!", "segments": SEGMENTS})
    assert sorted(Path(p).name for p in paths.values()) == ["a.json", "a.srt", "a.txt", "a.vtt"]
    assert Path(paths["txt"]).read_text() == "Hello there. General Kenobi!\n"
    assert json.loads(Path(paths["json"]).read_text())["source"] == "s"
    assert all(oct(os.stat(p).st_mode)[-3:] == "644" for p in paths.values())


@pytest.mark.parametrize("segments", [None, "missing"])
def test_a_transcript_without_segments_still_gets_its_four_files(tmp_path: Path, segments: object) -> None:
    """A document with only the model's text (its segments null or absent): the text file holds the text, the
    subtitles are valid and empty, the JSON is written last as usual."""
    doc = {"source": "s", "text": "Hello there."} | ({} if segments == "missing" else {"segments": segments})
    paths = outputs.write_transcript(tmp_path, "a", doc)
    assert Path(paths["txt"]).read_text() == "Hello there.\n"
    assert Path(paths["srt"]).read_text() == "" and Path(paths["vtt"]).read_text() == "WEBVTT\n\n"
    assert json.loads(Path(paths["json"]).read_text()) == doc


def test_a_rewrite_removes_temp_files_a_killed_writer_left(tmp_path: Path) -> None:
    stale = tmp_path / ".talk.txt.abc123.tmp"
    stale.write_text("half a transcr")
    old = os.stat(stale).st_mtime - 60
    os.utime(stale, (old, old))
    fresh = tmp_path / ".talk.txt.def456.tmp"  # a writer still between mkstemp and os.replace
    fresh.write_text("in progress")
    other = tmp_path / ".talk.srt.abc123.tmp"
    other.write_text("x")
    os.utime(other, (old, old))
    outputs.write_text_atomic(tmp_path / "talk.txt", "done")
    assert (tmp_path / "talk.txt").read_text() == "done"
    assert not stale.exists() and fresh.exists() and other.exists()
