"""One error translation for every OpenAI-compatible API: the transcription adapter and the DeepSeek adapter, each
through the real openai SDK against the loopback fake server, classify every status the same way, with the same
Retry-After and the HTTP status recorded on the error (and on the Failure the queue stores)."""

from __future__ import annotations

import random
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.openai_server import FakeOpenAI
from traxd.adapters.deepseek import DeepSeek
from traxd.adapters.http_errors import retry_after
from traxd.adapters.openai_compat import tls_context
from traxd.adapters.transcribe_openai import OpenAITranscriber
from traxd.daemon.runner import run_task
from traxd.dashboard.metrics import QueueCollector, render
from traxd.database import reader_on
from traxd.enhance_prompt import build_messages
from traxd.errors import (
    AuthError,
    ModelGoneError,
    PayloadTooLargeError,
    PermanentError,
    RateLimitedError,
    RetryableError,
    TaskError,
    classify,
)
from traxd.handlers.registry import TaskContext
from traxd.queue.store import Store
from traxd.queue.transitions import RetryPolicy, decide_failure
from traxd.types import ErrorKind, NewTask, TaskType

KEY = "sk-compat-test-key"
MODEL_GONE = {"error": {"message": "The model `m` does not exist", "type": "invalid_request_error", "param": "model",
                        "code": "model_not_found"}}  # fmt: skip
QUOTA = {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                   "code": "insufficient_quota"}}  # fmt: skip
PAST = "Thu, 01 Jan 1970 00:01:40 GMT"

# (status, fault options, error class, Retry-After) — decided from OpenAI's and DeepSeek's documented error codes.
TABLE: list[tuple[int, dict[str, Any], type[TaskError], float | None]] = [
    (400, {}, PermanentError, None),
    (401, {}, AuthError, None),
    (402, {}, AuthError, None),  # DeepSeek: insufficient balance; pause, do not retry
    (403, {}, AuthError, None),
    (404, {}, PermanentError, None),
    (404, {"body": MODEL_GONE}, ModelGoneError, None),
    (405, {}, PermanentError, None),
    (408, {}, RetryableError, None),
    (409, {"headers": {"retry-after": "4"}}, RetryableError, 4.0),
    (413, {}, PayloadTooLargeError, None),
    (422, {}, PermanentError, None),  # DeepSeek: invalid parameters
    (425, {}, RetryableError, None),
    (429, {}, RateLimitedError, None),
    (429, {"headers": {"retry-after": "7"}}, RateLimitedError, 7.0),
    (429, {"headers": {"retry-after-ms": "1500", "retry-after": "9"}}, RateLimitedError, 1.5),
    (429, {"headers": {"retry-after": PAST}}, RateLimitedError, 0.0),
    (429, {"headers": {"retry-after": "soon"}}, RateLimitedError, None),
    (429, {"body": QUOTA, "headers": {"retry-after": "7"}}, AuthError, None),  # OpenAI: no credit left
    (500, {}, RetryableError, None),
    (502, {}, RetryableError, None),
    (503, {"headers": {"retry-after": "2"}}, RetryableError, 2.0),  # DeepSeek: overloaded
    (504, {}, RetryableError, None),
]


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compat") / "chunk.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return path


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


def callers(server: FakeOpenAI, audio: Path, timeout: float = 30.0) -> dict[str, Callable[[], object]]:
    """One call through each adapter, as the handlers make it."""
    transcriber = OpenAITranscriber(KEY, server.base_url, timeout)
    deepseek = DeepSeek(KEY, server.base_url, "m", timeout)
    return {
        "transcribe": lambda: transcriber.transcribe(audio, model="m", duration=1.0),
        "deepseek": lambda: deepseek.complete(build_messages("hello"), max_tokens=256),
    }


def failure_of(call: Callable[[], object]) -> TaskError:
    with pytest.raises(TaskError) as info:
        call()
    return info.value


@pytest.mark.parametrize(("status", "fault", "error", "wait"), TABLE)
def test_both_adapters_classify_each_status_alike(server: FakeOpenAI, audio: Path, status: int,
                                                  fault: dict[str, Any], error: type[TaskError],
                                                  wait: float | None) -> None:  # fmt: skip
    for name, call in callers(server, audio).items():
        server.fail_next(status, **fault)
        before = len(server.calls())
        exc = failure_of(call)
        assert (name, type(exc), exc.retry_after, exc.http_status) == (name, error, wait, status)
        assert len(server.calls()) == before + 1, name  # max_retries=0: the queue is the only retry layer
        failure = classify(exc)
        assert (failure.kind, failure.retry_after, failure.http_status) == (error.kind, wait, status)
        assert KEY not in str(exc)


def test_the_model_gone_error_names_each_services_fix(server: FakeOpenAI, audio: Path) -> None:
    fixes = {"transcribe": "TRAX_TRANSCRIBE_MODEL=gpt-transcribe", "deepseek": "TRAX_ENHANCE_MODEL=deepseek-flash"}
    for name, call in callers(server, audio).items():
        server.fail_next(404, body=MODEL_GONE)
        assert fixes[name] in str(failure_of(call))


def test_a_wrong_key_names_the_setting_and_never_the_key(server: FakeOpenAI, audio: Path) -> None:
    transcriber = OpenAITranscriber("sk-wrong-key-123", server.base_url, 30.0)
    deepseek = DeepSeek("sk-wrong-key-123", server.base_url, "m", 30.0)
    for call, setting in ((lambda: transcriber.transcribe(audio, model="m", duration=1.0), "OPENAI_API_KEY"),
                          (lambda: deepseek.complete(build_messages("x"), max_tokens=256), "DEEPSEEK_API_KEY")):
        exc = failure_of(call)
        assert type(exc) is AuthError and exc.http_status == 401 and setting in str(exc)
        assert "sk-wrong" not in str(exc)


@pytest.mark.parametrize("fault", [{"drop": True}, {"status": 200, "delay": 2.0}])
def test_no_answer_is_retryable_without_a_status(server: FakeOpenAI, audio: Path, fault: dict[str, Any]) -> None:
    for name, call in callers(server, audio, timeout=0.5).items():
        server.fail_next(**fault)
        exc = failure_of(call)
        assert (name, type(exc), exc.http_status, exc.retry_after) == (name, RetryableError, None, None)
        assert classify(exc).kind is ErrorKind.RETRYABLE


def test_retry_after_headers() -> None:
    assert retry_after({"retry-after": PAST}, now=40.0) == 60.0
    assert retry_after({"retry-after": "2.5"}) == 2.5 and retry_after({"retry-after": "-3"}) == 0.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after-ms": "later", "retry-after": "9"}) == 9.0
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None
    assert retry_after({"retry-after": "inf"}) is None and retry_after({"retry-after-ms": "nan"}) is None


def test_the_status_reaches_the_error_history_and_the_metrics(server: FakeOpenAI, audio: Path, store: Store) -> None:
    """The status the adapter saw is a field of the error history entry, and /metrics counts it from there: a status
    mentioned only in a message's text (a handler's own words) is not an API error."""
    calls = callers(server, audio)
    runs: list[tuple[Callable[[], object], int | None]] = [(calls["deepseek"], 402), (calls["transcribe"], 503),
                                                           (calls["deepseek"], 503), (lambda: _own_words(), None)]
    for call, status in runs:
        if status is not None:
            server.fail_next(status)
        store.enqueue(NewTask(TaskType.ENHANCE, {}, max_retries=5))
        (task,) = store.claim("me", 1, 60)
        outcome = run_task(lambda ctx, payload, call=call: call(), TaskContext(task))  # type: ignore[misc]
        assert outcome.failure is not None and outcome.failure.http_status == status
        decision = decide_failure(task, outcome.failure, store.clock.now(), RetryPolicy(), random.Random())
        assert store.apply(task.lease, decision, outcome.failure.error_type)
        assert store.get(task.id).errors[-1].get("http_status") == status  # type: ignore[union-attr]
    text = render(QueueCollector(lambda: reader_on(store), dict)).decode()
    api = {s.labels["status"]: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
           if s.name == "trax_api_errors_total"}  # fmt: skip
    assert api == {"402": 1, "503": 2}


def _own_words() -> None:
    raise RetryableError("HTTP 500 from a proxy, as a handler words it")


def test_clients_share_one_certificate_store(server: FakeOpenAI) -> None:
    """A client per DeepSeek task must not read the CA bundle again each time (the SDK's default does)."""
    a, b = DeepSeek(KEY, server.base_url, "m"), DeepSeek(KEY, "https://api.deepseek.com", "m")
    contexts = [ds.api.client._client._transport._pool._ssl_context for ds in (a, b)]  # type: ignore[attr-defined]
    assert contexts[0] is contexts[1] is tls_context()
    assert a.api.client.max_retries == 0
