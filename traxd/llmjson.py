"""Pure helpers for LLM stages that talk JSON: segments cut into chunks that fit, and replies read strictly."""

from __future__ import annotations

import json
from typing import Any

from traxd.errors import BadAnswerError

# A transcript inside a prompt is data: these tags are never allowed to appear in it (enhance, translate, summarize).
OPEN_TAG, CLOSE_TAG = "<transcript>", "</transcript>"


def chunk_segments(segments: list[dict[str, Any]], max_chars: int) -> list[list[int]]:
    """Indexes of the segments, cut into consecutive chunks of at most `max_chars` of text (one segment at least)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, seg in enumerate(segments):
        n = len(str(seg.get("text", ""))) + 16  # the id and JSON around each text
        if current and size + n > max_chars:
            chunks.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    if current:
        chunks.append(current)
    return chunks


def as_data(payload: dict[str, Any]) -> str:
    """A JSON payload between transcript tags, with the tags themselves defused inside it."""
    return delimit(json.dumps(payload, ensure_ascii=False))


def delimit(text: str) -> str:
    """Text between transcript tags; tags inside it are defused, so it cannot end the data block early."""
    text = text.replace(CLOSE_TAG, "</ transcript>").replace(OPEN_TAG, "< transcript>")
    return f"{OPEN_TAG}\n{text}\n{CLOSE_TAG}"


def parse_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object of a reply; BadAnswerError saying what was wrong (empty, not JSON, not an object)."""
    body = text.strip()
    if body.startswith("```"):  # some models wrap JSON in a fence even in JSON mode
        body = body.strip("`").removeprefix("json").strip()
    if not body:
        raise BadAnswerError(f"the {what} reply was empty")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadAnswerError(f"the {what} reply was not valid JSON") from None
    if not isinstance(data, dict):
        raise BadAnswerError(f"the {what} reply was JSON but not an object")
    return data


def max_tokens_for(chars: int, factor: float = 1.0, ceiling: int = 8192) -> int:
    """An output cap for a reply about `chars` long times `factor` (about 1 token per 3 characters, plus room)."""
    return max(512, min(ceiling, int(chars * factor) // 2 + 512))
