"""Local transcription with faster-whisper: batched over voice activity where that is faster, else window by window.

The choice, the batch size and the VAD settings live in traxd/decoding.py with the measurements behind them. One
model per process (local_models); one decode at a time on it (`_DECODE_LOCK`): CTranslate2 runs one call at a time
on its single worker anyway, and a batch in flight is what the memory rule budgets for. Reading and cutting the
audio (FFmpeg, the VAD) happens outside the lock, so another slot's decode uses the cores meanwhile.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psutil

from traxd import decoding, vocabulary
from traxd.adapters.local_models import Loaded, load_model
from traxd.errors import PermanentError
from traxd.logging import get_logger
from traxd.timeline import word

log = get_logger("local")
_DECODE_LOCK = threading.Lock()


def transcribe_kwargs(language: str | None, prompt: str | None, words: bool, task: str = "transcribe",
                      hotwords: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The arguments both decoders share (the benchmark calls faster-whisper with the same).

    `task="translate"` is Whisper's own translation into English (multilingual models; an English-only model
    such as tiny.en transcribes English either way). `language` is then the language spoken, not the target.
    """
    return {"language": language, "initial_prompt": prompt, "beam_size": decoding.BEAM_SIZE, "word_timestamps": words,
            "task": task, "hotwords": hotwords or None}  # fmt: skip


def batched_kwargs(batch: int) -> dict[str, Any]:
    """What the batched decoder takes on top (its VAD cut; one segment per window, as measured best)."""
    return {"batch_size": batch, "vad_filter": True, "vad_parameters": dict(decoding.VAD_PARAMETERS),
            "without_timestamps": True}  # fmt: skip


class LocalTranscriber:
    """Transcribes on this machine with the process's one model; safe to share between threads."""

    backend = "local"

    def __init__(self, device: str = "auto", memory_limit_mb: float = 2048.0) -> None:
        self.device = device
        self.memory_limit_mb = memory_limit_mb

    def transcribe(self, path: Path, *, model: str, duration: float, language: str | None = None,
                   prompt: str | None = None, words: bool = False, task: str = "transcribe",
                   vocabulary: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
        """Transcribe one chunk (or, with `task="translate"`, translate it into English); segments relative to its
        start, with Whisper's per-segment statistics, the language found and how sure the model was of it."""
        loaded = load_model(model, device=self.device)
        hotwords, warning = fit_hotwords(loaded, vocabulary)
        batch = decoding.batch_size(self.memory_limit_mb, _rss_mb(), loaded.size_mb, duration)
        mode = "batched" if decoding.batched(duration, batch) else "sequential"
        # The previous chunk's tail helps only the first window of a sequential decode; batched windows are
        # decoded side by side, so it would be put before every one of them (faster-whisper's batched prompt).
        args = transcribe_kwargs(language, prompt if mode == "sequential" else None, words, task, hotwords)
        try:
            segs, info, batch = _decode(loaded, path, args, batch if mode == "batched" else 0)
        except (OSError, ValueError, RuntimeError) as exc:
            raise PermanentError(f"{path.name}: local {task} failed ({type(exc).__name__}: {exc})") from None
        out = [_segment(s, words) for s in segs]
        return {"text": " ".join(s["text"] for s in out if s["text"]), "language": getattr(info, "language", None),
                "language_probability": _probability(info), "segments": out, "warnings": [warning] if warning else [],
                "decoding": {"mode": "batched" if batch else "sequential", "batch": batch}}  # fmt: skip


def _decode(loaded: Loaded, path: Path, args: dict[str, Any], batch: int) -> tuple[list[Any], Any, int]:
    """Decode with `batch` windows at a time (0: sequentially); a batch that runs out of memory is halved."""
    from faster_whisper import BatchedInferencePipeline

    while True:
        engine = BatchedInferencePipeline(loaded.whisper) if batch else loaded.whisper
        extra = batched_kwargs(batch) if batch else {}
        try:
            segments, info = engine.transcribe(str(path), **args, **extra)  # audio read and VAD-cut here, unlocked
            with _DECODE_LOCK:
                return list(segments), info, batch
        except MemoryError:
            if batch <= 1:
                raise PermanentError(f"{path.name}: the local model ran out of memory even one window at a time; "
                                     "raise TRAX_MEMORY_LIMIT_MB or use a smaller model") from None  # fmt: skip
            log.warning("batch_out_of_memory", file=path.name, batch=batch, next=batch // 2)
            batch //= 2


def fit_hotwords(loaded: Loaded, terms: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The vocabulary as hotwords, cut to what faster-whisper keeps (counted with the model's own tokenizer)."""
    if not terms:
        return None, None
    tokenizer = loaded.whisper.hf_tokenizer
    words, warning = vocabulary.fit(terms, vocabulary.HOTWORD_TOKENS, lambda t: len(tokenizer.encode(" " + t).ids))
    return words or None, warning


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _probability(info: Any) -> float | None:
    value = getattr(info, "language_probability", None)
    return round(float(value), 4) if value is not None else None


def _segment(seg: Any, words: bool) -> dict[str, Any]:
    out = {"start": float(seg.start), "end": float(seg.end), "text": str(seg.text).strip(),
           "avg_logprob": float(seg.avg_logprob), "compression_ratio": float(seg.compression_ratio),
           "no_speech_prob": float(seg.no_speech_prob), "temperature": float(seg.temperature)}  # fmt: skip
    if words:
        out["words"] = [word(w.start, w.end, w.word, w.probability) for w in seg.words or []]
    return out
