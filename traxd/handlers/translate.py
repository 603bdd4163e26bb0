"""TRANSLATE: the transcript's segments through DeepSeek (JSON mode, ids kept) into NAME.<code>.txt/.srt/.vtt.

Each chunk's checked reply is a paid checkpoint, so a retry after a kill, a 429 or a bad reply sends only the
chunks not done yet. A reply that breaks the rules raises BadAnswerError: the queue retries, then fails the task
with that reason; the transcript's own outputs are never touched.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from traxd import outputs, translate
from traxd.adapters.deepseek import DeepSeek
from traxd.errors import BadAnswerError, RetryableError
from traxd.handlers.common import (
    deepseek_client,
    option,
    read_transcript,
    save_paid,
    transcript_paths,
)
from traxd.handlers.registry import TaskContext
from traxd.llmjson import chunk_segments, max_tokens_for
from traxd.logging import get_logger
from traxd.types import TaskType

log = get_logger("translate")


def handle_translate(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Translate into every code of the job's `translate_to`; write the files; record them in NAME.json."""
    json_path, _ = transcript_paths(payload, TaskType.TRANSLATE)
    doc = read_transcript(json_path)
    segments = [s for s in doc["segments"] if isinstance(s, dict) and str(s.get("text") or "").strip()]
    targets = translate.parse_codes(option(ctx, "translate_to", ctx.settings.translate_to))
    chunks = chunk_segments(segments, ctx.settings.translate_chunk_chars)
    state = _resume_state(ctx, segments, chunks)
    client = deepseek_client(ctx) if segments and targets else None
    written: dict[str, dict[str, str]] = {}
    for code in targets:
        texts = _translate_all(ctx, client, code, segments, chunks, state) if client else []
        written[code] = _write(json_path, code, segments, texts)
        log.info("translation_written", task_id=ctx.task.id, language=code, segments=len(texts))
    record = {code: {**paths, "model": ctx.settings.enhance_model} for code, paths in written.items()}
    current = read_transcript(json_path).get("translations") or {}
    outputs.update_json(json_path, {"translations": {**current, **record}})
    return {"json_path": str(json_path), "translations": record}


def _resume_state(ctx: TaskContext, segments: list[dict[str, Any]], chunks: list[list[int]]) -> dict[str, Any]:
    """Chunks a previous attempt paid for, kept only if it worked on the same segments cut the same way."""
    basis = json.dumps([[s.get("text") for s in segments], chunks], ensure_ascii=False)
    signature = hashlib.sha256(basis.encode()).hexdigest()
    prev = ctx.previous
    done = prev.get("done") if prev.get("signature") == signature else None
    return {"signature": signature, "done": dict(done) if isinstance(done, dict) else {}}


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
        items = [{"id": i, "text": " ".join(str(segments[i]["text"]).split())} for i in idxs]
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


def _write(json_path: Path, code: str, segments: list[dict[str, Any]], texts: list[str]) -> dict[str, str]:
    """NAME.<code>.txt/.srt/.vtt with the original timings (and speakers)."""
    translated = [{"start": s.get("start", 0.0), "end": s.get("end", 0.0), "text": t,
                   **({"speaker": s["speaker"]} if s.get("speaker") else {})}
                  for s, t in zip(segments, texts, strict=True)]  # fmt: skip
    base = json_path.name.removesuffix(".json")
    texts_by_ext = {"txt": outputs.to_txt(translated), "srt": outputs.to_srt(translated),
                    "vtt": outputs.to_vtt(translated)}  # fmt: skip
    return {ext: str(outputs.write_text_atomic(outputs.inside(json_path.parent, f"{base}.{code}.{ext}"), text))
            for ext, text in texts_by_ext.items()}  # fmt: skip
