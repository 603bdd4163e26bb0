"""Pure state transitions of a task: what a failure, a rescue or a release does to it."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from traxd.types import PAID_KEY, ErrorKind, Failure, Lease, Task, TaskState


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: base * factor**(attempt-1), capped, plus up to `jitter` of itself."""

    base_seconds: float = 5.0
    factor: float = 4.0
    max_seconds: float = 3600.0
    jitter: float = 0.25


@dataclass(frozen=True)
class Decision:
    """What to write for a task that stopped running without succeeding."""

    state: TaskState
    error_kind: ErrorKind
    message: str
    run_after: float | None = None
    priority_step: int = 0
    refund_attempt: bool = False
    pause_scope: str | None = None
    http_status: int | None = None  # kept in the error history entry (the metrics count API errors by it)


def stale_after(lease_seconds: float) -> float:
    """Seconds without a heartbeat after which a daemon is shown stale: a lease, plus slack for a slow beat."""
    return lease_seconds + 5.0


def next_retry_at(now: float, attempts: int, policy: RetryPolicy, rng: random.Random, retry_after: float | None) -> float:
    """When a retryable failure may run again; a server's Retry-After wins when it is given."""
    if retry_after is not None and retry_after >= 0:
        return now + retry_after
    delay = min(policy.max_seconds, policy.base_seconds * policy.factor ** max(0, attempts - 1))
    return now + delay + rng.uniform(0, delay * policy.jitter)


def retries_left(task: Task) -> bool:
    """True while the task may be tried again (attempts are counted at claim)."""
    return task.attempts <= task.max_retries


def decide_failure(task: Task, failure: Failure, now: float, policy: RetryPolicy, rng: random.Random) -> Decision:
    """Requeue with backoff, fail for good, or pause the task type (auth); the API's status rides along."""
    return replace(_decide(task, failure, now, policy, rng), http_status=failure.http_status)


def _decide(task: Task, failure: Failure, now: float, policy: RetryPolicy, rng: random.Random) -> Decision:
    if failure.kind is ErrorKind.AUTH:
        # Not the task's fault: give the attempt back and stop the type until a human fixes the key.
        return Decision(TaskState.QUEUED, ErrorKind.AUTH, failure.message, now, 0, True, task.type.value)
    if failure.kind is ErrorKind.CANCELLED:
        return Decision(TaskState.CANCELLED, ErrorKind.CANCELLED, failure.message)
    if failure.kind is ErrorKind.RETRYABLE and retries_left(task):
        when = next_retry_at(now, task.attempts, policy, rng, failure.retry_after)
        return Decision(TaskState.QUEUED, ErrorKind.RETRYABLE, failure.message, when, 1)
    if failure.kind is ErrorKind.RETRYABLE:
        message = f"gave up after {task.attempts} attempts: {failure.message}"
        return Decision(TaskState.FAILED, ErrorKind.RETRYABLE, message)
    return Decision(TaskState.FAILED, failure.kind, failure.message)


WORKER_LOST = "WorkerLost"  # the error type a rescue records in the task's error history


def decide_rescue(task: Task, now: float, reason: str) -> Decision:
    """A task whose worker vanished: run it again, unless it has now killed max_retries+1 workers (poison).

    Deaths are counted from the error history, not from attempts: a 429 or a timeout before a kill -9 is not a
    dead worker (the e2e run poisoned a task after one 429 and three daemon kills).
    """
    deaths = 1 + sum(1 for e in task.errors if isinstance(e, dict) and e.get("type") == WORKER_LOST)
    if deaths <= task.max_retries:
        return Decision(TaskState.QUEUED, ErrorKind.RETRYABLE, reason, now, 0)
    message = f"poison task: its worker died {deaths} times ({reason})"
    return Decision(TaskState.FAILED, ErrorKind.POISON, message)


class Offer:
    """What became of a spooled paid result offered to its task (offer_verdict)."""

    OURS = "committed"  # the lease was still the spooling run's: written as its checkpoint
    OFFERED = "offered"  # the task moved on, but no later attempt has paid yet: written as the checkpoint it resumes
    DROPPED = "dropped"  # a later attempt paid already (or the task finished): ours would only go backwards
    GONE = "gone"  # the task is deleted, or the id is now another task: the spool cannot be applied


def offer_verdict(lease: Lease, task_type: str, row: OfferRow | None) -> str:
    """Fencing for a spooled paid result: commit it, offer it to whoever resumes the task, drop it, or give up."""
    if row is None or row.type != task_type:
        return Offer.GONE
    if row.state == TaskState.RUNNING.value and row.lease_owner == lease.owner and row.attempts == lease.attempt:
        return Offer.OURS
    paid_by = (row.result or {}).get(PAID_KEY)
    later_paid = isinstance(paid_by, int) and paid_by > lease.attempt
    if later_paid or TaskState(row.state).terminal:
        return Offer.DROPPED
    return Offer.OFFERED


@dataclass(frozen=True)
class OfferRow:
    """What offer_verdict reads of the task row (locked for the write that follows)."""

    type: str
    state: str
    lease_owner: str | None
    attempts: int
    result: dict[str, object] | None
