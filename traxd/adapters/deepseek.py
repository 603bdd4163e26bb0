"""DeepSeek chat completions through the openai SDK (the client and its error translation: openai_compat).

No SDK retries (`max_retries=0`): the queue is the one retry layer. Thinking mode is switched off (it is on by
default and costs reasoning tokens a clean-up does not need); no tools are offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from openai.types.chat import ChatCompletion

from traxd.adapters.openai_compat import Api, Service
from traxd.errors import AuthError

THINKING_OFF = {"thinking": {"type": "disabled"}}
DEFAULT_TEMPERATURE = 0.2
SERVICE = Service("DeepSeek", "DEEPSEEK_API_KEY", "TRAX_ENHANCE_MODEL", "deepseek-flash")


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
            raise AuthError("DEEPSEEK_API_KEY is not set: this stage is paused until a key is configured")
        self.model = model
        self.api = Api(SERVICE, api_key, base_url, timeout)

    def complete(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float = DEFAULT_TEMPERATURE,
        *, json_mode: bool = False,
    ) -> ChatReply:  # fmt: skip
        """One chat completion (thinking off, no tools); errors come back as RetryableError/PermanentError/AuthError.

        `json_mode`: DeepSeek's JSON output (the prompt must say "json"); the reply may still be empty or invalid,
        which the caller checks.
        """
        extra: dict[str, Any] = {"response_format": {"type": "json_object"}} if json_mode else {}
        with self.api.errors(self.model):
            # `**extra` hides `stream=False` from the SDK's overloads: the reply is a whole completion, not a stream.
            response = cast(ChatCompletion, self.api.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                stream=False,
                extra_body=THINKING_OFF,
                **extra,
            ))
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice else ""
        usage = response.usage.model_dump() if response.usage else {}
        return ChatReply(text, choice.finish_reason if choice else None, response.model or self.model, usage)
