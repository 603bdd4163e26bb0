"""Pure: a finished job's transcript (its NAME.json document) in the shape OpenAI answers a request with, for each
response_format, and the server-sent events of a streamed request."""

from __future__ import annotations

import json
from typing import Any

from traxd import outputs
from traxd.languages import LANGUAGES
from traxd.serve.ask import TRANSLATE, Ask

MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "diarized_json": "application/json",
               "text": "text/plain; charset=utf-8", "srt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}  # fmt: skip


def render(ask: Ask, doc: dict[str, Any]) -> tuple[str, str]:
    """(body, media type) of the answer to `ask` from the transcript `doc`."""
    segments = [s for s in doc.get("segments") or [] if isinstance(s, dict)]
    text = " ".join(str(doc.get("text") or "").split())
    fmt = ask.response_format
    if fmt == "text":
        body = text + "\n"
    elif fmt in ("srt", "vtt"):
        body = str(outputs.render(fmt, doc))  # the subtitles the outbox gets
    elif fmt == "verbose_json":
        body = _json(verbose(ask, doc, segments, text))
    elif fmt == "diarized_json":
        body = _json(diarized(doc, segments, text))
    else:
        body = _json({"text": text, "usage": usage(doc)})
    return body, MEDIA_TYPES[fmt]


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


def usage(doc: dict[str, Any]) -> dict[str, Any]:
    """Billed by duration, as whisper-1 reports it (nothing is billed here; programs read the field)."""
    return {"type": "duration", "seconds": round(float(doc.get("duration") or 0.0))}


def verbose(ask: Ask, doc: dict[str, Any], segments: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """`verbose_json`: language (a name, as OpenAI gives it), duration, text, and segments and/or words."""
    code = "en" if ask.task == TRANSLATE else str(doc.get("language") or "")
    out: dict[str, Any] = {"task": ask.task, "language": LANGUAGES.get(code, code), "duration": doc.get("duration"),
                           "text": text}  # fmt: skip
    if ask.segments:
        out["segments"] = [_segment(i, s) for i, s in enumerate(segments)]
    if ask.words:
        out["words"] = [{"word": w.get("word", ""), "start": w.get("start"), "end": w.get("end")}
                        for s in segments for w in s.get("words") or [] if isinstance(w, dict)]  # fmt: skip
    out["usage"] = usage(doc)
    return out


def _segment(i: int, s: dict[str, Any]) -> dict[str, Any]:
    """One segment with the fields OpenAI's TranscriptionSegment has (defaults where the engine kept none)."""
    return {"id": i, "seek": int(s.get("seek") or 0), "start": s.get("start"), "end": s.get("end"),
            "text": " " + str(s.get("text") or "").strip(), "tokens": list(s.get("tokens") or []),
            "temperature": float(s.get("temperature") or 0.0), "avg_logprob": float(s.get("avg_logprob") or 0.0),
            "compression_ratio": float(s.get("compression_ratio") or 0.0),
            "no_speech_prob": float(s.get("no_speech_prob") or 0.0)}  # fmt: skip


def diarized(doc: dict[str, Any], segments: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """`diarized_json` (gpt-4o-transcribe-diarize's shape): segments with a speaker, the name when one is known."""
    out = [{"type": "transcript.text.segment", "id": f"seg_{i}", "start": s.get("start"), "end": s.get("end"),
            "text": str(s.get("text") or "").strip(), "speaker": str(s.get("speaker") or "")}
           for i, s in enumerate(segments)]  # fmt: skip
    return {"task": "transcribe", "duration": doc.get("duration"), "text": text, "segments": out,
            "usage": usage(doc)}  # fmt: skip


def event(data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def delta(text: str) -> str:
    """A piece of the transcript as it is decoded."""
    return event({"type": "transcript.text.delta", "delta": text})


def done(doc: dict[str, Any]) -> str:
    """The whole transcript, last event of a stream."""
    return event({"type": "transcript.text.done", "text": " ".join(str(doc.get("text") or "").split()),
                  "usage": usage(doc)})  # fmt: skip
