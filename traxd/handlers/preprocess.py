"""PREPROCESS: probe the input, convert it to mono 16 kHz speech Opus and cut it into chunks at silences."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from traxd.adapters import ffmpeg
from traxd.errors import PermanentError
from traxd.handlers.common import backend, model_caps, option, work_dir
from traxd.handlers.registry import TaskContext
from traxd.model_catalog import piece_seconds


def chunk_seconds(ctx: TaskContext) -> float:
    """Chunk length: --chunk-size (job, then settings), capped by the model's limits and the 25 MB upload cap."""
    size = float(option(ctx, "chunk_size", ctx.settings.chunk_size))
    if size <= 0:
        raise PermanentError(f"chunk size must be greater than 0, got {size}")
    return piece_seconds(model_caps(ctx), size, ffmpeg.BITRATE_KBPS)


def prepare(ctx: TaskContext, path_value: Any, seconds: float | None = None, folder: str = "chunks") -> dict[str, Any]:
    """Run FFmpeg on the input into the job's scratch folder; the result TRANSCRIBE needs."""
    if not isinstance(path_value, str) or not path_value:
        raise PermanentError("the task has no input path")
    out_dir = work_dir(ctx) / folder
    seconds = seconds or chunk_seconds(ctx)
    try:
        ext = "wav" if backend(ctx) == "local" else ffmpeg.CHUNK_EXT  # nothing is uploaded: keep every sample
        prepared = ffmpeg.preprocess(Path(path_value), out_dir, seconds, ctx.cancelled, ext)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # a failed attempt leaves no scratch behind
        raise
    chunks: list[dict[str, Any]] = [{"path": c.path, "offset": c.offset, "duration": c.duration} for c in prepared.chunks]
    if not model_caps(ctx).segments:  # text-only models: their subtitles are timed from the silences
        for chunk in chunks:
            chunk["silences"] = silences_in(prepared.silences, chunk["offset"], chunk["duration"])
    return {"path": path_value, "duration": prepared.duration, "chunks": chunks, "chunk_seconds": seconds}


def silences_in(silences: list[tuple[float, float]], offset: float, duration: float) -> list[list[float]]:
    """The silences within one chunk, relative to its start (rounded: they travel in the task payload)."""
    end = offset + duration
    return [[round(max(s, offset) - offset, 3), round(min(e, end) - offset, 3)]
            for s, e in silences if e > offset and s < end]  # fmt: skip


def preprocess(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """The PREPROCESS handler: {"path", "sha256"?} -> {"path", "duration", "chunks": [{path, offset, duration}]}."""
    result = prepare(ctx, payload.get("path"))
    for key in ("sha256", "url", "title"):
        if key in payload:
            result[key] = payload[key]
    return result
