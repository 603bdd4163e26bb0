"""The one parser for times a user types: `--since` of status and search (a span back from now, or a date), and
`--at` / `--not-before` of a job (a clock time, the next one to come, or a date).

A date or date-time without a zone is local time, as the person typing it reads a clock; `Z` or `+02:00` names
the zone. Spans are a number and a unit: `90s`, `30m`, `2h`, `7d`, `1w`.
"""

from __future__ import annotations

import datetime as dt
import re

from traxd.errors import UsageError

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_moment(text: str, now: float, option: str = "--since") -> float:
    """Epoch seconds of a span before `now` or of a date (local time unless it names a zone); UsageError otherwise."""
    span = _SPAN.match(text)
    if span:
        return now - float(span.group(1)) * _UNIT_SECONDS[span.group(2).lower()]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r}: give a span like 2h, 30m, 7d or a date like 2026-11-30T08:00") from None
    return when.timestamp()  # a naive datetime's timestamp() reads it in local time


def parse_start(text: str, now: float, option: str = "--at") -> float:
    """Epoch seconds a job may start: `02:00` is the next 02:00 local time (today if still ahead, else tomorrow),
    a date or date-time is that moment (local unless it names a zone); UsageError otherwise."""
    clock = _CLOCK.match(text)
    if clock is None:
        try:
            return dt.datetime.fromisoformat(text.strip()).timestamp()
        except ValueError:
            raise UsageError(f"{option} {text!r}: give a time like 02:00 or a date like 2026-11-30T08:00") from None
    hour, minute, second = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise UsageError(f"{option} {text!r}: no such time of day")
    return next_clock_time(now, hour, minute, second)


def next_clock_time(now: float, hour: int, minute: int, second: int = 0) -> float:
    """Epoch seconds when the local clock next shows hour:minute:second after `now`: today if still ahead, else
    tomorrow (a naive date-time's timestamp() reads it in local time, across a DST change too)."""
    today = dt.datetime.fromtimestamp(now).replace(hour=hour, minute=minute, second=second, microsecond=0)
    if today.timestamp() > now:
        return today.timestamp()
    return dt.datetime.combine(today.date() + dt.timedelta(days=1), today.time()).timestamp()
