"""Pure: OpenAI's transcription and translation form fields read into one request (`Ask`), checked the way OpenAI
checks them, and the job options it asks for. A bad field is an ApiError naming the field (`param`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from traxd.errors import UserError
from traxd.languages import normalize_language

FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
GRANULARITIES = ("word", "segment")
TRANSCRIBE, TRANSLATE = "transcribe", "translate"
# The names programs written for OpenAI ask for; each means the configured model unless config maps it elsewhere.
OPENAI_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize")


TYPES = {429: "rate_limit_exceeded"}  # OpenAI's error types by status; other 4xx invalid_request_error, 5xx server_error


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        kind = TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Ask:
    """One request: what to do (transcribe or translate into English) and how to answer."""

    task: str
    model: str
    response_format: str = "json"
    language: str | None = None
    prompt: str | None = None
    words: bool = False
    segments: bool = False
    temperature: float = 0.0
    stream: bool = False
    outbox: str | None = None  # Trax's own field: also write the job's files into this watch folder's outbox

    def options(self, models: Mapping[str, str]) -> dict[str, Any]:
        """The job options this request asks for (None = the daemon's setting); a mapped model name, else None."""
        # The prompt's comma-separated terms as a list: never a string, which the vocabulary would read as @FILE
        # or as a path on this machine.
        terms = self.prompt.split(",") if self.prompt else None
        return {"model": models.get(self.model), "language": self.language,
                "vocabulary": terms, "word_timestamps": self.words or None,
                "diarize": True if self.response_format == "diarized_json" else None,
                "translate_to": ["en"] if self.task == TRANSLATE else None}  # fmt: skip


def _one(fields: Mapping[str, list[str]], name: str) -> str | None:
    values = fields.get(name) or []
    return values[-1].strip() if values else None


def _flag(fields: Mapping[str, list[str]], name: str) -> bool:
    raw = (_one(fields, name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ApiError(400, f"'{raw}' is not a valid boolean for '{name}'", param=name)
    return raw in ("true", "1")


def read_ask(task: str, fields: Mapping[str, list[str]]) -> Ask:
    """The request in these form fields (ApiError 400 naming the field that is wrong)."""
    model = _one(fields, "model")
    if not model:
        raise ApiError(400, "you must provide a model parameter", param="model")
    fmt = _one(fields, "response_format") or "json"
    if fmt not in FORMATS:
        raise ApiError(400, f"'{fmt}' is not one of {list(FORMATS)} - 'response_format'", param="response_format")
    if task == TRANSLATE and fmt == "diarized_json":
        raise ApiError(400, "diarized_json is for transcriptions only", param="response_format")
    grains = [g.strip() for g in fields.get("timestamp_granularities[]", []) + fields.get("timestamp_granularities", [])]
    unknown = [g for g in grains if g not in GRANULARITIES]
    if unknown:
        raise ApiError(400, f"'{unknown[0]}' is not one of {list(GRANULARITIES)} - 'timestamp_granularities'",
                       param="timestamp_granularities")  # fmt: skip
    if grains and fmt != "verbose_json":
        raise ApiError(400, "timestamp_granularities needs response_format=verbose_json", param="timestamp_granularities")
    language = _language(_one(fields, "language")) if task == TRANSCRIBE else None
    stream = _flag(fields, "stream")
    if stream and fmt not in ("json", "text"):
        raise ApiError(400, f"stream is not supported with response_format={fmt}", param="stream")
    return Ask(task, model, fmt, language or None, _one(fields, "prompt") or None, "word" in grains,
               "segment" in grains or not grains, _temperature(fields), stream, _one(fields, "outbox") or None)  # fmt: skip


def _language(raw: str | None) -> str | None:
    """The ISO code of a `language` field (a name is accepted too); ApiError naming the field when unknown."""
    try:
        return normalize_language(raw)
    except UserError as exc:
        raise ApiError(400, f"language: {exc}", param="language") from None


def _temperature(fields: Mapping[str, list[str]]) -> float:
    raw = _one(fields, "temperature") or "0"
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"'{raw}' is not a number - 'temperature'", param="temperature") from None
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, f"{value} is not between 0 and 1 - 'temperature'", param="temperature")
    return value


def request_key(sha256: str, options: Mapping[str, Any], idempotency_key: str | None) -> str:
    """The job's dedupe key: the client's Idempotency-Key, else the file's content and the job options together."""
    if idempotency_key:
        return "serve:key:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
    digest = hashlib.sha256(json.dumps(dict(options), sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"serve:file:{sha256}:{digest}"
