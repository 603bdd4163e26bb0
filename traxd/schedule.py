"""Daily windows such as active hours ("22:00-07:00", local wall-clock time, crossing midnight allowed).

Pure functions of a window and a moment, so the pool's gate, a watch folder's window and a job's start time all
ask the same question the same way. Wall-clock minutes are compared, not UTC offsets: "22:00" is 22:00 on the
clock in both halves of a daylight-saving year.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from traxd.typedtime import next_clock_time

_TIME = r"([01]?\d|2[0-3]):([0-5]\d)"
_WINDOW = re.compile(rf"^\s*{_TIME}\s*-\s*{_TIME}\s*$")
DAY = 24 * 60


@dataclass(frozen=True)
class Window:
    """From `start` to `end`, in minutes after local midnight; `end` <= `start` means it ends the next day."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    @property
    def opens(self) -> str:
        """The opening time as HH:MM."""
        return _hhmm(self.start)


def parse_window(text: str) -> Window:
    """"22:00-07:00" -> Window (ValueError for anything else, or an empty window such as "08:00-08:00")."""
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a window like 22:00-07:00 (HH:MM-HH:MM, local time)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    window = Window(h1 * 60 + m1, h2 * 60 + m2)
    if window.start == window.end:
        raise ValueError(f"{text!r} opens and closes at the same minute")
    return window


def is_open(window: Window, moment: dt.datetime) -> bool:
    """Pure: whether the wall-clock time of `moment` lies in the window (start inclusive, end exclusive)."""
    minute = moment.hour * 60 + moment.minute
    if window.start < window.end:
        return window.start <= minute < window.end
    return minute >= window.start or minute < window.end


def next_open(window: Window, now: float) -> float:
    """The epoch second the window is next open at: `now` itself while it is open, else its next opening."""
    if is_open(window, dt.datetime.fromtimestamp(now)):
        return now
    return next_clock_time(now, window.start // 60, window.start % 60)


def closed_reason(window: Window, now: float) -> str | None:
    """Why nothing starts now ("outside active hours 22:00-07:00 (opens 22:00)"), or None inside the window."""
    if is_open(window, dt.datetime.fromtimestamp(now)):
        return None
    return f"outside active hours {window} (opens {window.opens})"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
