"""The one parser for times a user types (`--since` of status and search): a span back from now, or a date.

A date or date-time without a zone is local time, as the person typing it reads a clock; `Z` or `+02:00` names
the zone. Spans are a number and a unit: `90s`, `30m`, `2h`, `7d`, `1w`.
"""

from __future__ import annotations

import datetime as dt
import re

from traxd.errors import UsageError

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
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
