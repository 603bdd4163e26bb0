"""Quality metrics: confidence, Whisper-threshold warnings, per-file weighting and batch aggregation."""

from __future__ import annotations

import math

import pytest

from traxd import quality


def seg(start: float, end: float, lp: float | None = -0.1, cr: float = 1.2, ns: float = 0.01, text: str = "words here") -> dict:
    return {"start": start, "end": end, "text": text, "avg_logprob": lp, "compression_ratio": cr, "no_speech_prob": ns}


@pytest.mark.parametrize(
    ("segment", "warnings"),
    [
        (seg(0, 1), []),
        (seg(0, 1, lp=-1.2), ["low confidence"]),
        (seg(0, 1, lp=-1.0), []),
        (seg(0, 1, cr=2.5), ["repetitive text (possible hallucination)"]),
        (seg(0, 1, lp=-1.5, ns=0.7), ["probably silence or noise"]),
        (seg(0, 1, lp=-0.5, ns=0.9), []),  # Whisper needs both: likely silence AND low logprob
        ({"start": 0, "end": 1, "text": "no stats"}, []),
        ({**seg(0, 1, lp=-0.5), "temperature": 0.2}, ["low confidence"]),  # accepted only after Whisper's fallback
        ({**seg(0, 1, lp=-0.5), "temperature": 0.0}, []),
    ],
)
def test_segment_warnings(segment: dict, warnings: list[str]) -> None:
    assert quality.segment_warnings(segment) == warnings


def test_confidence_is_exp_of_avg_logprob() -> None:
    assert quality.confidence(-0.5) == pytest.approx(math.exp(-0.5), abs=1e-4)
    assert quality.confidence(None) is None


def test_file_confidence_is_duration_weighted() -> None:
    q = quality.file_quality([seg(0, 9, lp=0.0), seg(9, 10, lp=math.log(0.5))])
    assert q["confidence"] == pytest.approx(0.95, abs=1e-3)
    assert q["warnings"] == [] and q["segments"] == 2


def test_file_warnings_are_grouped_per_kind() -> None:
    q = quality.file_quality([seg(0, 1, lp=-2), seg(65, 70, lp=-3), seg(70, 80, cr=3.0)])
    assert q["warnings"] == ["low confidence: 2 segments (at 0:00, 1:05)", "repetitive text (possible hallucination): 1 segment (at 1:10)"]
    assert q["flagged_segments"] == 3


def test_no_words_in_a_long_file_is_a_warning() -> None:
    assert quality.file_quality([], duration=5.0)["warnings"] == ["low confidence: no speech recognised"]
    assert quality.file_quality([], duration=0.5)["warnings"] == []


def test_models_without_statistics_have_no_confidence() -> None:
    q = quality.file_quality([{"start": 0, "end": 30, "text": "plain text"}], 30)
    assert q["confidence"] is None and q["warnings"] == []




def test_segment_confidence_comes_from_its_words_where_it_has_them() -> None:
    window = -0.2  # local Whisper: every segment of one 30 s window gets the same avg_logprob
    sure = {**seg(0, 2, lp=window), "words": [{"start": 0, "end": 1, "word": "a", "probability": 0.9},
                                             {"start": 1, "end": 2, "word": "b", "probability": 0.7}]}  # fmt: skip
    unsure = {**seg(2, 4, lp=window), "words": [{"start": 2, "end": 4, "word": "c", "probability": 0.2}]}
    assert quality.segment_confidence(sure) == pytest.approx(0.8)
    assert quality.segment_confidence(unsure) == pytest.approx(0.2)
    assert quality.segment_confidence(seg(0, 1, lp=window)) == quality.confidence(window)  # no words: the logprob
    assert quality.segment_warnings(sure) == [] and quality.segment_warnings(unsure) == ["low confidence"]
    assert quality.file_quality([sure, unsure])["confidence"] == pytest.approx(0.5)
    timed_only = {**seg(0, 1), "words": [{"start": 0, "end": 1, "word": "a"}]}  # API words carry no probability
    assert quality.segment_confidence(timed_only) == quality.confidence(-0.1)
