"""Transcription through the openai SDK (OpenAI or any compatible server); errors translated in openai_compat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traxd.adapters.openai_compat import Api, Service
from traxd.model_catalog import REPLACEMENT, ModelInfo, model_info
from traxd.timeline import assign_words, word
from traxd.vocabulary import api_prompt

SERVICE = Service("the transcription server", "OPENAI_API_KEY", "TRAX_TRANSCRIBE_MODEL", REPLACEMENT)
MIME = {".ogg": "audio/ogg", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".m4a": "audio/mp4", ".webm": "audio/webm"}


class OpenAITranscriber:
    """One SDK client (max_retries=0: the queue is the only retry layer), shared by the handler's threads."""

    backend = "openai"

    def __init__(self, api_key: str | None, base_url: str | None, timeout: float) -> None:
        self.api = Api(SERVICE, api_key, base_url, timeout)

    def transcribe(self, path: Path, *, model: str, duration: float, language: str | None = None,
                   prompt: str | None = None, words: bool = False,
                   vocabulary: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
        """Transcribe one chunk; segments are relative to the chunk's start. The vocabulary opens the prompt."""
        info = model_info(model)
        prompt, warning = api_prompt(vocabulary, prompt)
        with open(path, "rb") as fh, self.api.errors(model):
            upload = (path.name, fh, MIME.get(path.suffix.lower(), "application/octet-stream"))
            args = request_args(info, model, upload, language, prompt, words, duration)
            resp = self.api.client.audio.transcriptions.create(**args)
        out = parse_response(resp, info, duration)
        return {**out, "warnings": [warning]} if warning else out


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
    for key in ("avg_logprob", "compression_ratio", "no_speech_prob", "temperature"):
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
