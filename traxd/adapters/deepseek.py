"""DeepSeek chat completions through the openai SDK, with its errors translated into Trax's classes by type.

No SDK retries (`max_retries=0`): the queue is the one retry layer. Thinking mode is switched off (it is on by
default and costs reasoning tokens a clean-up does not need); no tools are offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import openai

from traxd.adapters.http_errors import is_retryable_status, parse_retry_after
from traxd.errors import (
    AuthError,
    ModelGoneError,
    PermanentError,
    RetryableError,
    TaskError,
)

THINKING_OFF = {"thinking": {"type": "disabled"}}
DEFAULT_TEMPERATURE = 0.2


@dataclass(frozen=True)
class ChatReply:
    """The assistant's text and what the call cost."""

    text: str
    finish_reason: str | None
    model: str
    usage: dict[str, Any] = field(default_factory=dict)


class DeepSeek:
    """A chat client bound to DeepSeek's OpenAI-compatible base URL and one model."""

    def __init__(self, api_key: str | None, base_url: str, model: str, timeout: float = 300.0) -> None:
        if not api_key:
            raise AuthError("DEEPSEEK_API_KEY is not set: enhancement is paused until a key is configured")
        self.model = model
        self.base_url = base_url
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)

    def complete(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float = DEFAULT_TEMPERATURE,
        *, json_mode: bool = False,
    ) -> ChatReply:  # fmt: skip
        """One chat completion (thinking off, no tools); errors come back as RetryableError/PermanentError/AuthError.

        `json_mode`: DeepSeek's JSON output (the prompt must say "json"); the reply may still be empty or invalid,
        which the caller checks.
        """
        extra: dict[str, Any] = {"response_format": {"type": "json_object"}} if json_mode else {}
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                stream=False,
                extra_body=THINKING_OFF,
                **extra,
            )
        except openai.APIError as exc:
            raise self.translate(exc) from None
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice else ""
        usage = response.usage.model_dump() if response.usage else {}
        return ChatReply(text, choice.finish_reason if choice else None, response.model or self.model, usage)

    def translate(self, exc: openai.APIError) -> TaskError:
        """SDK error -> Trax error, by exception type and HTTP status (never by message text)."""
        if isinstance(exc, openai.APITimeoutError):
            return RetryableError(f"DeepSeek timed out at {self.base_url}")
        if isinstance(exc, openai.APIConnectionError):
            return RetryableError(f"cannot reach DeepSeek at {self.base_url} ({type(exc.__cause__ or exc).__name__})")
        if isinstance(exc, openai.APIStatusError):
            return self._from_status(exc)
        return RetryableError(f"DeepSeek error: {type(exc).__name__}")

    def _from_status(self, exc: openai.APIStatusError) -> TaskError:
        status = exc.status_code
        detail = _error_message(exc)
        if status == 402:
            return AuthError(f"DeepSeek says the account has insufficient balance (402): top up to resume ({detail})")
        if status in (401, 403):
            return AuthError(f"DeepSeek refused the API key ({status}): check DEEPSEEK_API_KEY ({detail})")
        if status == 404:
            return ModelGoneError(
                f"DeepSeek has no model {self.model!r} at {self.base_url} (404): set TRAX_ENHANCE_MODEL, "
                f"e.g. deepseek-flash ({detail})"
            )
        if is_retryable_status(status):
            return RetryableError(f"DeepSeek {status}: {detail}", retry_after=_retry_after(exc))
        return PermanentError(f"DeepSeek rejected the request ({status}): {detail}")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """retry-after-ms (the SDK's own header) first, then Retry-After in seconds or as an HTTP date."""
    headers = exc.response.headers
    millis = parse_retry_after(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    return parse_retry_after(headers.get("retry-after"))


def _error_message(exc: openai.APIStatusError) -> str:
    """The server's own error message from the JSON body, short; the SDK's text otherwise."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(exc.message)[:300]
