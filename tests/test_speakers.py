"""Pure speaker logic: merging turns into segments and words, talk time, name matching, DER, and the outputs."""

from __future__ import annotations

from traxd import outputs
from traxd.speakers import (
    Diarization,
    Turn,
    assign,
    der,
    match_names,
    relabel,
    talk_time,
)

TURNS = [Turn(0.0, 4.0, "A"), Turn(4.0, 10.0, "B")]


def test_relabel_names_speakers_in_order_of_first_appearance() -> None:
    d = relabel(Diarization([Turn(5, 6, "SPEAKER_01"), Turn(0, 2, "SPEAKER_02")], {"SPEAKER_01": [1.0]}))
    assert [t.speaker for t in d.turns] == ["A", "B"]
    assert d.voices == {"B": [1.0]}


def test_a_segment_inside_one_turn_gets_that_speaker() -> None:
    out = assign([{"start": 4.5, "end": 9.0, "text": "hello there"}], TURNS)
    assert out == [{"start": 4.5, "end": 9.0, "text": "hello there", "speaker": "B"}]


def test_a_segment_spanning_a_change_is_split_with_its_words_shared_by_time() -> None:
    seg = {"start": 2.0, "end": 8.0, "text": "one two three four five six", "avg_logprob": -0.1}
    out = assign([seg], TURNS)
    assert [(s["speaker"], s["start"], s["end"], s["text"]) for s in out] == [
        ("A", 2.0, 4.0, "one two"), ("B", 4.0, 8.0, "three four five six")]  # fmt: skip
    assert all(s["avg_logprob"] == -0.1 for s in out)


def test_word_timings_decide_and_every_word_carries_its_speaker() -> None:
    words = [{"start": 3.0, "end": 3.5, "word": "yes"}, {"start": 3.6, "end": 3.9, "word": "sir."},
             {"start": 4.2, "end": 4.6, "word": "Thank"}, {"start": 4.6, "end": 5.0, "word": "you."}]  # fmt: skip
    out = assign([{"start": 3.0, "end": 5.0, "text": "yes sir. Thank you.", "words": words}], TURNS)
    assert [(s["speaker"], s["text"], s["start"], s["end"]) for s in out] == [
        ("A", "yes sir.", 3.0, 3.9), ("B", "Thank you.", 4.2, 5.0)]  # fmt: skip
    assert [w["speaker"] for s in out for w in s["words"]] == ["A", "A", "B", "B"]


def test_a_segment_in_silence_goes_to_the_nearest_turn() -> None:
    assert assign([{"start": 11.0, "end": 12.0, "text": "late"}], TURNS)[0]["speaker"] == "B"


def test_talk_time_longest_first() -> None:
    assert talk_time([Turn(0, 1, "A"), Turn(1, 4, "B"), Turn(4, 5.5, "A")]) == {"B": 3.0, "A": 2.5}


def test_names_only_above_the_threshold_and_each_name_once() -> None:
    voices = {"A": [1.0, 0.0], "B": [0.9, 0.1], "C": [0.0, 1.0]}
    result = match_names(voices, {"Ann": [1.0, 0.05], "Bob": [-1.0, 0.0]}, threshold=0.6)
    assert result["A"][0] == "Ann" and result["A"][1] > 0.99
    assert result["B"][0] is None  # Ann is taken by the closer voice
    assert result["C"] == (None, result["C"][1]) and result["C"][1] < 0.6


def test_der_is_zero_for_a_perfect_answer_whatever_the_labels() -> None:
    assert der(TURNS, [Turn(0.0, 4.0, "x"), Turn(4.0, 10.0, "y")]) == 0.0


def test_der_counts_confusion_miss_and_false_alarm() -> None:
    # Scored (outside the 0.25 s collars): A 3.5 s, B 5.5 s.
    assert abs(der(TURNS, [Turn(0.0, 10.0, "x")]) - 3.5 / 9.0) < 0.01  # one label: A's time is confused
    assert abs(der(TURNS, [Turn(0.0, 4.0, "x")]) - 5.5 / 9.0) < 0.01  # B missed
    assert abs(der(TURNS, [*TURNS, Turn(12.0, 14.0, "B")]) - 2.0 / 9.0) < 0.01  # 2 s false alarm


def test_outputs_show_speakers_in_every_format() -> None:
    segs = [{"start": 0.0, "end": 2.0, "text": "Hello.", "speaker": "A"},
            {"start": 2.0, "end": 3.0, "text": "How are you?", "speaker": "A"},
            {"start": 3.5, "end": 5.0, "text": "Fine, thanks.", "speaker": "Ann <guest>"}]  # fmt: skip
    assert outputs.to_txt(segs, "Hello. How are you? Fine, thanks.") == (
        "A: Hello. How are you?\nAnn <guest>: Fine, thanks.\n")  # fmt: skip
    srt = outputs.to_srt(segs)
    assert "00:00:00,000 --> 00:00:02,000\nA: Hello.\n" in srt and "Ann <guest>: Fine, thanks." in srt
    vtt = outputs.to_vtt(segs)
    assert "<v A>Hello.\n" in vtt and "<v Ann guest>Fine, thanks.\n" in vtt


def test_outputs_without_speakers_are_unchanged() -> None:
    segs = [{"start": 0.0, "end": 2.0, "text": "Hello."}]
    assert outputs.to_txt(segs, "Hello.") == "Hello.\n"
    assert "<v" not in outputs.to_vtt(segs) and "\nHello.\n" in outputs.to_srt(segs)


def test_the_default_name_threshold_is_the_measured_one() -> None:
    """0.75 (benchmarks/voiceprints.py): different real people scored up to 0.666, the same person from 0.860."""
    from pathlib import Path

    from traxd.config import Settings
    from traxd.speakers import NAME_THRESHOLD, cosine

    assert Settings(home=Path("/nonexistent")).speaker_threshold == NAME_THRESHOLD == 0.75
    # Two prints at cosine 0.72, which 0.7 named as one person, are no longer a match.
    ann, other = [1.0, 0.0], [0.72, (1 - 0.72**2) ** 0.5]
    assert round(cosine(ann, other), 3) == 0.72
    assert match_names({"A": other}, {"Ann": ann})["A"][0] is None
