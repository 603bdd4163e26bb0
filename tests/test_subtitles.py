"""Subtitles for models that return text only: cues timed from the audio's silences, each a readable length.

The recording is real speech: sentences synthesised with espeak-ng, joined with pauses by sox; the fake OpenAI
server answers text only (the `json` format), as gpt-transcribe and the gpt-4o transcribe models do.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import media
from tests.fakes.context import Ctx
from tests.fakes.openai_server import FakeOpenAI, Recorded
from traxd import outputs, timeline
from traxd.config import load_settings
from traxd.handlers.transcribe import Backends, transcribe
from traxd.timeline import place_text, speech_pieces, split_long

SENTENCES = [
    "The river runs under seven old bridges.",
    "In spring the market moves to the upper square.",
    "Boats carry fruit and letters from the hills.",
    "Children count the boats and wave to them.",
    "In the evening the lamps are lit along the water.",
    "The whole town walks slowly by the river.",
    "Every family still paints its own stone.",
    "Then the bells ring and everyone goes home.",
]
needs_speech = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                  reason="needs espeak-ng and sox: apt-get install -y espeak-ng sox")  # fmt: skip


class TextOnly:
    """The fake server's answer for each uploaded chunk: the sentences spoken in it, as text only.

    Chunks arrive in order, so each one starts where the previous ended; a sentence belongs to the chunk that
    holds its middle."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        self.spans, self.at = spans, 0.0

    def __call__(self, req: Recorded) -> dict[str, Any]:
        seconds = media.duration_of(req.file_bytes, Path(req.file_name or "x.ogg").suffix)
        start, self.at = self.at, self.at + seconds
        said = [t for t, (a, b) in zip(SENTENCES, self.spans) if start <= (a + b) / 2 < self.at]
        return {"text": " ".join(said), "segments": [], "usage": {"type": "duration", "seconds": int(seconds) + 1}}


def srt_cues(srt: str) -> list[tuple[float, float, str]]:
    out = []
    for block in srt.strip().split("\n\n"):
        _n, times, *text = block.splitlines()
        a, b = (_seconds(t) for t in times.split(" --> "))
        out.append((a, b, " ".join(text)))
    return out


def _seconds(stamp: str) -> float:
    h, m, s = re.split("[:]", stamp.replace(",", "."))
    return int(h) * 3600 + int(m) * 60 + float(s)


@needs_speech
@pytest.mark.parametrize("model", ["gpt-transcribe", "gpt-4o-mini-transcribe"])
def test_forty_seconds_with_seven_pauses_get_one_cue_per_sentence(tmp_path: Path, model: str) -> None:
    """Regression: this recording got two cues of 29 s and 11 s."""
    clip = tmp_path / "talk.wav"
    spans = media.spoken(clip, SENTENCES, gap=1.5, speed=130)
    assert 35.0 < spans[-1][1] < 45.0
    with FakeOpenAI(transcribe=TextOnly(spans)) as server:
        settings = load_settings({"home": tmp_path / "home", "openai_api_key": "sk-test", "openai_base_url":
                                  server.base_url, "transcribe_model": model}, env={})  # fmt: skip
        ctx = Ctx(settings).make({"path": str(clip)})
        result = transcribe(ctx, {"path": str(clip)}, Backends().get(ctx))
        assert all(c.fields["response_format"] == "json" for c in server.calls())
    cues = srt_cues(Path(result["outputs"]["srt"]).read_text())
    assert [t for _, _, t in cues] == SENTENCES
    pauses = [(a[1], b[0]) for a, b in itertools.pairwise(spans)]
    for (start, end, _), (said_from, said_to) in zip(cues, spans):
        assert end - start <= 7.0
        assert said_from - 0.3 <= start and end <= said_to + 0.3  # timed from the audio, not from the text
        assert not any(start < (p + q) / 2 < end for p, q in pauses)  # never across a pause
    vtt = Path(result["outputs"]["vtt"]).read_text()
    assert vtt.count(" --> ") == len(SENTENCES)
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    assert {s.get("timing") for s in doc["segments"]} == {"silences"}


# -- the pure parts -------------------------------------------------------------------------------


def test_pieces_are_cut_at_every_pause_and_clicks_are_dropped() -> None:
    silences = [(2.0, 3.0), (3.05, 3.2), (3.2, 4.5), (8.0, 8.2)]  # a 0.05 s click between two pauses
    assert speech_pieces(0.0, 10.0, silences) == [(0.0, 2.0), (4.5, 10.0)]  # 8.0-8.2 is too short to end one


def test_a_long_piece_is_cut_at_the_short_silence_nearest_its_middle() -> None:
    short = [(2.0, 2.2), (6.0, 6.2), (9.0, 9.25), (13.0, 13.2)]
    assert split_long((0.0, 16.0), short) == [(0.0, 6.0), (6.2, 9.0), (9.25, 16.0)]
    assert split_long((0.0, 16.0), []) == [(0.0, 16.0)]  # no silence: the cue maker splits it by text
    assert split_long((0.0, 6.5), short) == [(0.0, 6.5)]


def test_text_is_shared_by_duration_and_cut_at_a_near_sentence_end() -> None:
    text = "One two three four. Five six seven eight nine ten."
    placed = place_text(text, [(0.0, 2.0), (3.0, 6.0)])  # the even share would cut after "five"
    assert [t for _, t in placed] == ["One two three four.", "Five six seven eight nine ten."]
    assert place_text("Hi.", [(0.0, 1.0), (2.0, 3.0)]) == [((0.0, 1.0), "Hi.")]  # a piece without words is dropped
    assert place_text("", [(0.0, 1.0)]) == []


def test_a_cut_weighs_only_the_words_near_it_and_still_finds_the_one_a_full_scan_finds() -> None:
    """The cut search looks only around the ideal place (a full scan made long untimed segments quadratic): on
    random texts, paces, ideals and lower bounds it picks what weighing every word picks, ties included."""
    rng = random.Random(11)
    for _ in range(2_000):
        words = [rng.choice(["a", "word", "longer-word", "end.", "clause,", "x", "so;"]) for _ in range(rng.randint(1, 60))]
        ends, total = timeline._word_ends(words)
        pace = rng.choice([0.01, 0.5, 3.0, 15.0, 80.0, rng.uniform(0.1, 50.0)])
        ideal = rng.choice([rng.uniform(-5.0, total + 5.0), float(rng.choice(ends)), 0.0, float(total)])
        first = rng.randint(0, len(words))
        expected = _full_scan_cut(words, ends, ideal, pace, first)
        assert timeline._best_cut(words, ends, ideal, pace, first) == expected, (words, ideal, pace, first)


def _full_scan_cut(words: list[str], ends: list[int], ideal: float, pace: float, first: int) -> int:
    """The cut every word weighed (the search before it was bounded): the reference."""

    def cost(m: int) -> float:
        at = ends[m - 1] if m else 0
        return abs(at - ideal) / pace - (timeline._pause_after(words[m - 1]) if m else 0.0)

    return min(range(first, len(words) + 1), key=cost)


def test_a_long_cue_without_silences_or_words_is_split_by_text() -> None:
    text = "First part of a long answer. Second part of it. Third part here. And the fourth one ends it."
    cues = outputs.cues([{"start": 0.0, "end": 20.0, "text": text}])
    assert len(cues) >= 3 and all(b - a <= 7.0 for a, b, _ in cues)
    assert cues[0][2] == "First part of a long answer."  # cut at a sentence end near the even share
    assert " ".join(t for _, _, t in cues) == text and cues[0][0] == 0.0 and cues[-1][1] == 20.0


def test_a_long_segment_with_words_is_cut_between_them() -> None:
    words = [{"start": float(i), "end": i + 0.8, "word": f"w{i}"} for i in range(12)]
    cues = outputs.cues([{"start": 0.0, "end": 11.8, "text": " ".join(w["word"] for w in words), "words": words}])
    assert [(a, b) for a, b, _ in cues] == [(0.0, 6.8), (7.0, 11.8)]
    assert cues[0][2] == "w0 w1 w2 w3 w4 w5 w6"


def test_timed_words_are_cut_at_the_character_limit_and_a_cue_may_fill_it_exactly() -> None:
    """Fast speech: 40 words of 7 characters in 4 s fit the time limit but not the 160 characters of a cue. Each cue
    takes the words that fit, counting one space between them: 20 words (159 characters) per cue, not 19 or 21."""
    words = [{"start": i * 0.1, "end": i * 0.1 + 0.1, "word": f"word{i:03d}"} for i in range(40)]
    cues = outputs.cues([{"start": 0.0, "end": 4.0, "text": " ".join(w["word"] for w in words), "words": words}])
    assert [len(t.split()) for _, _, t in cues] == [20, 20] and len(cues[0][2]) == 159
    exact = [{"start": 0.0, "end": 1.0, "word": "x" * 79}, {"start": 1.0, "end": 2.0, "word": "y" * 80}]
    text = " ".join(w["word"] for w in exact)  # 160 characters: the limit itself is allowed
    long_seg = {"start": 0.0, "end": 8.0, "text": text, "words": [*exact, {"start": 7.0, "end": 8.0, "word": "z"}]}
    assert outputs.cues([{**long_seg, "text": text + " z"}])[0] == (0.0, 2.0, text)


def test_timed_words_spanning_exactly_the_time_limit_stay_one_cue() -> None:
    words = [{"start": 0.0, "end": 1.0, "word": "Hello"}, {"start": 6.0, "end": 7.0, "word": "there."},
             {"start": 7.0, "end": 7.5, "word": "Again."}]  # fmt: skip
    cues = outputs.cues([{"start": 0.0, "end": 7.5, "text": "Hello there. Again.", "words": words}])
    assert cues == [(0.0, 7.0, "Hello there."), (7.0, 7.5, "Again.")]


def test_a_timed_word_without_its_text_does_not_break_the_subtitles() -> None:
    """A malformed model answer (a timed word with no `word`) used to pass the spelling check and raise KeyError."""
    words = [{"start": 0.0, "end": 1.0, "word": "Hello"}, {"start": 7.0, "end": 8.0}]
    cues = outputs.cues([{"start": 0.0, "end": 8.0, "text": "Hello", "words": words}])
    assert cues == [(0.0, 8.0, "Hello")]


def test_words_that_no_longer_spell_the_text_are_not_used_for_cues() -> None:
    """A translated (or enhanced) copy of a segment keeps the original's words: its cues come from its own text."""
    words = [{"start": float(i), "end": i + 0.8, "word": f"w{i}"} for i in range(12)]
    translated = {"start": 0.0, "end": 11.8, "text": "Ein ganz anderer Text. Mit zwei Sätzen darin.", "words": words}
    cues = outputs.cues([translated])
    assert " ".join(t for _, _, t in cues) == translated["text"] and all(b - a <= 7.0 for a, b, _ in cues)


def test_a_text_only_segment_of_exactly_the_character_limit_stays_one_cue() -> None:
    text = " ".join([*["abcdefghi"] * 15, "abcdefghij"])  # 16 words and 15 spaces: 160 characters, the limit
    assert len(text) == 160
    assert outputs.cues([{"start": 2.0, "end": 6.0, "text": text}]) == [(2.0, 6.0, text)]


def test_a_text_only_segment_just_over_the_time_limit_is_cut_in_two_halves() -> None:
    """8 s of twelve equal words: two cues of 4 s (six words each) that tile the segment, not three of 2.7 s."""
    cues = outputs.cues([{"start": 0.0, "end": 8.0, "text": " ".join(["rain"] * 12)}])
    assert cues == [(0.0, 4.0, " ".join(["rain"] * 6)), (4.0, 8.0, " ".join(["rain"] * 6))]


def test_a_long_text_only_segment_is_cut_into_cues_well_under_the_character_limit() -> None:
    """300 characters spoken in 6 s (inside the time limit): three cues of about 100 characters, each on screen in
    proportion to its length and together covering the segment without a gap, rather than two nearly full cues."""
    text = " ".join(f"word{i:02d}" for i in range(43))
    cues = outputs.cues([{"start": 0.0, "end": 6.0, "text": text}])
    assert [len(t.split()) for _, _, t in cues] == [14, 15, 14] and " ".join(t for _, _, t in cues) == text
    assert cues[0][0] == 0.0 and cues[-1][1] == 6.0 and all(a[1] == b[0] for a, b in itertools.pairwise(cues))
    assert all(b - a == pytest.approx(6.0 * len(t) / 298) for a, b, t in cues)


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_a_text_only_segment_is_cut_at_a_sentence_end_a_second_from_the_even_share(offset: float) -> None:
    """The even cut of these 8 s falls mid-sentence; the sentence end 0.8 s of speech before it is where a viewer
    expects the cue to change. The same segment late in the recording is cut the same way, only later."""
    first = "Rain fell on the old town all the day."
    second = "Then the wind came down from the hills and the river rose"
    cues = outputs.cues([{"start": offset, "end": offset + 8.0, "text": f"{first} {second}"}])
    assert cues == [(offset, pytest.approx(offset + 3.2), first), (pytest.approx(offset + 3.2), offset + 8.0, second)]


def test_a_timed_word_holding_a_space_still_times_the_cues() -> None:
    """A model may keep a number ('3 000') or a name together as one timed word: the words still spell the text, so
    the long segment is cut between its timed words (the cues keep the silence between them), not by its text."""
    words = [{"start": float(i), "end": i + 0.8, "word": f"w{i}"} for i in range(12)]
    words[3]["word"] = " 3 000"
    text = " ".join(w["word"].strip() for w in words)
    cues = outputs.cues([{"start": 0.0, "end": 11.8, "text": text, "words": words}])
    assert cues == [(0.0, 6.8, "w0 w1 w2 3 000 w4 w5 w6"), (7.0, 11.8, "w7 w8 w9 w10 w11")]


def test_a_word_list_with_null_or_bare_strings_does_not_break_the_subtitles() -> None:
    """A malformed answer whose words are not timed objects: the segment is cut by its text, nothing raises."""
    text = "One sword in the stone. Two words on the wall."
    for words in ([None, {"start": 0.0, "end": 1.0, "word": "One"}], ["One", "sword"], [["word"]]):
        cues = outputs.cues([{"start": 0.0, "end": 9.0, "text": text, "words": words}])
        assert " ".join(t for _, _, t in cues) == text and cues[0][0] == 0.0 and cues[-1][1] == 9.0


@pytest.mark.parametrize(("url_chars", "first_cues"), [(152, ["see the https://"]), (153, ["see the", "https://"])])
def test_a_text_only_part_over_the_character_limit_is_cut_again_and_one_of_exactly_it_is_not(
        url_chars: int, first_cues: list[str]) -> None:  # fmt: skip
    """A dictated link is one long word, so the even share puts it in a part with the words before it. That part is
    cut again when it is over the 160 characters a cue may hold (the link alone, however long, is one cue); a part of
    exactly 160 characters stays one cue."""
    url = "https://example.org/" + "a" * (url_chars - 20)
    text = f"see the {url} and then we all walked home again"
    cues = outputs.cues([{"start": 0.0, "end": 6.0, "text": text}])
    assert [t[: len(want)] for (_, _, t), want in zip(cues, first_cues)] == first_cues
    assert len(cues) == len(first_cues) + 1 and cues[-1][2] == "and then we all walked home again"
    assert all(len(t) <= 160 or t == url for _, _, t in cues) and " ".join(t for _, _, t in cues) == text
    assert cues[0][0] == 0.0 and cues[-1][1] == 6.0
    assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(cues))  # one ends where the next begins


def test_a_text_only_segment_of_twice_the_time_limit_becomes_two_cues_of_exactly_the_limit() -> None:
    cues = outputs.cues([{"start": 0.0, "end": 14.0, "text": " ".join(["rain"] * 12)}])
    assert cues == [(0.0, 7.0, " ".join(["rain"] * 6)), (7.0, 14.0, " ".join(["rain"] * 6))]
