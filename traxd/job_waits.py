"""Pure: why a queued job is not started yet, in the words status, list and the dashboard show."""

from __future__ import annotations

import time

from traxd.types import JobWait


def when(moment: float) -> str:
    """A local date and time as a person reads it: `2026-12-08 02:00` (seconds only when there are some)."""
    local = time.localtime(moment)
    return time.strftime("%Y-%m-%d %H:%M:%S" if local.tm_sec else "%Y-%m-%d %H:%M", local)


def wait_reason(wait: JobWait | None, now: float) -> str | None:
    """`scheduled for …`, `waiting for job 12 (failed)`, both joined by `; `, or None when nothing holds it."""
    if wait is None:
        return None
    parts = []
    if wait.not_before is not None and wait.not_before > now:
        parts.append(f"scheduled for {when(wait.not_before)}")
    if wait.after:
        jobs = ", ".join(f"{job} ({state})" for job, state in wait.after)
        parts.append(f"waiting for job{'s' if len(wait.after) > 1 else ''} {jobs}")
    return "; ".join(parts) or None
