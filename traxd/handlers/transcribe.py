"""TRANSCRIBE: chunks in order through the configured backend, each result checkpointed, merged, outputs written."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from traxd import outputs, pipelines, quality, vocabulary
from traxd.adapters import ffmpeg
from traxd.config import Settings
from traxd.errors import (
    ModelGoneError,
    PayloadTooLargeError,
    PermanentError,
    RetryableError,
)
from traxd.handlers.common import (
    DEFAULT_LOCAL_MODEL,
    backend,
    model_caps,
    model_name,
    option,
    output_dir,
    output_formats,
    output_name,
    own_model,
    save_paid,
    work_dir,
)
from traxd.handlers.preprocess import chunk_seconds, prepare
from traxd.handlers.registry import TaskContext
from traxd.handlers.translate import keeps_audio
from traxd.logging import get_logger
from traxd.timeline import file_language, merge, plan_of, shift, timed_from_silences

log = get_logger("transcribe")
PROMPT_CHARS = 600  # ~ the last 224 tokens Whisper reads from a prompt, for most languages


class Transcriber(Protocol):
    """A backend: transcribe one audio file; segments relative to its start."""

    backend: str

    def transcribe(self, path: Path, *, model: str, duration: float, language: str | None = None,
                   prompt: str | None = None, words: bool = False,
                   vocabulary: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
        """{"text", "language", "segments", "warnings"?} of one audio file; segments carry `words` when asked and
        offered; `vocabulary` names the rare words the audio holds."""
        ...


def build_transcriber(kind: str, settings: Settings) -> Transcriber:
    """The transcriber of a backend (SDK imports stay in the adapters)."""
    if kind == "openai":
        from traxd.adapters.transcribe_openai import OpenAITranscriber

        return OpenAITranscriber(settings.openai_api_key, settings.openai_base_url, settings.api_timeout_seconds)
    from traxd.adapters.transcribe_local import LocalTranscriber

    return LocalTranscriber(settings.local_device, settings.memory_limit_mb)


def preload_local_model(settings: Settings, model: str | None) -> None:
    """With the local backend, start loading the model a batch will use (`model`, else the configured one)."""
    if settings.effective_backend != "local":
        return
    from traxd.adapters.local_models import preload

    preload(model or settings.local_model or DEFAULT_LOCAL_MODEL, settings.local_device)


class Backends:
    """Transcribers built on first use and shared by every worker thread of the process."""

    def __init__(self, factory: Callable[[str, Settings], Transcriber] = build_transcriber) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Transcriber] = {}

    def get(self, ctx: TaskContext) -> Transcriber:
        """The transcriber for this task's settings."""
        kind, s = backend(ctx), ctx.settings
        key = ((kind, s.openai_api_key, s.openai_base_url, s.api_timeout_seconds) if kind == "openai"
               else (kind, s.local_device, s.memory_limit_mb))  # fmt: skip
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._factory(kind, s)
            return self._cache[key]


def make_handler(backends: Backends) -> Callable[[TaskContext, dict[str, Any]], dict[str, Any]]:
    """The TRANSCRIBE handler bound to shared backends."""

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        """TRANSCRIBE with this process's shared transcriber."""
        return transcribe(ctx, payload, backends.get(ctx))

    return handle


def transcribe(ctx: TaskContext, payload: dict[str, Any], engine: Transcriber) -> dict[str, Any]:
    """{"chunks": …} from PREPROCESS, or a plain {"path": …} (preprocessed inline) -> outputs written."""
    state = dict(ctx.previous)
    asked = {"model": model_name(ctx), "language": option(ctx, "language", ctx.settings.language), "chunk": chunk_seconds(ctx),
             "words": wants_words(ctx)}  # fmt: skip
    if terms := vocabulary_of(ctx):
        asked["vocabulary"] = list(terms)  # only when given: checkpoints from before the option stay valid
    if state.get("asked", asked) != asked:
        state.update(plan=[], done={}, prepared=None)  # re-run with other options: earlier chunks do not count
    state["asked"] = asked
    plan = state.get("plan") or []
    if not plan or len(state.get("done") or {}) < len(plan):
        chunks = _prepared(ctx, payload, state)["chunks"]
        if plan_of(chunks) != plan:
            state.update(plan=plan_of(chunks), done={})
        _run_chunks(ctx, engine, chunks, state, payload)
    doc = build_doc(ctx, payload, state, engine.backend)
    return _write(ctx, payload, state, doc)


def _prepared(ctx: TaskContext, payload: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """The chunks: the payload's, a previous attempt's inline preprocessing, or a fresh one when files are gone."""
    wanted = state["asked"]["chunk"]
    for candidate in (payload, state.get("prepared")):
        if candidate and candidate.get("chunk_seconds", wanted) != wanted:
            continue  # cut for another chunk size or model (options changed by a re-run)
        if candidate and candidate.get("chunks") and all(Path(c["path"]).is_file() for c in candidate["chunks"]):
            return candidate
    source = payload.get("path") or (ctx.job.source if ctx.job is not None else None)
    prepared = prepare(ctx, source)
    state["prepared"] = prepared
    ctx.checkpoint(state)
    return prepared


def _run_chunks(
    ctx: TaskContext, engine: Transcriber, chunks: list[dict[str, Any]], state: dict[str, Any], payload: dict[str, Any]
) -> None:
    """Send each chunk not yet done, in order; checkpoint after each so a crash never re-sends a finished one."""
    done: dict[str, Any] = state["done"]
    for i, chunk in enumerate(chunks):
        if str(i) in done:
            continue
        if ctx.cancelled.is_set():
            raise RetryableError(f"stopped before chunk {i + 1} of {len(chunks)}")
        prompt = prompt_tail(done[str(i - 1)]["text"]) if str(i - 1) in done else None
        done[str(i)] = _one_chunk(ctx, engine, chunk, i, prompt)
        # Saved before anything touches the output folder: a full disk there must not cost a paid chunk.
        save_paid(ctx, state)
        log.info("chunk_transcribed", task_id=ctx.task.id, chunk=i + 1, chunks=len(chunks))


def _one_chunk(ctx: TaskContext, engine: Transcriber, chunk: dict[str, Any], i: int, prompt: str | None) -> dict[str, Any]:
    """Transcribe a chunk (on 413 in two halves); text without timings is timed from the chunk's silences."""
    result = _whole_chunk(ctx, engine, chunk, i, prompt)
    silences = [(float(s), float(e)) for s, e in chunk.get("silences") or []]
    segments: list[dict[str, Any]] = []
    for seg in result["segments"]:
        segments += timed_from_silences(seg, silences) if seg.get("timing") == "none" else [seg]
    return {**result, "segments": segments}


def _whole_chunk(ctx: TaskContext, engine: Transcriber, chunk: dict[str, Any], i: int, prompt: str | None) -> dict[str, Any]:
    """Transcribe a chunk; on 413 cut it in two and try once more."""
    try:
        return _send(ctx, engine, Path(chunk["path"]), float(chunk["duration"]), prompt)
    except PayloadTooLargeError:
        log.warning("chunk_too_large", task_id=ctx.task.id, chunk=i + 1)
    whole = ffmpeg.Chunk(str(chunk["path"]), 0.0, float(chunk["duration"]))
    pieces = ffmpeg.resplit(whole, work_dir(ctx) / f"resplit-{i}", 2, ctx.cancelled)
    parts: list[dict[str, Any]] = []
    for piece in pieces:
        try:
            part = _send(ctx, engine, Path(piece.path), piece.duration, prompt)
        except PayloadTooLargeError as exc:
            raise PermanentError(f"chunk {i + 1} is too large even after re-chunking: {exc}") from None
        parts.append(shift(part, piece.offset, piece.offset + piece.duration))
        prompt = prompt_tail(part["text"]) or prompt
    return {"text": " ".join(p["text"] for p in parts if p["text"]), "language": parts[0].get("language"),
            "segments": [s for p in parts for s in p["segments"]]}  # fmt: skip


def _send(ctx: TaskContext, engine: Transcriber, path: Path, duration: float, prompt: str | None) -> dict[str, Any]:
    language = option(ctx, "language", ctx.settings.language)
    try:
        return engine.transcribe(path, model=model_name(ctx), duration=duration, language=language, prompt=prompt,
                                 words=wants_words(ctx), vocabulary=vocabulary_of(ctx))  # fmt: skip
    except ModelGoneError as exc:
        if not own_model(ctx):
            raise  # the configured model is gone: every task needs the fix, so the type pauses
        raise PermanentError(f"{exc}; this input asked for it with --model: run it again with another") from None


def prompt_tail(text: str, max_chars: int = PROMPT_CHARS) -> str | None:
    """The last words of a text, at most `max_chars` long (the context passed to the next chunk)."""
    return vocabulary.last_words(text, max_chars) or None


def build_doc(ctx: TaskContext, payload: dict[str, Any], state: dict[str, Any], kind: str) -> dict[str, Any]:
    """The NAME.json document."""
    plan = state["plan"]
    segments, text, language = merge(plan, state["done"])
    duration = round(sum(d for _, d in plan), 3)
    metrics = quality.file_quality(segments, duration)
    chunk_notes = [w for i in range(len(plan)) for w in state["done"][str(i)].get("warnings") or []]
    warnings = metrics["warnings"] + word_warnings(ctx, segments) + list(dict.fromkeys(chunk_notes))
    enhance = pipelines.wants_enhance(ctx.job)
    diarize = pipelines.wants_diarize(ctx.job)
    return {"name": output_name(ctx, payload), "source": _owner(ctx, payload), "language": language,
            "language_probability": file_language(plan, state["done"])[1],
            "duration": duration, "model": model_name(ctx), "backend": kind, "chunks": _chunk_notes(plan, state["done"]),
            "text": text, "segments": segments, "quality": metrics, "warnings": warnings,
            "enhancement": {"requested": enhance, "status": "pending" if enhance else "not_requested"},
            "diarization": {"requested": diarize, "status": "pending" if diarize else "not_requested"},
            "created_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip


def vocabulary_of(ctx: TaskContext) -> tuple[str, ...]:
    """The job's vocabulary list, else the settings'."""
    return vocabulary.parse(option(ctx, "vocabulary", ctx.settings.vocabulary))


def _chunk_notes(plan: list[list[float]], done: dict[str, Any]) -> list[dict[str, Any]]:
    """Each chunk's place in the file, and how the local engine decoded it (batched or sequential)."""
    notes = []
    for i, (offset, duration) in enumerate(plan):
        mode = (done[str(i)].get("decoding") or {}).get("mode")
        notes.append({"offset": offset, "duration": duration, **({"decoding": mode} if mode else {})})
    return notes


def wants_words(ctx: TaskContext) -> bool:
    """The job's (or the settings') --word-timestamps."""
    return bool(option(ctx, "word_timestamps", ctx.settings.word_timestamps))


def word_warnings(ctx: TaskContext, segments: list[dict[str, Any]]) -> list[str]:
    """One warning when word timings were asked for and the model gave none (the transcript is written anyway)."""
    if not wants_words(ctx):
        return []
    if not model_caps(ctx).words:
        return [f"no word timings: model {model_name(ctx)} does not return them (segment timings only)"]
    missing = sum(1 for seg in segments if seg.get("text") and not seg.get("words"))
    if missing:
        return [f"no word timings: the server gave none for {missing} of {len(segments)} segments"]
    return []


def _owner(ctx: TaskContext, payload: dict[str, Any]) -> str:
    return ctx.job.source if ctx.job is not None else str(payload.get("path") or f"task-{ctx.task.id}")


def _choose_name(ctx: TaskContext, payload: dict[str, Any], state: dict[str, Any]) -> bool:
    """Reserve the output name (the checkpointed one while it is still ours, so re-runs overwrite their own files)."""
    owner, chosen = _owner(ctx, payload), state.get("output_base")
    base = outputs.choose_base(output_dir(ctx, payload), output_name(ctx, payload), owner, prefer=chosen)
    state["output_base"] = base
    return base != chosen


def _write(ctx: TaskContext, payload: dict[str, Any], state: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Reserve the output name (checkpointed), write the files, drop the scratch; the result."""
    folder = output_dir(ctx, payload)
    if _choose_name(ctx, payload, state):
        ctx.checkpoint(state)
    paths = outputs.write_transcript(folder, state["output_base"], doc, output_formats(ctx))
    if ctx.work_dir is not None and not pipelines.wants_diarize(ctx.job) and not keeps_audio(ctx):
        shutil.rmtree(ctx.work_dir, ignore_errors=True)  # no later stage reads the audio (DIARIZE removes it)
    log.info("transcript_written", task_id=ctx.task.id, name=state["output_base"], output_dir=str(folder))
    return {"name": state["output_base"], "output_dir": str(folder), "outputs": paths, "language": doc["language"],
            "duration": doc["duration"], "model": doc["model"], "backend": doc["backend"], "chunks": len(doc["chunks"]),
            "quality": doc["quality"], "warnings": doc["warnings"], "media": payload.get("path"),
            "index": outputs.index_entry(doc, paths["json"])}  # fmt: skip

