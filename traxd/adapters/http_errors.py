"""HTTP status classes and the one Retry-After parser, shared by every adapter that speaks HTTP (the API clients,
the media downloader, yt-dlp), which also record the status on the error they raise (`http_status`)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

# 409: OpenAI answers it for a request that collided with another (its SDK retries it); 425: "too early".
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
# An account's refusal (key, permission, balance): every task of the type would meet it, so the type pauses.
AUTH_STATUS = frozenset({401, 402, 403})


def is_retryable_status(status: int) -> bool:
    """408/409/425/429 and 5xx: the same request may succeed later."""
    return status in RETRYABLE_STATUS or status >= 500


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a response's headers: `retry-after-ms` (OpenAI's) first, then `retry-after`."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    return _parse_retry_after(headers.get("retry-after"), now)


def _parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from one Retry-After value: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(value: str | None) -> float | None:
    """A finite number, or None (absent, a date, garbage, inf/nan)."""
    try:
        number = float(value or "")
    except ValueError:
        return None
    return number if math.isfinite(number) else None
