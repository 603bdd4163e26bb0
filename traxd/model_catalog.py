"""Pure: what each transcription model returns, its limits and its announced shutdown date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
SHUTDOWN_2027 = date(2027, 2, 26)
REPLACEMENT = "gpt-transcribe"
PIECE_SECONDS = 30.0  # pieces for models without segment timings, cut at silences
WARN_DAYS = 90


@dataclass(frozen=True)
class ModelInfo:
    """Capabilities of one transcription model."""

    response_format: str = "json"
    segments: bool = False
    words: bool = False  # word timings on request (verbose_json, timestamp_granularities=["word"])
    logprobs: bool = False
    languages_param: bool = False  # takes `languages=[...]` hints instead of `language=`
    prompt: bool = True
    max_seconds: float | None = None
    shutdown: date | None = None
    speakers: bool = False  # segments carry a `speaker` label (diarized_json)
    chunking: bool = False  # needs `chunking_strategy` for audio over 30 s


_GPT4O = ModelInfo("json", segments=False, logprobs=True, max_seconds=1400.0, shutdown=SHUTDOWN_2027)
MODELS: dict[str, ModelInfo] = {
    "whisper-1": ModelInfo("verbose_json", segments=True, words=True, shutdown=SHUTDOWN_2027),
    "gpt-4o-transcribe": _GPT4O,
    "gpt-4o-mini-transcribe": _GPT4O,
    "gpt-4o-transcribe-diarize": ModelInfo("diarized_json", segments=True, prompt=False, max_seconds=1400.0,
                                           shutdown=SHUTDOWN_2027, speakers=True, chunking=True),
    "gpt-transcribe": ModelInfo("json", languages_param=True),
}
# OpenAI-compatible servers (whisper.cpp, faster-whisper-server, Groq …) name their Whisper models freely.
_WHISPER_LIKE = ModelInfo("verbose_json", segments=True, words=True)
_UNKNOWN = ModelInfo("json", max_seconds=1400.0)
LOCAL = ModelInfo("verbose_json", segments=True, words=True)


def model_info(model: str) -> ModelInfo:
    """The table entry of a model: exact name, else the longest known prefix (dated snapshots), else a guess."""
    name = model.strip().lower()
    if name in MODELS:
        return MODELS[name]
    prefixes = [k for k in MODELS if name.startswith(k + "-")]
    if prefixes:
        return MODELS[max(prefixes, key=len)]
    return _WHISPER_LIKE if "whisper" in name else _UNKNOWN


def is_api_model(model: str) -> bool:
    """True for a transcription model OpenAI's API offers (exact name or a dated snapshot of one)."""
    name = model.strip().lower()
    return name in MODELS or any(name.startswith(k + "-") for k in MODELS)


def piece_seconds(info: ModelInfo, chunk_size: float, bitrate_kbps: float) -> float:
    """How long each uploaded chunk may be: the chunk size, capped by the model and the 25 MB limit."""
    by_size = MAX_UPLOAD_BYTES * 0.9 * 8 / (bitrate_kbps * 1000)
    # The model's own cap keeps a margin: FFmpeg cuts at packet boundaries and plan_cuts allows a sliver over.
    limit = min(chunk_size, by_size, (info.max_seconds - 5.0) if info.max_seconds else chunk_size)
    return min(limit, PIECE_SECONDS) if not info.segments else limit


def model_warning(model: str, today: date) -> str | None:
    """A warning when the model is past or near its announced shutdown date (for doctor and status)."""
    info = model_info(model)
    if info.shutdown is None:
        return None
    days = (info.shutdown - today).days
    fix = f"set TRAX_TRANSCRIBE_MODEL={REPLACEMENT}"
    if days < 0:
        return f"model {model} was shut down on {info.shutdown.isoformat()}; {fix}"
    urgency = "soon, " if days <= WARN_DAYS else ""
    return f"model {model} is deprecated and shuts down {urgency}on {info.shutdown.isoformat()} (in {days} days); {fix}"
