"""traxd.costs: a local task's time and memory predicted from the machine's history (pure, table-driven)."""

from __future__ import annotations

import pytest

from traxd.costs import Cost, Prediction, abs_pct_error, over_limit, predict


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


def test_over_limit_names_the_prediction_and_the_limit() -> None:
    assert over_limit(None, 100.0, "x") is None
    assert over_limit(Prediction(1.0, 90.0, 3), 100.0, "x") is None
    reason = over_limit(Prediction(1.0, 2500.0, 3), 2048.0, "transcribe of talk.mp3")
    assert reason == ("transcribe of talk.mp3 is predicted to need 2500MB, over the 2048MB memory limit "
                      "(from 3 runs on this machine)")  # fmt: skip
    assert abs_pct_error(110.0, 100.0) == pytest.approx(10.0)
