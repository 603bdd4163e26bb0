"""The one parser for typed times: spans back from now, dates in local time unless they name a zone."""

from __future__ import annotations

import datetime as dt

import pytest

from traxd.errors import UsageError
from traxd.typedtime import parse_moment


@pytest.mark.parametrize(("text", "back"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800),
                                            ("1w", 604800), (" 1.5H ", 5400)])  # fmt: skip
def test_spans_count_back_from_now(text: str, back: float) -> None:
    assert parse_moment(text, 1_000_000.0) == 1_000_000.0 - back


def test_dates_are_local_unless_a_zone_is_given() -> None:
    local = dt.datetime(2026, 11, 30, 8, 0).timestamp()  # what the machine's clock reads as 08:00 that day
    assert parse_moment("2026-11-30T08:00", 0.0) == local
    assert parse_moment("2026-11-30", 0.0) == dt.datetime(2026, 11, 30).timestamp()
    assert parse_moment("2026-11-30T08:00Z", 0.0) == 1796025600.0
    assert parse_moment("2026-11-30T08:00+01:00", 0.0) == 1796025600.0 - 3600


def test_anything_else_is_a_usage_error_naming_the_option() -> None:
    with pytest.raises(UsageError, match="--until 'soon': give a span"):
        parse_moment("soon", 0.0, "--until")
