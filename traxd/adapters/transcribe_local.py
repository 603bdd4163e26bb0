"""Local transcription with faster-whisper (the optional `local` extra): CPU int8, one model per process, shared."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from traxd.errors import ModelGoneError, PermanentError
from traxd.timeline import word

_LOAD_LOCK = threading.Lock()
# One loaded model per name/path for the whole process: loading costs seconds and hundreds of MB.
_MODELS: dict[str, Any] = {}


def load_model(name: str) -> Any:
    """The faster-whisper model `name` (a size like "base" or a CTranslate2 folder), loaded once under a lock."""
    with _LOAD_LOCK:
        if name in _MODELS:
            return _MODELS[name]
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ModelGoneError("the local backend needs faster-whisper: install the extra with "
                                 "`uv sync --extra local` (pip install 'trax[local]') or set OPENAI_API_KEY") from None  # fmt: skip
        threads = max(1, min(4, os.cpu_count() or 1))
        try:
            model = WhisperModel(name, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)
        except Exception as exc:  # noqa: BLE001 - faster-whisper/hub/ctranslate2 raise many unrelated types
            raise ModelGoneError(f"cannot load the local model {name!r} ({type(exc).__name__}: {exc}); "
                                 "set TRAX_LOCAL_MODEL to a model name or a downloaded model folder") from None  # fmt: skip
        _MODELS[name] = model
        return model


def transcribe_kwargs(language: str | None, prompt: str | None, words: bool) -> dict[str, Any]:
    """The arguments Trax gives WhisperModel.transcribe (the benchmark calls faster-whisper with the same)."""
    return {"language": language, "initial_prompt": prompt, "beam_size": 5, "word_timestamps": words}


class LocalTranscriber:
    """Transcribes on this machine; CTranslate2 queues concurrent calls on its worker, so threads may share it."""

    backend = "local"

    def transcribe(self, path: Path, *, model: str, duration: float, language: str | None = None,
                   prompt: str | None = None, words: bool = False) -> dict[str, Any]:  # fmt: skip
        """Transcribe one chunk; segments relative to its start, with Whisper's per-segment statistics."""
        whisper = load_model(model)
        try:
            segments, info = whisper.transcribe(str(path), **transcribe_kwargs(language, prompt, words))
            segs = [_segment(s, words) for s in segments]
        except (OSError, ValueError, RuntimeError) as exc:
            raise PermanentError(f"{path.name}: local transcription failed ({type(exc).__name__}: {exc})") from None
        text = " ".join(s["text"] for s in segs if s["text"])
        return {"text": text, "language": getattr(info, "language", None), "segments": segs}


def _segment(seg: Any, words: bool) -> dict[str, Any]:
    out = {"start": float(seg.start), "end": float(seg.end), "text": str(seg.text).strip(),
           "avg_logprob": float(seg.avg_logprob), "compression_ratio": float(seg.compression_ratio),
           "no_speech_prob": float(seg.no_speech_prob)}  # fmt: skip
    if words:
        out["words"] = [word(w.start, w.end, w.word, w.probability) for w in seg.words or []]
    return out

