"""Transcription through the openai SDK (OpenAI or any compatible server); SDK errors translated by type."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import openai

from traxd.errors import (
    AuthError,
    ModelGoneError,
    PayloadTooLargeError,
    PermanentError,
    RetryableError,
    TaskError,
)
from traxd.model_catalog import REPLACEMENT, ModelInfo, model_info
from traxd.timeline import assign_words, word

MIME = {".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".m4a": "audio/mp4", ".webm": "audio/webm"}


class OpenAITranscriber:
    """One SDK client (max_retries=0: the queue is the only retry layer), shared by the handler's threads."""

    backend = "openai"

    def __init__(self, api_key: str | None, base_url: str | None, timeout: float) -> None:
        self.client = openai.OpenAI(api_key=api_key or "", base_url=base_url, max_retries=0, timeout=timeout)

    def transcribe(self, path: Path, *, model: str, duration: float, language: str | None = None,
                   prompt: str | None = None, words: bool = False) -> dict[str, Any]:  # fmt: skip
        """Transcribe one chunk; segments are relative to the chunk's start."""
        info = model_info(model)
        try:
            with open(path, "rb") as fh:
                upload = (path.name, fh, MIME.get(path.suffix.lower(), "application/octet-stream"))
                args = request_args(info, model, upload, language, prompt, words, duration)
                resp = self.client.audio.transcriptions.create(**args)
        except openai.OpenAIError as exc:
            raise translate(exc, model) from None
        return parse_response(resp, info, duration)


def request_args(info: ModelInfo, model: str, upload: Any, language: str | None, prompt: str | None,
                 words: bool = False, duration: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """The create() arguments this model understands (word timings only from models that offer them)."""
    args: dict[str, Any] = {"model": model, "file": upload, "response_format": info.response_format}
    if info.chunking and duration > 30.0:
        args["chunking_strategy"] = "auto"  # the diarizing model refuses longer audio without it
    if info.segments and info.response_format == "verbose_json":
        args["timestamp_granularities"] = ["segment", "word"] if words and info.words else ["segment"]
    if info.logprobs:
        args["include"] = ["logprobs"]
    if language:
        args["languages" if info.languages_param else "language"] = [language] if info.languages_param else language
    if prompt and info.prompt:
        args["prompt"] = prompt
    return args


def parse_response(resp: Any, info: ModelInfo, duration: float) -> dict[str, Any]:
    """{"text", "language", "segments"} from an SDK response of any format (segments relative to the chunk)."""
    if isinstance(resp, str):
        resp_text, raw_segments, language = resp, None, None
    else:
        resp_text, raw_segments = str(getattr(resp, "text", "") or ""), getattr(resp, "segments", None)
        language = getattr(resp, "language", None) or _first_language(resp)
    text = " ".join(resp_text.split())
    if raw_segments:
        segments = [_segment(s) for s in raw_segments]
        raw_words = getattr(resp, "words", None)
        if raw_words:
            assign_words(segments, [word(w.start, w.end, w.word, None) for w in raw_words])
    else:
        segments = [_whole(text, duration, getattr(resp, "logprobs", None))] if text else []
    return {"text": text, "language": language, "segments": segments}


def _first_language(resp: Any) -> str | None:
    langs = getattr(resp, "languages", None) or []
    return getattr(langs[0], "code", None) if langs else None


def _segment(seg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"start": float(seg.start), "end": float(seg.end), "text": str(seg.text).strip()}
    if getattr(seg, "speaker", None):
        out["speaker"] = str(seg.speaker)  # diarized_json
    for key in ("avg_logprob", "compression_ratio", "no_speech_prob"):
        value = getattr(seg, key, None)
        if value is not None:
            out[key] = float(value)
    return out


def _whole(text: str, duration: float, logprobs: list[Any] | None) -> dict[str, Any]:
    """A model without segments: the chunk (cut at silences, ~30 s) is one segment without timings inside (the
    handler times its pieces from the silences); token logprobs averaged."""
    seg: dict[str, Any] = {"start": 0.0, "end": float(duration), "text": text, "timing": "none"}
    values = [float(lp.logprob) for lp in logprobs or [] if getattr(lp, "logprob", None) is not None]
    if values:
        seg["avg_logprob"] = sum(values) / len(values)
    return seg


def translate(exc: openai.OpenAIError, model: str) -> TaskError:
    """Map an SDK exception to a Trax error class by its type (and status code / error code, never its text)."""
    if isinstance(exc, openai.APITimeoutError):
        return RetryableError("transcription request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return RetryableError(f"cannot reach the transcription server: {exc.message}")
    if not isinstance(exc, openai.APIStatusError):
        return RetryableError(f"transcription failed: {type(exc).__name__}")
    return _from_status(exc, model)


def _from_status(exc: openai.APIStatusError, model: str) -> TaskError:
    status, detail = exc.status_code, _detail(exc)
    wait = retry_after(exc.response.headers)
    if model_gone(exc):
        return ModelGoneError(f"transcription model {model!r} is not available ({detail}); "
                              f"set TRAX_TRANSCRIBE_MODEL={REPLACEMENT} (or another model the server offers)")  # fmt: skip
    if exc.code == "insufficient_quota":
        return AuthError(f"the API account is out of quota (HTTP {status}): {detail}")
    if isinstance(exc, (openai.RateLimitError, openai.InternalServerError)) or status in (408, 409) or status >= 500:
        return RetryableError(f"transcription server busy or failing (HTTP {status}): {detail}", retry_after=wait)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)) or status == 402:
        return AuthError(f"the transcription server refused the credentials (HTTP {status}): {detail}; "
                         "check OPENAI_API_KEY and the account's billing")  # fmt: skip
    if status == 413:
        return PayloadTooLargeError(f"the upload is too large for the server (HTTP 413): {detail}")
    return PermanentError(f"the transcription server rejected the request (HTTP {status}): {detail}")


def model_gone(exc: openai.APIStatusError) -> bool:
    """True when the API says the model does not exist (its error code, or a 404 about the `model` parameter)."""
    return exc.code == "model_not_found" or (exc.status_code == 404 and exc.param == "model")


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    message = body.get("message") if isinstance(body.get("message"), str) else None
    return " ".join((message or exc.response.reason_phrase or "no detail").split())[:300]


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or an HTTP date); None when absent."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value).timestamp()
            return max(0.0, when - (time.time() if now is None else now))
    except (TypeError, ValueError):
        return None
