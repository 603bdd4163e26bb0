"""TRANSLATE: the transcript's segments through DeepSeek (JSON mode, ids kept) into NAME.<code>.txt/.srt/.vtt.

Each chunk's checked reply is a paid checkpoint, so a retry after a kill, a 429 or a bad reply sends only the
chunks not done yet. A reply that breaks the rules raises BadAnswerError: the queue retries, then fails the task
with that reason; the transcript's own outputs are never touched.

`en` without a DeepSeek key on the local backend is Whisper's own translate task instead: the local model runs
again on the preprocessed audio TRANSCRIBE left in the job's scratch (kept for this stage; the job's input is cut
again when it is gone). It costs nothing, so a kill simply runs it again. Any other target without a key stops
with one line (AuthError: the daemon pauses translations until a key is set); the transcript is already written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traxd import outputs, pipelines, translate
from traxd.errors import AuthError, BadAnswerError, PermanentError, RetryableError
from traxd.handlers.common import (
    backend,
    deepseek_client,
    model_name,
    option,
    read_transcript,
    save_paid,
    transcript_paths,
    work_dir,
)
from traxd.handlers.registry import TaskContext
from traxd.handlers.resume import resume_state
from traxd.llmjson import chunk_segments, max_tokens_for
from traxd.logging import get_logger
from traxd.timeline import merge, plan_of
from traxd.types import TaskType

if TYPE_CHECKING:
    from traxd.adapters.deepseek import DeepSeek

log = get_logger("translate")


def handle_translate(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Translate into every code of the job's `translate_to`; write the files; record them in NAME.json."""
    json_path, _ = transcript_paths(payload, TaskType.TRANSLATE)
    doc = read_transcript(json_path)
    segments = [s for s in doc["segments"] if isinstance(s, dict) and str(s.get("text") or "").strip()]
    targets = translate.parse_codes(option(ctx, "translate_to", ctx.settings.translate_to))
    chunks = chunk_segments(segments, ctx.settings.translate_chunk_chars)
    state = _resume_state(ctx, segments, chunks)
    client: DeepSeek | None = None
    record: dict[str, dict[str, str]] = {}
    for code in targets:
        if code in whisper_codes(ctx):
            timed, model = whisper_segments(ctx, doc) if segments else [], f"whisper {model_name(ctx)}"
        else:
            client = client or (_client(ctx, code) if segments else None)
            texts = _translate_all(ctx, client, code, segments, chunks, state) if client else []
            timed, model = _timed(segments, texts), ctx.settings.enhance_model
        record[code] = {**_write(json_path, code, timed, doc.get("duration")), "model": model}
        current = read_transcript(json_path).get("translations") or {}
        outputs.update_json(json_path, {"translations": {**current, code: record[code]}})
        log.info("translation_written", task_id=ctx.task.id, language=code, segments=len(timed), model=model)
    return {"json_path": str(json_path), "translations": record}


def whisper_codes(ctx: TaskContext) -> tuple[str, ...]:
    """The job's targets Whisper translates itself (`en`, no DeepSeek key, local backend), else ()."""
    targets = translate.parse_codes(option(ctx, "translate_to", ctx.settings.translate_to))
    return translate.by_whisper(targets, bool(ctx.settings.deepseek_api_key), backend(ctx))


def keeps_audio(ctx: TaskContext) -> bool:
    """True when this job's TRANSLATE will run Whisper on the preprocessed audio: TRANSCRIBE and DIARIZE leave the
    job's scratch in place (it goes when the job ends)."""
    return pipelines.wants_translation(ctx.job) and bool(whisper_codes(ctx))


def whisper_segments(ctx: TaskContext, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """English segments on the whole file's timeline: the local model with task=translate on every chunk."""
    from traxd.adapters.transcribe_local import LocalTranscriber

    chunks, done = _audio(ctx, doc), {}
    engine = LocalTranscriber(ctx.settings.local_device, ctx.settings.memory_limit_mb)
    spoken = option(ctx, "language", ctx.settings.language) or doc.get("language")
    for i, chunk in enumerate(chunks):
        if ctx.cancelled.is_set():
            raise RetryableError(f"Whisper's translation stopped before chunk {i + 1} of {len(chunks)}")
        done[str(i)] = engine.transcribe(Path(chunk["path"]), model=model_name(ctx), duration=float(chunk["duration"]),
                                         language=spoken, task="translate")  # fmt: skip
    segments, _, _ = merge(plan_of(chunks), done)
    return [{k: s[k] for k in ("start", "end", "text")} for s in segments if s["text"]]


def _audio(ctx: TaskContext, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks TRANSCRIBE cut (kept in the job's scratch, laid out as NAME.json says), else the input cut again."""
    from traxd.handlers.preprocess import prepare

    kept = sorted((work_dir(ctx) / "chunks").glob("chunk_*.wav"))
    layout = [c for c in doc.get("chunks") or [] if isinstance(c, dict)]
    if kept and len(kept) == len(layout):
        return [{"path": str(p), "offset": c["offset"], "duration": c["duration"]}
                for p, c in zip(kept, layout, strict=True)]  # fmt: skip
    source = ctx.job.source if ctx.job is not None else doc.get("source")
    if not source or not Path(str(source)).is_file():
        raise PermanentError("Whisper's translation needs the audio, and neither the preprocessed chunks nor the "
                             f"input ({source}) are there any more")  # fmt: skip
    chunks: list[dict[str, Any]] = prepare(ctx, str(source), folder="translate")["chunks"]
    return chunks


def _client(ctx: TaskContext, code: str) -> DeepSeek:
    """The DeepSeek client; without a key one line that says what waits and what works without one."""
    if not ctx.settings.deepseek_api_key:
        raise AuthError(translate.no_key_message(code))
    return deepseek_client(ctx)


def _resume_state(ctx: TaskContext, segments: list[dict[str, Any]], chunks: list[list[int]]) -> dict[str, Any]:
    """Chunks a previous attempt paid for, kept only if it worked on the same segments cut the same way."""
    basis = json.dumps([[s.get("text") for s in segments], chunks], ensure_ascii=False)
    return resume_state(ctx.previous, basis, "done")


def _translate_all(
    ctx: TaskContext, client: DeepSeek, code: str, segments: list[dict[str, Any]], chunks: list[list[int]],
    state: dict[str, Any],
) -> list[str]:  # fmt: skip
    """Every chunk into `code`, each one sent only if no earlier attempt paid for it; checkpoint after each."""
    done: dict[str, list[str]] = state["done"].setdefault(code, {})
    for n, idxs in enumerate(chunks):
        if str(n) in done:
            continue
        if ctx.cancelled.is_set():
            raise RetryableError(f"translation to {code} stopped after {len(done)} of {len(chunks)} chunks")
        items: list[dict[str, Any]] = [{"id": i, "text": " ".join(str(segments[i]["text"]).split())} for i in idxs]
        chars = sum(len(it["text"]) for it in items)
        reply = client.complete(translate.build_messages(code, items), max_tokens=max_tokens_for(chars, 2.0),
                                json_mode=True)  # fmt: skip
        if reply.finish_reason == "length":
            raise BadAnswerError(f"the translation of chunk {n + 1} to {code} was cut off (max_tokens)")
        try:
            done[str(n)] = translate.check_reply(reply.text, items)
        except BadAnswerError as exc:
            raise BadAnswerError(f"chunk {n + 1} of {len(chunks)} to {code}: {exc}") from None
        save_paid(ctx, state)
    return [t for n in range(len(chunks)) for t in done[str(n)]]


def _timed(segments: list[dict[str, Any]], texts: list[str]) -> list[dict[str, Any]]:
    """The translated texts on the original timings (and speakers)."""
    return [{"start": s.get("start", 0.0), "end": s.get("end", 0.0), "text": t,
             **({"speaker": s["speaker"]} if s.get("speaker") else {})}
            for s, t in zip(segments, texts, strict=True)]  # fmt: skip


def _write(json_path: Path, code: str, translated: list[dict[str, Any]], duration: Any) -> dict[str, str]:
    """NAME.<code>.txt/.srt/.vtt, and NAME.<code>.json with the timed segments (what the server answers from)."""
    base = json_path.name.removesuffix(".json")
    words = " ".join(" ".join(str(s.get("text") or "").split()) for s in translated).strip()
    doc = {"language": code, "duration": duration, "text": words, "segments": translated}
    texts = {"txt": outputs.to_txt(translated), **{ext: outputs.render(ext, doc) for ext in ("srt", "vtt", "json")}}
    return {ext: str(outputs.write_text_atomic(outputs.inside(json_path.parent, f"{base}.{code}.{ext}"), text))
            for ext, text in texts.items()}  # fmt: skip
