"""Pure retry, rescue and release decisions, table-driven."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from traxd.queue.transitions import (
    RetryPolicy,
    decide_failure,
    decide_rescue,
    next_retry_at,
    stale_after,
)
from traxd.types import ErrorKind, Failure, Task, TaskState, TaskType

NOW = 1_000_000.0
POLICY = RetryPolicy()  # the daemon's defaults, as the README states them: 5 s, 20 s, 80 s … at most an hour, +≤25%


def task(attempts: int = 1, max_retries: int = 3, priority: int = 6) -> Task:
    return Task(1, TaskType.TRANSCRIBE, {}, TaskState.RUNNING, priority, attempts, max_retries, NOW, "me", NOW + 30,
                None, None, [], None, None, None, NOW, NOW, NOW, None)  # fmt: skip


class NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


class MaxJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(1, 5.0), (2, 20.0), (3, 80.0), (4, 320.0), (10, 3600.0)],
)
def test_backoff_is_exponential_and_capped(attempts: int, expected: float) -> None:
    assert next_retry_at(NOW, attempts, POLICY, NoJitter(), None) == NOW + expected


def test_jitter_adds_at_most_a_quarter() -> None:
    assert next_retry_at(NOW, 2, POLICY, MaxJitter(), None) == NOW + 20 * 1.25
    rng = random.Random(7)
    delays = {next_retry_at(NOW, 2, POLICY, rng, None) - NOW for _ in range(50)}
    assert all(20 <= d <= 25 for d in delays) and len(delays) > 10


@pytest.mark.parametrize("retry_after", [0.0, 3.0, 7200.0])
def test_retry_after_wins(retry_after: float) -> None:
    assert next_retry_at(NOW, 3, POLICY, NoJitter(), retry_after) == NOW + retry_after


def test_a_negative_retry_after_is_ignored_and_the_backoff_applies() -> None:
    assert next_retry_at(NOW, 2, POLICY, NoJitter(), -30.0) == NOW + 20.0


CASES = [
    # (failure kind, attempts, max_retries) -> (state, priority step, refund, pause scope)
    (ErrorKind.RETRYABLE, 1, 3, TaskState.QUEUED, 1, False, None),
    (ErrorKind.RETRYABLE, 3, 3, TaskState.QUEUED, 1, False, None),
    (ErrorKind.RETRYABLE, 4, 3, TaskState.FAILED, 0, False, None),
    (ErrorKind.RETRYABLE, 1, 0, TaskState.FAILED, 0, False, None),
    (ErrorKind.PERMANENT, 1, 3, TaskState.FAILED, 0, False, None),
    (ErrorKind.AUTH, 1, 3, TaskState.QUEUED, 0, True, "transcribe"),
    (ErrorKind.AUTH, 4, 3, TaskState.QUEUED, 0, True, "transcribe"),
    (ErrorKind.CANCELLED, 1, 3, TaskState.CANCELLED, 0, False, None),
]


@pytest.mark.parametrize(("kind", "attempts", "max_retries", "state", "step", "refund", "scope"), CASES)
def test_decide_failure_table(
    kind: ErrorKind, attempts: int, max_retries: int, state: TaskState, step: int, refund: bool, scope: str | None
) -> None:
    d = decide_failure(task(attempts, max_retries), Failure(kind, "boom"), NOW, POLICY, NoJitter())
    assert (d.state, d.priority_step, d.refund_attempt, d.pause_scope) == (state, step, refund, scope)
    assert d.error_kind is kind
    if state is TaskState.QUEUED and kind is ErrorKind.RETRYABLE:
        assert d.run_after == NOW + 5 * 4 ** (attempts - 1)


def test_exhausted_message_says_how_many_attempts() -> None:
    d = decide_failure(task(4, 3), Failure(ErrorKind.RETRYABLE, "HTTP 503"), NOW, POLICY, NoJitter())
    assert d.message == "gave up after 4 attempts: HTTP 503"


def test_retryable_with_retry_after_schedules_exactly_then() -> None:
    d = decide_failure(task(1), Failure(ErrorKind.RETRYABLE, "429", retry_after=42.0), NOW, POLICY, NoJitter())
    assert d.run_after == NOW + 42.0


def lost(n: int, other: int = 0) -> list[dict]:
    return [{"type": "RetryableError"}] * other + [{"type": "WorkerLost", "message": "worker died"}] * n


@pytest.mark.parametrize(("deaths_before", "other_errors", "state", "kind"), [
    (0, 0, TaskState.QUEUED, ErrorKind.RETRYABLE),
    (2, 0, TaskState.QUEUED, ErrorKind.RETRYABLE),
    (2, 3, TaskState.QUEUED, ErrorKind.RETRYABLE),  # a 429 and two kills are not three dead workers
    (3, 0, TaskState.FAILED, ErrorKind.POISON),
])  # fmt: skip
def test_rescue_requeues_until_the_task_is_poison(deaths_before: int, other_errors: int, state: TaskState,
                                                  kind: ErrorKind) -> None:  # fmt: skip
    t = replace(task(deaths_before + other_errors + 1, 3), errors=lost(deaths_before, other_errors))
    d = decide_rescue(t, NOW, "worker died")
    assert (d.state, d.error_kind, d.refund_attempt) == (state, kind, False)
    if state is TaskState.FAILED:
        assert "poison" in d.message and "4 times" in d.message


def test_a_rescue_counts_deaths_past_history_entries_it_cannot_read() -> None:
    t = replace(task(3, 3), errors=["an entry from an older version", *lost(1)])  # type: ignore[list-item]
    d = decide_rescue(t, NOW, "worker died")
    assert (d.state, d.run_after, d.priority_step) == (TaskState.QUEUED, NOW, 0)


def test_a_daemon_is_stale_after_a_lease_and_five_seconds_without_a_heartbeat() -> None:
    assert (stale_after(30.0), stale_after(2.0)) == (35.0, 7.0)  # status and the dashboard both use this rule
