"""OpenAI transcription through the real SDK against the fake server; the TRANSCRIBE handler's chunking and resume."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import media
from tests.fakes.context import Ctx
from tests.fakes.openai_server import FakeOpenAI
from traxd.adapters import ffmpeg
from traxd.adapters.transcribe_openai import OpenAITranscriber
from traxd.config import Settings, load_settings
from traxd.errors import PermanentError, RetryableError
from traxd.handlers.registry import TaskContext
from traxd.handlers.transcribe import Backends, prompt_tail, transcribe
from traxd.model_catalog import ModelInfo, model_info, model_warning, piece_seconds


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(transcribe=media.media_transcription) as fake:
        yield fake


@pytest.fixture(scope="module")
def chunk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("chunk")
    prepared = ffmpeg.preprocess(media.tone(tmp_path / "in.wav", 4.0), tmp_path / "pre", 600.0)
    return Path(prepared.chunks[0].path)


def client(server: FakeOpenAI, timeout: float = 30.0) -> OpenAITranscriber:
    return OpenAITranscriber("sk-test", server.base_url, timeout)


def test_whisper_1_gets_verbose_segments_with_statistics(server: FakeOpenAI, chunk: Path) -> None:
    out = client(server).transcribe(chunk, model="whisper-1", duration=4.0, language="en", prompt="earlier words")
    sent = server.calls("/audio/transcriptions")[0]
    assert sent.fields == {"model": "whisper-1", "response_format": "verbose_json", "language": "en",
                           "prompt": "earlier words", "timestamp_granularities": ["segment"]}  # fmt: skip
    assert sent.file_name == "chunk_0000.ogg" and sent.file_bytes == chunk.read_bytes()
    assert out["language"] == "en" and len(out["segments"]) == 2
    first = out["segments"][0]
    assert first["start"] == 0.0 and first["end"] == pytest.approx(2.0, abs=0.1)
    assert {"avg_logprob", "compression_ratio", "no_speech_prob", "temperature"} <= set(first)


def test_gpt_4o_transcribe_asks_for_json_with_logprobs(server: FakeOpenAI, chunk: Path) -> None:
    out = client(server).transcribe(chunk, model="gpt-4o-mini-transcribe-2025-12-15", duration=4.0)
    sent = server.calls()[0].fields
    assert sent["response_format"] == "json" and sent["include"] == ["logprobs"] and "language" not in sent
    assert out["segments"] == [{"start": 0.0, "end": 4.0, "text": out["text"], "avg_logprob": pytest.approx(-0.25),
                                "timing": "none"}]  # fmt: skip


def test_gpt_transcribe_gets_text_only_and_language_hints(server: FakeOpenAI, chunk: Path) -> None:
    out = client(server).transcribe(chunk, model="gpt-transcribe", duration=4.0, language="de", prompt="p")
    sent = server.calls()[0].fields
    assert sent["languages"] == ["de"] and "include" not in sent and sent["prompt"] == "p"
    assert out["language"] == "de"
    assert out["segments"] == [{"start": 0.0, "end": 4.0, "text": out["text"], "timing": "none"}]


# Status-by-status error classification (shared with DeepSeek): tests/test_openai_compat.py.


def test_model_table_and_shutdown_warning() -> None:
    assert model_info("whisper-1").segments and not model_info("gpt-transcribe").segments
    assert model_info("gpt-4o-transcribe-2025-03-20").logprobs
    assert model_info("whisper-large-v3").response_format == "verbose_json"
    assert piece_seconds(model_info("gpt-transcribe"), 600, 32) == 30.0
    assert piece_seconds(model_info("gpt-4o-transcribe"), 600, 32) == 30.0
    assert piece_seconds(ModelInfo("verbose_json", segments=True, max_seconds=1400.0), 3000, 32) == 1395.0
    assert piece_seconds(model_info("whisper-1"), 90000, 32) < 25 * 1024 * 1024 * 8 / 32000
    assert "2027-02-26" in (model_warning("whisper-1", date(2026, 11, 29)) or "")
    assert "was shut down" in (model_warning("gpt-4o-transcribe", date(2027, 3, 1)) or "")
    assert model_warning("gpt-transcribe", date(2030, 1, 1)) is None


def test_prompt_tail_keeps_the_last_words() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    tail = prompt_tail(text, 60) or ""
    assert text.endswith(tail) and len(tail) <= 60 and tail.split()[-1] == "w999"
    assert prompt_tail("") is None


# -- the handler ----------------------------------------------------------------------------------


def settings_for(server: FakeOpenAI, home: Path, **extra: Any) -> Settings:
    values = {"home": home, "openai_api_key": "sk-test", "openai_base_url": server.base_url, **extra}
    return load_settings(values, env={})


def run(ctx: Ctx, payload: dict[str, Any]) -> dict[str, Any]:
    context = ctx.make(payload)
    return transcribe(context, payload, Backends().get(context))


@pytest.fixture
def long_input(tmp_path: Path) -> Path:
    return media.tones_with_gaps(tmp_path / "talk.mp3", [5.0, 5.0, 5.0, 4.0], gap=0.6)  # 20.8 s


def test_long_input_is_chunked_merged_and_continuous(server: FakeOpenAI, tmp_path: Path, long_input: Path) -> None:
    ctx = Ctx(settings_for(server, tmp_path / "home", chunk_size=6.0))
    result = run(ctx, {"path": str(long_input)})
    calls = server.calls("/audio/transcriptions")
    assert result["chunks"] == len(calls) >= 3
    assert ctx.paid.count(True) == len(calls)  # every paid reply is stored by a synced (paid) checkpoint
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    segs = doc["segments"]
    assert segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(20.8, abs=0.15)
    for a, b in itertools.pairwise(segs):
        assert b["start"] == pytest.approx(a["end"], abs=0.05)  # continuous across chunk boundaries
    assert calls[1].fields["prompt"] == f"hello from the fake server. this chunk has {len(calls[0].file_bytes)} bytes."
    assert "prompt" not in calls[0].fields
    assert doc["model"] == "whisper-1" and doc["backend"] == "openai" and doc["quality"]["confidence"] > 0.7
    assert sorted(Path(p).name for p in result["outputs"].values()) == ["talk.json", "talk.srt", "talk.txt", "talk.vtt"]
    assert not (tmp_path / "home" / "tmp" / "job-1").exists()  # scratch dropped once outputs exist


def test_a_retry_never_resends_a_transcribed_chunk(server: FakeOpenAI, tmp_path: Path, long_input: Path) -> None:
    ctx = Ctx(settings_for(server, tmp_path / "home", chunk_size=6.0))
    _fail_on_request(server, 3)
    with pytest.raises(RetryableError):
        run(ctx, {"path": str(long_input)})
    sent_before = len(server.calls())
    assert ctx.saved is not None and len(ctx.saved["done"]) == 2
    run(ctx, {"path": str(long_input)})
    bodies = [c.file_bytes for c in server.calls() if c.status == 200]
    assert len(bodies) == len(set(bodies)) == len(ctx.saved["plan"])  # each chunk transcribed exactly once
    assert len(server.calls()) - sent_before == len(ctx.saved["plan"]) - 2


def _fail_on_request(server: FakeOpenAI, n: int) -> None:
    """Let n-1 requests through, then fail the n-th with a 500."""
    original = server.transcribe
    seen = {"n": 0}

    def flaky(req: Any) -> dict[str, Any]:
        seen["n"] += 1
        if seen["n"] == n - 1:
            server.fail_next(500)
        if seen["n"] >= n:
            server.transcribe = original
        return original(req)

    server.transcribe = flaky


def test_413_rechunks_that_chunk_once(server: FakeOpenAI, tmp_path: Path) -> None:
    src = media.tone(tmp_path / "a.wav", 6.0)
    ctx = Ctx(settings_for(server, tmp_path / "home"))
    server.fail_next(413)
    result = run(ctx, {"path": str(src)})
    calls = server.calls()
    assert [c.status for c in calls] == [413, 200, 200]
    assert len(calls[1].file_bytes) < len(calls[0].file_bytes)
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    assert doc["segments"][-1]["end"] == pytest.approx(6.0, abs=0.1) and len(doc["segments"]) == 4


def test_413_again_after_rechunking_is_permanent(server: FakeOpenAI, tmp_path: Path) -> None:
    src = media.tone(tmp_path / "a.wav", 6.0)
    server.fail_next(413, times=2)
    with pytest.raises(PermanentError, match="too large even after re-chunking"):
        run(Ctx(settings_for(server, tmp_path / "home")), {"path": str(src)})
    assert not (tmp_path / "home" / "outbox").exists() or not any((tmp_path / "home" / "outbox").iterdir())


def test_segmentless_model_gets_30_second_pieces_cut_at_silence(server: FakeOpenAI, tmp_path: Path) -> None:
    src = media.tones_with_gaps(tmp_path / "a.mp3", [27.0, 25.0, 15.0], gap=1.0)  # pauses at 27-28 and 53-54
    ctx = Ctx(settings_for(server, tmp_path / "home", transcribe_model="gpt-transcribe"))
    result = run(ctx, {"path": str(src)})
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    offsets = [c["offset"] for c in doc["chunks"]]
    assert len(offsets) == 3 and offsets[1] == pytest.approx(27.5, abs=0.1) and offsets[2] == pytest.approx(53.5, abs=0.1)
    srt = Path(result["outputs"]["srt"]).read_text()
    assert "\n00:00:28,0" in srt and "\n00:00:54,0" in srt  # cues start where the sound does after each pause
    assert all(c.fields["response_format"] == "json" for c in server.calls())


def test_job_options_override_settings(server: FakeOpenAI, tmp_path: Path) -> None:
    src = media.tone(tmp_path / "a.wav", 3.0)
    ctx = Ctx(settings_for(server, tmp_path / "home"), options={"model": "gpt-4o-transcribe", "language": "fr"})
    run(ctx, {"path": str(src)})
    assert server.calls()[0].fields["model"] == "gpt-4o-transcribe" and server.calls()[0].fields["language"] == "fr"


def test_a_lost_lease_stops_sending_chunks(server: FakeOpenAI, tmp_path: Path, long_input: Path) -> None:
    ctx = Ctx(settings_for(server, tmp_path / "home", chunk_size=6.0))
    context = ctx.make({"path": str(long_input)})
    lost = TaskContext(context.task, context.job, context.settings, context.work_dir, lambda data, **_: "plan" not in data)
    with pytest.raises(RetryableError, match="lost the lease"):
        transcribe(lost, {"path": str(long_input)}, Backends().get(lost))
    assert len(server.calls()) == 1


# -- word timings ---------------------------------------------------------------------------------


def test_whisper_1_asks_for_word_timings_and_files_them_under_their_segments(server: FakeOpenAI, tmp_path: Path) -> None:
    src = media.tone(tmp_path / "a.wav", 4.0)
    ctx = Ctx(settings_for(server, tmp_path / "home"), options={"word_timestamps": True})
    result = run(ctx, {"path": str(src)})
    sent = server.calls("/audio/transcriptions")[0].fields
    assert sent["response_format"] == "verbose_json" and sent["timestamp_granularities"] == ["segment", "word"]
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    first, second = doc["segments"]
    assert [w["word"] for w in first["words"]] == first["text"].split()
    assert [w["word"] for w in second["words"]] == second["text"].split()
    assert all(first["start"] <= w["start"] < w["end"] <= first["end"] + 0.01 for w in first["words"])
    assert doc["warnings"] == []


def test_without_the_option_no_word_timings_are_asked_for(server: FakeOpenAI, tmp_path: Path) -> None:
    src = media.tone(tmp_path / "a.wav", 3.0)
    result = run(Ctx(settings_for(server, tmp_path / "home")), {"path": str(src)})
    assert server.calls()[0].fields["timestamp_granularities"] == ["segment"]
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    assert all("words" not in s for s in doc["segments"])


@pytest.mark.parametrize("model", ["gpt-4o-transcribe", "gpt-transcribe"])
def test_a_model_without_word_timings_says_so_once_and_the_run_goes_on(server: FakeOpenAI, tmp_path: Path,
                                                                        model: str) -> None:  # fmt: skip
    src = media.tones_with_gaps(tmp_path / "a.mp3", [20.0, 20.0], gap=1.0)  # two pieces: two requests
    ctx = Ctx(settings_for(server, tmp_path / "home", word_timestamps=True, transcribe_model=model))
    result = run(ctx, {"path": str(src)})
    assert len(server.calls()) == 2 and all("timestamp_granularities" not in c.fields for c in server.calls())
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    assert doc["warnings"] == [f"no word timings: model {model} does not return them (segment timings only)"]
    assert doc["text"] and Path(result["outputs"]["srt"]).read_text()


def test_a_server_that_ignores_the_word_request_is_named_in_the_warnings(tmp_path: Path) -> None:
    def no_words(req: Any) -> dict[str, Any]:
        req.fields.pop("timestamp_granularities", None)  # like a compatible server without word support
        return media.media_transcription(req)

    with FakeOpenAI(transcribe=no_words) as fake:
        result = run(Ctx(settings_for(fake, tmp_path / "home", word_timestamps=True)),
                     {"path": str(media.tone(tmp_path / "a.wav", 3.0))})  # fmt: skip
    doc = json.loads(Path(result["outputs"]["json"]).read_text())
    assert doc["warnings"] == ["no word timings: the server gave none for 2 of 2 segments"]
