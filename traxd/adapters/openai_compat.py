"""The one client adapter for OpenAI-compatible APIs (OpenAI or a compatible server for transcription, DeepSeek
for the text stages): one way to build the SDK client, one translation of its errors into Trax's classes.

The SDK runs with `max_retries=0`: the queue is the one retry layer, so a failed call is never paid for twice by
hidden retries. Errors are classified by the SDK's exception type and the HTTP status (plus the structured
`code`/`param` of the error body), never by message text; Retry-After is read here, once.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import openai

from traxd.adapters.http_errors import AUTH_STATUS, is_retryable_status, retry_after
from traxd.errors import (
    AuthError,
    ModelGoneError,
    PayloadTooLargeError,
    PermanentError,
    RateLimitedError,
    RetryableError,
    TaskError,
)


@dataclass(frozen=True)
class Service:
    """How the errors of one API name it, its key and its model setting (the fix a user needs)."""

    name: str  # "the transcription server", "DeepSeek"
    key_env: str  # OPENAI_API_KEY
    model_env: str  # TRAX_TRANSCRIBE_MODEL
    model_hint: str  # a model that exists, suggested when the configured one does not


class Api:
    """One SDK client bound to a base URL (no SDK retries), with its errors translated on the way out."""

    def __init__(self, service: Service, api_key: str | None, base_url: str | None, timeout: float) -> None:
        self.service = service
        http = openai.DefaultHttpxClient(verify=tls_context())
        self.client = openai.OpenAI(api_key=api_key or "", base_url=base_url, max_retries=0, timeout=timeout,
                                    http_client=http)  # fmt: skip
        self.base_url = str(self.client.base_url).rstrip("/")

    @contextmanager
    def errors(self, model: str) -> Iterator[None]:
        """Run SDK calls inside; any SDK error leaves as a RetryableError, PermanentError or AuthError."""
        try:
            yield
        except openai.OpenAIError as exc:
            raise translate(exc, self.service, self.base_url, model) from None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate store, read once per process: each client would read it again (tens of ms of CPU), and the
    DeepSeek stages build a client per task. An SSLContext is safe to share between threads."""
    return httpx.create_ssl_context()


def translate(exc: openai.OpenAIError, service: Service, base_url: str, model: str) -> TaskError:
    """Map an SDK exception to a Trax error class by its type and status (never its text)."""
    if isinstance(exc, openai.APITimeoutError):
        return RetryableError(f"{service.name} timed out at {base_url}")
    if isinstance(exc, openai.APIConnectionError):
        return RetryableError(f"cannot reach {service.name} at {base_url} ({type(exc.__cause__ or exc).__name__})")
    if isinstance(exc, openai.APIStatusError):
        return from_status(exc, service, model)
    return RetryableError(f"{service.name} failed: {type(exc).__name__}")


def from_status(exc: openai.APIStatusError, service: Service, model: str) -> TaskError:
    """The error class of an HTTP error answer; the status rides along for the metrics, Retry-After when it may."""
    status, name = exc.status_code, service.name
    said = f"(HTTP {status}): {detail(exc)}"
    if model_gone(exc):
        return ModelGoneError(f"{name} has no model {model!r} {said}; set {service.model_env}={service.model_hint} "
                              "(or another model the server offers)", http_status=status)  # fmt: skip
    if exc.code == "insufficient_quota" or status == 402:
        what = "has insufficient balance" if status == 402 else "is out of quota"
        return AuthError(f"{name} says the account {what} {said}; top up to resume", http_status=status)
    if status in AUTH_STATUS:
        return AuthError(f"{name} refused the API key {said}; check {service.key_env}", http_status=status)
    if is_retryable_status(status):
        error = RateLimitedError if status == 429 else RetryableError
        return error(f"{name} busy or failing {said}", retry_after=retry_after(exc.response.headers), http_status=status)
    if status == 413:
        return PayloadTooLargeError(f"the upload is too large for {name} {said}", http_status=status)
    return PermanentError(f"{name} rejected the request {said}", http_status=status)


def model_gone(exc: openai.APIStatusError) -> bool:
    """True when the API says the model does not exist (its error code, or a 404 about the `model` parameter)."""
    return exc.code == "model_not_found" or (exc.status_code == 404 and exc.param == "model")


def detail(exc: openai.APIStatusError) -> str:
    """The server's own error message (the SDK hands over the body's `error` object), on one short line."""
    body = exc.body if isinstance(exc.body, Mapping) else {}
    message = body.get("message") if isinstance(body.get("message"), str) else None
    return " ".join((message or exc.response.reason_phrase or "no detail").split())[:300]
