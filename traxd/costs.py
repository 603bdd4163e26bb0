"""Pure: a local task's time and peak memory predicted from this machine's history of finished ones.

Per (host, task type, model), wall seconds and peak RSS are each fitted as `a + b * media seconds` by least squares
over the recent history (a model load and the decoded audio make both grow with the length, plus a fixed part).
With one length seen, or a fit whose slope comes out negative (noise on a few points), the prediction falls back
to the mean ratio per media second for time and the largest peak seen for memory: cautious where data is thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_HISTORY = 2  # finished runs needed before anything is predicted


@dataclass(frozen=True)
class Cost:
    """One finished run: its media seconds, wall seconds and the process's peak RSS in MB."""

    seconds_audio: float
    wall_seconds: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Prediction:
    """What a run of `seconds_audio` is expected to take, and from how many past runs."""

    wall_seconds: float
    peak_rss_mb: float
    runs: int


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares (intercept, slope), or None when the xs do not spread or the slope is negative."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 1e-9:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return (my - slope * mx, slope) if slope >= 0 else None


def predict(history: Sequence[Cost], seconds_audio: float) -> Prediction | None:
    """The expected wall seconds and peak RSS of a run of `seconds_audio`, or None with too little history."""
    runs = [c for c in history if c.seconds_audio > 0 and c.wall_seconds >= 0]
    if len(runs) < MIN_HISTORY:
        return None
    xs = [c.seconds_audio for c in runs]
    wall = _line(xs, [c.wall_seconds for c in runs])
    rss = _line(xs, [c.peak_rss_mb for c in runs])
    ratio = sum(c.wall_seconds for c in runs) / sum(xs)
    seconds = wall[0] + wall[1] * seconds_audio if wall else ratio * seconds_audio
    peak = rss[0] + rss[1] * seconds_audio if rss else max(c.peak_rss_mb for c in runs)
    return Prediction(max(0.0, seconds), max(0.0, peak), len(runs))


def memory_wait(prediction: Prediction | None, rss_mb: float, limit_mb: float, running: int, what: str) -> str | None:
    """Why a run predicted so waits: the process tree's RSS now plus its predicted growth would pass the limit.

    None (claim it) without a prediction, or when nothing else runs: a run that cannot fit even alone would
    otherwise wait forever, unseen, and a deadlock is worse than a run over the limit (the pool never kills one).
    """
    if prediction is None or limit_mb <= 0 or running == 0:
        return None
    need = rss_mb + prediction.peak_rss_mb
    if need <= limit_mb:
        return None
    return (f"waiting: predicted {need / 1024:.1f} GB ({rss_mb / 1024:.1f} GB now + {prediction.peak_rss_mb / 1024:.1f} GB) "
            f"for {what} does not fit the {limit_mb / 1024:.1f} GB limit")  # fmt: skip


def media_seconds(payload: dict[str, Any]) -> float | None:
    """The media seconds a queued task will work on: its `duration`, else its chunks' (None when not known yet)."""
    duration = payload.get("duration")
    if isinstance(duration, (int, float)) and duration > 0:
        return float(duration)
    chunks = payload.get("chunks")
    if isinstance(chunks, list):
        total = sum(float(c.get("duration") or 0) for c in chunks if isinstance(c, dict))
        return total if total > 0 else None
    return None


def abs_pct_error(predicted: float, actual: float) -> float:
    """|predicted - actual| as a percentage of actual."""
    return 100.0 * abs(predicted - actual) / actual if actual else 0.0
