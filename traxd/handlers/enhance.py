"""ENHANCE: DeepSeek clean-up of NAME.txt in chunks, each validated; NAME.enhanced.txt and the verdict in NAME.json.

The prompt, the chunking and the guard are pure and live in traxd/enhance_prompt.py; this is the handler.

Every enhanced chunk is checkpointed, so a retry after a crash or a 429 pays only for the chunks not done yet.
A chunk that fails validation keeps its original text; the verdict is "accepted" (all chunks kept their
enhancement), "partial" or "rejected" (none did: no NAME.enhanced.txt is written and the original stands).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traxd import enhance_prompt
from traxd.adapters.deepseek import DeepSeek
from traxd.errors import PermanentError, RetryableError
from traxd.handlers.common import deepseek_client, save_paid, transcript_paths
from traxd.handlers.registry import TaskContext
from traxd.handlers.resume import resume_state
from traxd.llmjson import max_tokens_for
from traxd.logging import get_logger
from traxd.outputs import update_json, write_text_atomic
from traxd.types import TaskType

log = get_logger("enhance")


def handle_enhance(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Enhance the transcript named by the TRANSCRIBE result; record the verdict in its JSON."""
    json_path, txt_path = transcript_paths(payload, TaskType.ENHANCE)
    original = _read_original(json_path, txt_path)
    s = ctx.settings
    chunks = enhance_prompt.split_chunks(original, s.enhance_chunk_chars) if original.strip() else []
    state = _resume_state(ctx, original)
    if chunks:
        client = deepseek_client(ctx)
        _enhance_chunks(ctx, client, chunks, state)
    verdict = _verdict(original, chunks, state["done"], s.enhance_model, s.enhance_min_similarity)
    enhanced_path = json_path.with_name(json_path.name.removesuffix(".json") + ".enhanced.txt")
    if verdict["status"] in ("accepted", "partial"):
        write_text_atomic(enhanced_path, verdict.pop("_text"))
        verdict["path"] = str(enhanced_path)
    verdict.pop("_text", None)
    _record(json_path, verdict)
    log.info("enhance_finished", task_id=ctx.task.id, status=verdict["status"], similarity=verdict["similarity"])
    return {"json_path": str(json_path), "txt_path": str(txt_path), "enhanced_path": verdict.get("path"),
            "enhancement": verdict}  # fmt: skip


def _read_original(json_path: Path, txt_path: Path) -> str:
    """The transcript text: NAME.txt when present, else the JSON's "text"."""
    if txt_path.is_file():
        return txt_path.read_text(encoding="utf-8")
    if not json_path.is_file():
        raise PermanentError(f"transcript {json_path.name} is missing from {json_path.parent}")
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    return str(doc.get("text") or "") if isinstance(doc, dict) else ""


def _resume_state(ctx: TaskContext, original: str) -> dict[str, Any]:
    """The chunks a previous attempt paid for, if it worked on this same text with the same chunking."""
    return resume_state(ctx.previous, f"{ctx.settings.enhance_chunk_chars}:{original}", "done")


def _enhance_chunks(ctx: TaskContext, client: DeepSeek, chunks: list[str], state: dict[str, Any]) -> None:
    """Send each chunk not yet done, validate the reply, checkpoint after each."""
    min_similarity = ctx.settings.enhance_min_similarity
    for index, chunk in enumerate(chunks):
        if str(index) in state["done"]:
            continue
        if ctx.cancelled.is_set():
            raise RetryableError(f"enhancement interrupted after {len(state['done'])} of {len(chunks)} chunks")
        reply = client.complete(enhance_prompt.build_messages(chunk), max_tokens=max_tokens_for(len(chunk)))
        text = enhance_prompt.extract_reply(reply.text)
        verdict = enhance_prompt.check(chunk, text, min_similarity)
        if reply.finish_reason == "length" and verdict.accepted:
            verdict = enhance_prompt.Check(False, verdict.similarity, verdict.length_ratio, "the reply was cut off")
        state["done"][str(index)] = {"text": text if verdict.accepted else None, "similarity": verdict.similarity,
                                     "accepted": verdict.accepted, "reason": verdict.reason}  # fmt: skip
        save_paid(ctx, state)


def _verdict(
    original: str, chunks: list[str], done: dict[str, Any], model: str, min_similarity: float
) -> dict[str, Any]:
    """The enhancement section of NAME.json (plus the assembled text under "_text")."""
    if not chunks:
        return {"requested": True, "status": "skipped", "reason": "empty transcript", "similarity": 1.0}
    results = [done[str(i)] for i in range(len(chunks))]
    accepted = sum(1 for r in results if r["accepted"])
    status = "accepted" if accepted == len(chunks) else "rejected" if accepted == 0 else "partial"
    text = enhance_prompt.assemble(chunks, [r["text"] for r in results])
    weights = [max(1, len(enhance_prompt.words(c))) for c in chunks]
    score = sum(r["similarity"] * w for r, w in zip(results, weights, strict=True)) / sum(weights)
    rejected = [{"chunk": i, "reason": r["reason"]} for i, r in enumerate(results) if not r["accepted"]]
    verdict: dict[str, Any] = {"requested": True, "status": status, "similarity": round(score, 4), "model": model,
                               "threshold": min_similarity, "chunks": len(chunks), "rejected_chunks": rejected,
                               "_text": text}  # fmt: skip
    if rejected:
        verdict["warning"] = _warning(status, rejected, len(chunks))
    return verdict


def _warning(status: str, rejected: list[dict[str, Any]], total: int) -> str:
    first = rejected[0]["reason"]
    if status == "rejected":
        return f"enhancement rejected: {first}; the original transcript is kept"
    return f"enhancement partly rejected: {len(rejected)} of {total} chunks kept their original text ({first})"


def _record(json_path: Path, verdict: dict[str, Any]) -> None:
    """Write the verdict into NAME.json and add its warning (once) to the file's warnings."""
    current: dict[str, Any] = {}
    if json_path.is_file():
        loaded = json.loads(json_path.read_text(encoding="utf-8"))
        current = loaded if isinstance(loaded, dict) else {}
    patch: dict[str, Any] = {"enhancement": verdict}
    warning = verdict.get("warning")
    if warning:
        warnings = [w for w in current.get("warnings") or [] if not str(w).startswith("enhancement ")]
        patch["warnings"] = [*warnings, warning]
    update_json(json_path, patch)
