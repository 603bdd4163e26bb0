"""traxd.costs: a local task's time and memory predicted from the machine's history (pure, table-driven)."""

from __future__ import annotations

import pytest

from traxd.costs import Cost, Prediction, abs_pct_error, media_seconds, memory_wait, predict


def test_a_linear_history_is_fitted_exactly() -> None:
    history = [Cost(s, 2.0 + 0.05 * s, 200.0 + 1.0 * s) for s in (10.0, 60.0, 120.0)]
    guess = predict(history, 240.0)
    assert guess is not None and guess.runs == 3
    assert guess.wall_seconds == pytest.approx(14.0) and guess.peak_rss_mb == pytest.approx(440.0)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], None),
        ([Cost(60.0, 6.0, 400.0)], None),  # one run tells too little
        # One length seen: time per media second, and the largest peak (cautious on memory).
        ([Cost(60.0, 6.0, 400.0), Cost(60.0, 8.0, 420.0)], Prediction(7.0, 420.0, 2)),
        # A negative slope (noise) falls back the same way.
        ([Cost(30.0, 9.0, 500.0), Cost(60.0, 6.0, 400.0)], Prediction(10.0, 500.0, 2)),
    ],
)
def test_thin_or_noisy_history(history: list[Cost], expected: Prediction | None) -> None:
    assert predict(history, 60.0) == expected


@pytest.mark.parametrize(
    ("prediction", "rss_mb", "running", "waits"),
    [
        (None, 1900.0, 3, False),  # no history: predict nothing, never block
        (Prediction(1.0, 100.0, 3), 1900.0, 3, False),  # 2000 MB fits 2048
        (Prediction(1.0, 250.0, 3), 1900.0, 3, True),  # 2150 MB does not: wait for the others to finish
        (Prediction(1.0, 3000.0, 3), 100.0, 0, False),  # never fits, but nothing else runs: run it (no deadlock)
    ],
)
def test_memory_gate_decision(prediction: Prediction | None, rss_mb: float, running: int, waits: bool) -> None:
    assert (memory_wait(prediction, rss_mb, 2048.0, running, "job 12") is not None) is waits


def test_memory_wait_says_what_waits_and_why() -> None:
    reason = memory_wait(Prediction(1.0, 250.0, 3), 1900.0, 2048.0, 1, "job 12")
    assert reason == "waiting: predicted 2.1 GB (1.9 GB now + 0.2 GB) for job 12 does not fit the 2.0 GB limit"


@pytest.mark.parametrize(
    ("payload", "seconds"),
    [
        ({"duration": 61.5, "chunks": [{"duration": 1.0}]}, 61.5),
        ({"chunks": [{"duration": 30.0}, {"duration": 12.5}]}, 42.5),
        ({"path": "/in/a.wav"}, None),  # preprocessed inline: the length is not known before it runs
    ],
)
def test_media_seconds_of_a_queued_payload(payload: dict[str, object], seconds: float | None) -> None:
    assert media_seconds(payload) == seconds


def test_abs_pct_error() -> None:
    assert abs_pct_error(110.0, 100.0) == pytest.approx(10.0)
