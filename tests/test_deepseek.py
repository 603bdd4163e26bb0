"""The DeepSeek adapter through the real openai SDK against the fake server: request shape and error classes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import FakeOpenAI
from traxd.adapters.deepseek import DeepSeek
from traxd.enhance import SYSTEM_PROMPT, build_messages
from traxd.errors import (
    AuthError,
    ModelGoneError,
    PermanentError,
    RetryableError,
    classify,
)
from traxd.types import ErrorKind

KEY = "sk-deepseek-test-key"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


def client(server: FakeOpenAI, model: str = "deepseek-flash", key: str = KEY, timeout: float = 30.0) -> DeepSeek:
    return DeepSeek(key, server.base_url, model, timeout)


def test_request_has_thinking_off_model_and_no_tools(server: FakeOpenAI) -> None:
    reply = client(server, model="deepseek-v4-pro").complete(build_messages("hello there. how are you"), max_tokens=300)
    assert reply.text == "<transcript>\nhello there. how are you\n</transcript>"  # the fake echoes the data
    body = server.calls("/chat/completions")[0].json_body or {}
    assert body["model"] == "deepseek-v4-pro"
    assert body["thinking"] == {"type": "disabled"}
    assert "tools" not in body and "tool_choice" not in body
    assert body["max_tokens"] == 300 and body["temperature"] <= 0.3
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert body["messages"][-1]["content"].endswith("hello there. how are you\n</transcript>")


def test_instructions_are_a_byte_identical_prefix(server: FakeOpenAI) -> None:
    ds = client(server)
    ds.complete(build_messages("first chunk"), max_tokens=256)
    ds.complete(build_messages("a different second chunk"), max_tokens=256)
    a, b = (c.json_body["messages"] for c in server.calls("/chat/completions"))  # type: ignore[index]
    assert a[0] == b[0] and a[1]["content"][:13] == b[1]["content"][:13] == "<transcript>\n"


def test_wrong_key_is_an_auth_error(server: FakeOpenAI) -> None:
    with pytest.raises(AuthError, match="DEEPSEEK_API_KEY") as info:
        client(server, key="sk-wrong-key-123").complete(build_messages("x"), max_tokens=256)
    assert classify(info.value).kind is ErrorKind.AUTH
    assert "sk-wrong" not in str(info.value)


def test_missing_key_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="not set"):
        DeepSeek(None, "http://127.0.0.1:9/v1", "deepseek-flash")


@pytest.mark.parametrize(("status", "fragment"), [(402, "insufficient balance"), (403, "refused the API key")])
def test_402_and_403_pause_the_type(server: FakeOpenAI, status: int, fragment: str) -> None:
    server.fail_next(status)
    with pytest.raises(AuthError, match=fragment):
        client(server).complete(build_messages("x"), max_tokens=256)


def test_429_with_retry_after_is_retryable_and_not_retried_by_the_sdk(server: FakeOpenAI) -> None:
    server.fail_next(429, headers={"retry-after": "3"})
    with pytest.raises(RetryableError) as info:
        client(server).complete(build_messages("x"), max_tokens=256)
    assert info.value.retry_after == 3.0
    assert len(server.calls("/chat/completions")) == 1  # max_retries=0: the queue is the only retry layer


def test_retry_after_ms_wins(server: FakeOpenAI) -> None:
    server.fail_next(429, headers={"retry-after-ms": "1500", "retry-after": "9"})
    with pytest.raises(RetryableError) as info:
        client(server).complete(build_messages("x"), max_tokens=256)
    assert info.value.retry_after == 1.5


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable(server: FakeOpenAI, status: int) -> None:
    server.fail_next(status)
    with pytest.raises(RetryableError, match=str(status)):
        client(server).complete(build_messages("x"), max_tokens=256)


@pytest.mark.parametrize("status", [400, 422])
def test_bad_requests_are_permanent(server: FakeOpenAI, status: int) -> None:
    server.fail_next(status, body={"error": {"message": "Invalid max_tokens value", "type": "invalid_request_error"}})
    with pytest.raises(PermanentError, match="Invalid max_tokens value"):
        client(server).complete(build_messages("x"), max_tokens=256)


def test_unknown_model_pauses_with_the_fix(server: FakeOpenAI) -> None:
    server.fail_next(404, body={"error": {"message": "Model Not Exist", "type": "invalid_request_error"}})
    with pytest.raises(ModelGoneError, match="TRAX_ENHANCE_MODEL"):
        client(server, model="deepseek-chat").complete(build_messages("x"), max_tokens=256)


def test_dropped_connection_and_timeout_are_retryable(server: FakeOpenAI) -> None:
    server.fail_next(drop=True)
    with pytest.raises(RetryableError, match="cannot reach"):
        client(server).complete(build_messages("x"), max_tokens=256)
    server.fail_next(200, delay=2.0)
    with pytest.raises(RetryableError, match="timed out"):
        client(server, timeout=0.3).complete(build_messages("x"), max_tokens=256)
