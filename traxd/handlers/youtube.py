"""YOUTUBE: metadata of a site URL through yt-dlp, saved as NAME.meta.json; the result feeds DOWNLOAD via yt-dlp."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traxd import outputs
from traxd.adapters import ytdlp
from traxd.adapters.download import check_url
from traxd.errors import PermanentError
from traxd.handlers.common import output_dir, output_name
from traxd.handlers.registry import TaskContext
from traxd.logging import get_logger

log = get_logger("youtube")
SUMMARY_KEYS = ("id", "title", "uploader", "channel", "upload_date", "duration", "webpage_url", "extractor")


def handle_youtube(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Fetch metadata only (no media), write NAME.meta.json beside the outputs, hand the URL to DOWNLOAD."""
    url = str(payload.get("url") or "").strip()
    if not url:
        raise PermanentError("YOUTUBE task has no url in its payload")
    s = ctx.settings
    check_url(url, s.allow_private_urls)
    info = ytdlp.extract_metadata(url, ytdlp.YtdlpLimits(timeout=s.download_timeout_seconds, allow_private=s.allow_private_urls))
    meta_path = _meta_path(ctx, payload, url)
    outputs.write_text_atomic(meta_path, json.dumps(_trimmed(info), indent=2, ensure_ascii=False, default=str) + "\n")
    summary = {key: info.get(key) for key in SUMMARY_KEYS if info.get(key) is not None}
    log.info("metadata_saved", task_id=ctx.task.id, extractor=info.get("extractor"), path=str(meta_path))
    return {"url": url, "via": "yt-dlp", "meta_path": str(meta_path), **summary}


def _meta_path(ctx: TaskContext, payload: dict[str, Any], url: str) -> Path:
    """NAME.meta.json under the stem the job's transcript will take: reserved now (NAME-2 when NAME is another
    input's), so TRANSCRIBE, choosing for the same source, finds the name its own and writes NAME.* beside it."""
    folder = output_dir(ctx, payload)
    owner = ctx.job.source if ctx.job is not None else url
    return outputs.inside(folder, f"{outputs.choose_base(folder, output_name(ctx, payload), owner)}.meta.json")


def _trimmed(info: dict[str, Any]) -> dict[str, Any]:
    """The info dict without the bulky per-format lists and signed media URLs (they expire anyway)."""
    drop = {"formats", "thumbnails", "requested_formats", "http_headers", "url", "fragments", "automatic_captions"}
    return {k: v for k, v in info.items() if k not in drop and not k.startswith("_")}
