"""The DeepSeek adapter through the real openai SDK against the fake server: the request it sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_server import FakeOpenAI
from traxd.adapters.deepseek import DeepSeek
from traxd.enhance_prompt import SYSTEM_PROMPT, build_messages
from traxd.errors import AuthError

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


def test_missing_key_is_an_auth_error() -> None:
    with pytest.raises(AuthError, match="not set"):
        DeepSeek(None, "http://127.0.0.1:9/v1", "deepseek-flash")


# Status-by-status error classification (shared with transcription): tests/test_openai_compat.py.
