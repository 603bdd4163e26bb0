"""Webhook POSTs with httpx over the downloads' checked-connect transport (the same address rules, one transport).

Errors leave classified: network errors, timeouts, 408/429/5xx retryable (Retry-After honoured); a refused
address, a redirect (not followed: it could lead anywhere) and other 4xx permanent.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from traxd.adapters.download import (
    USER_AGENT,
    PinnedBackend,
    PinnedTransport,
    Resolver,
    check_url,
    resolve_host,
    transport_failures,
)
from traxd.adapters.http_errors import is_retryable_status, retry_after
from traxd.errors import PermanentError, RetryableError

HOOK_HINT = "set allow_private = true on the hook, or TRAX_WEBHOOK_ALLOW_PRIVATE=1, to allow them"


@dataclass(frozen=True)
class Answer:
    """What a receiver answered: its status and the start of its reply."""

    status: int
    text: str


def post(url: str, body: bytes, headers: dict[str, str], allow_private: bool, timeout: float = 15.0,
         resolve: Resolver = resolve_host) -> Answer:  # fmt: skip
    """POST `body` to `url`; a 2xx answer is returned, anything else raised as a TaskError."""
    check_url(url, allow_private, resolve, HOOK_HINT)
    transport = PinnedTransport(PinnedBackend(allow_private, resolve, HOOK_HINT))
    sent = {"user-agent": USER_AGENT, "content-type": "application/json", **headers}
    with transport_failures("the webhook"), httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                                         trust_env=False, transport=transport) as client:  # fmt: skip
        response = client.post(url, content=body, headers=sent)
    return _answer(response)


def _answer(response: httpx.Response) -> Answer:
    status = response.status_code
    text = " ".join(response.text.split())[:120]
    if 200 <= status < 300:
        return Answer(status, text)
    message = f"webhook answered HTTP {status} {response.reason_phrase or ''}".strip()
    if is_retryable_status(status):
        raise RetryableError(message, retry_after=retry_after(response.headers), http_status=status)
    if response.is_redirect:
        message += " (redirects are not followed)"
    raise PermanentError(message, http_status=status)
