"""SUMMARIZE: NAME.summary.md from the transcript's segments through DeepSeek (JSON mode), part by part, combined.

Each part's checked reply and the combined one are paid checkpoints: a retry sends only what is not done yet.
Timestamps that are not real segment starts are dropped. A reply that breaks the rules raises BadAnswerError:
the queue retries, then fails the task with that reason; the transcript's outputs are never touched.
"""

from __future__ import annotations

import json
from typing import Any

from traxd import outputs, summarize
from traxd.adapters.deepseek import DeepSeek
from traxd.errors import BadAnswerError, RetryableError
from traxd.handlers.common import (
    deepseek_client,
    read_transcript,
    save_paid,
    transcript_paths,
)
from traxd.handlers.registry import TaskContext
from traxd.handlers.resume import resume_state
from traxd.llmjson import chunk_segments
from traxd.logging import get_logger
from traxd.types import TaskType

log = get_logger("summarize")
SUMMARY_TOKENS = 2048


def handle_summarize(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Summarise the transcript named by the previous stage's result; write NAME.summary.md; note it in NAME.json."""
    json_path, _ = transcript_paths(payload, TaskType.SUMMARIZE)
    doc = read_transcript(json_path)
    segments = [s for s in doc["segments"] if isinstance(s, dict) and str(s.get("text") or "").strip()]
    if segments:
        result = _summarise(ctx, segments)
    else:
        result = {"summary": "The transcript is empty.", "dropped": 0, **{k: [] for k in summarize.LISTS}}
    base = json_path.name.removesuffix(".json")
    md_path = outputs.inside(json_path.parent, f"{base}.summary.md")
    name = str(doc.get("name") or base)
    outputs.write_text_atomic(md_path, summarize.to_markdown(name, str(doc.get("source") or ""), result))
    record = {"path": str(md_path), "model": ctx.settings.enhance_model, "dropped_timestamps": result["dropped"],
              **{k: len(result[k]) for k in summarize.LISTS}}  # fmt: skip
    outputs.update_json(json_path, {"summary": record})
    log.info("summary_written", task_id=ctx.task.id, dropped=result["dropped"])
    return {"json_path": str(json_path), "summary_path": str(md_path), "summary": record}


def _summarise(ctx: TaskContext, segments: list[dict[str, Any]]) -> dict[str, Any]:
    """One request per part (checkpointed), then one that combines them when there are several."""
    chunks = chunk_segments(segments, ctx.settings.summary_chunk_chars)
    starts = summarize.real_starts(segments)
    state = _resume_state(ctx, segments, chunks)
    client = deepseek_client(ctx)
    parts: dict[str, dict[str, Any]] = state["parts"]
    for n, idxs in enumerate(chunks):
        if str(n) not in parts:
            messages = summarize.part_messages([segments[i] for i in idxs])
            parts[str(n)] = _ask(ctx, client, messages, starts, f"part {n + 1} of {len(chunks)}")
            save_paid(ctx, state)
    if len(chunks) == 1:
        return parts["0"]
    if "final" not in state:
        pieces = [{k: v for k, v in parts[str(n)].items() if k != "dropped"} for n in range(len(chunks))]
        final = _ask(ctx, client, summarize.combine_messages(pieces), starts, "the combined summary")
        final["dropped"] += sum(parts[str(n)]["dropped"] for n in range(len(chunks)))
        state["final"] = final
        save_paid(ctx, state)
    combined: dict[str, Any] = state["final"]
    return combined


def _ask(ctx: TaskContext, client: DeepSeek, messages: list[dict[str, str]], starts: set[float], what: str) -> dict[str, Any]:
    if ctx.cancelled.is_set():
        raise RetryableError(f"summary stopped before {what}")
    reply = client.complete(messages, max_tokens=SUMMARY_TOKENS, json_mode=True)
    if reply.finish_reason == "length":
        raise BadAnswerError(f"{what}: the reply was cut off (max_tokens)")
    try:
        return summarize.check_reply(reply.text, starts)
    except BadAnswerError as exc:
        raise BadAnswerError(f"{what}: {exc}") from None


def _resume_state(ctx: TaskContext, segments: list[dict[str, Any]], chunks: list[list[int]]) -> dict[str, Any]:
    """Parts a previous attempt paid for, kept only if it worked on the same segments cut the same way."""
    basis = json.dumps([[(s.get("start"), s.get("text")) for s in segments], chunks], ensure_ascii=False)
    return resume_state(ctx.previous, basis, "parts", carry=("final",))
