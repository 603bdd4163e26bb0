"""The plain progress line's exact format and the duration-weighted ETA."""

from __future__ import annotations

import pytest

from traxd.progress import (
    BatchProgress,
    JobWork,
    estimate_eta,
    format_eta,
    media_weights,
    progress_due,
    progress_line,
)


def test_progress_line_exact_format() -> None:
    p = BatchProgress(total_tasks=100, completed_tasks=45, failed_tasks=2, active_tasks=8,
                      memory_usage_mb=512.34, cpu_usage_percent=75.21, eta_seconds=185)  # fmt: skip
    assert progress_line(p) == (
        "Progress: 45/100 (45.0% success) | Active: 8 | Failed: 2 | Memory: 512.3MB | CPU: 75.2% | ETA: 3m05s"
    )


def test_progress_line_unknown_eta_and_pause() -> None:
    p = BatchProgress(total_tasks=3, paused_reason="memory 900MB over limit 512MB")
    assert progress_line(p) == (
        "Progress: 0/3 (0.0% success) | Active: 0 | Failed: 0 | Memory: 0.0MB | CPU: 0.0% | ETA: -- "
        "| Paused: memory 900MB over limit 512MB"
    )


def test_rates() -> None:
    p = BatchProgress(total_tasks=8, completed_tasks=6, failed_tasks=2)
    assert (p.success_rate, p.failure_rate) == (75.0, 25.0)
    assert BatchProgress().success_rate == 0.0


def test_eta_weights_by_media_duration_not_count() -> None:
    # Four finished 10-minute files took 120 s each: 0.2 s of work per media second.
    done = [JobWork(True, 120.0, 600.0, finished_at=i) for i in range(4)]
    # Left: one 60-minute file and one 1-minute file. By count the ETA would be 2 x 120 s.
    left = [JobWork(False, media_seconds=3600.0), JobWork(False, media_seconds=60.0)]
    assert estimate_eta(done + left, slots=1) == pytest.approx((3600 + 60) * 0.2)
    assert estimate_eta(done + left, slots=2) == pytest.approx((3600 + 60) * 0.2 / 2)


def test_eta_guesses_unknown_durations_from_size() -> None:
    done = [JobWork(True, 10.0, 100.0, size_bytes=1000, finished_at=1)]
    left = [JobWork(False, size_bytes=5000)]  # 5x the bytes: about 500 media seconds
    assert media_weights(done + left) == [100.0, 500.0]
    assert estimate_eta(done + left, slots=4) == pytest.approx(50.0)


def test_eta_uses_sizes_when_no_duration_is_known_and_counts_last() -> None:
    assert media_weights([JobWork(True, size_bytes=10), JobWork(False, size_bytes=30)]) == [10.0, 30.0]
    assert media_weights([JobWork(True), JobWork(False, size_bytes=30)]) == [1.0, 1.0]


def test_eta_unknown_until_something_finished_and_zero_at_the_end() -> None:
    assert estimate_eta([JobWork(False, media_seconds=5.0)], slots=2) is None
    assert estimate_eta([JobWork(True, 1.0, 5.0)], slots=2) == 0.0


def test_moving_window_forgets_old_samples() -> None:
    # A slow start, then the cache is warm: with a window of 2 only the two latest finished jobs set the cost.
    done = [JobWork(True, 100.0, 10.0, finished_at=1.0), JobWork(True, 1.0, 10.0, finished_at=2.0),
            JobWork(True, 1.0, 10.0, finished_at=3.0)]  # fmt: skip
    left = [JobWork(False, media_seconds=10.0) for _ in range(5)]
    assert estimate_eta(done + left, slots=1, window=2) == pytest.approx(5.0)
    assert estimate_eta(done + left, slots=1, window=3) == pytest.approx(50 * 102 / 30)


def test_progress_due_and_format_eta() -> None:
    assert progress_due(None, 0.0, 5.0)
    assert not progress_due(10.0, 14.9, 5.0)
    assert progress_due(10.0, 15.0, 5.0)
    assert [format_eta(x) for x in (None, 42, 185, 3720)] == ["--", "42s", "3m05s", "1h02m"]


def test_eta_uses_the_prediction_of_queued_local_work() -> None:
    """A queued job with a prediction counts for it; the others for the rate seen; none seen and all predicted: known."""
    done = JobWork(True, 10.0, 100.0, finished_at=1.0)  # 0.1 wall s per media s
    assert estimate_eta([done, JobWork(False, media_seconds=100.0, predicted_seconds=30.0)], 1) == pytest.approx(30.0)
    assert estimate_eta([done, JobWork(False, media_seconds=100.0)], 1) == pytest.approx(10.0)
    assert estimate_eta([JobWork(False, media_seconds=60.0, predicted_seconds=8.0)], 1) == pytest.approx(8.0)
    assert estimate_eta([JobWork(False, media_seconds=60.0, predicted_seconds=8.0), JobWork(False, media_seconds=60.0)], 2) is None
