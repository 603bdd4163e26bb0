"""The transcript archive's API: `search(query, …)` -> ranked SearchHits, and `reindex` from the DB or .json files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traxd.outputs import index_entry
from traxd.queue.store import Store
from traxd.searchquery import QueryError, make_filters, parse
from traxd.types import SearchHit

__all__ = ["QueryError", "Reindexed", "SearchHit", "reindex", "search"]


def search(
    query: str,
    *,
    since: str | float | None = None,
    inbox: str | os.PathLike[str] | None = None,
    speaker: str | None = None,
    language: str | None = None,
    limit: int = 20,
    store: Store | None = None,
    database_url: str | None = None,
) -> list[SearchHit]:
    """Ranked hits for `query` (words, "phrases", prefix*, OR, -word, groups); QueryError for a malformed one.

    `since`: a span back from now ("7d", "12h") or a date; `inbox`: only inputs under that folder. Uses `store`,
    else the database at `database_url`, else the configured one.
    """
    filters = make_filters(since, inbox, speaker, language, limit)
    node = parse(query)
    with _store(store, database_url) as s:
        return s.search_archive(node, filters)


@contextmanager
def _store(store: Store | None, database_url: str | None) -> Iterator[Store]:
    if store is not None:
        yield store
        return
    from traxd.config import load_settings
    from traxd.database import open_store

    overrides = {"database_url": database_url} if database_url else {}
    opened = open_store(load_settings(overrides), pool_size=1)
    try:
        yield opened
    finally:
        opened.engine.dispose()


@dataclass(frozen=True)
class Reindexed:
    """What a re-index did."""

    transcripts: int
    segments: int
    skipped: list[str]


def reindex(store: Store, folder: Path | None = None) -> Reindexed:
    """Index every finished transcript again: from the jobs in the database, or from the .json files in `folder`."""
    items = _from_folder(folder) if folder is not None else _from_database(store)
    done = segs = 0
    skipped: list[str] = []
    for job_id, path in items:
        entry = _read_entry(path)
        if entry is None:
            skipped.append(str(path))
            continue
        store.index_transcript(entry, job_id)
        done, segs = done + 1, segs + len(entry["segments"])
    if done:
        store.optimize_archive()  # each transcript was its own transaction: merge the pieces they left
    return Reindexed(done, segs, skipped)


def _from_database(store: Store) -> list[tuple[int | None, Path]]:
    out: list[tuple[int | None, Path]] = []
    for job_id, result in store.finished_transcripts():
        path = (result.get("outputs") or {}).get("json") if isinstance(result.get("outputs"), dict) else None
        if path:
            out.append((job_id, Path(path)))
    return out


def _from_folder(folder: Path) -> list[tuple[int | None, Path]]:
    if not folder.is_dir():
        raise QueryError(f"--from {folder} is not a folder of transcripts")
    return [(None, p) for p in sorted(folder.rglob("*.json")) if not p.name.startswith(".")]


def _read_entry(path: Path) -> dict[str, Any] | None:
    """The archive entry of one NAME.json, or None when it is missing, unreadable or not a transcript."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index_entry(doc, path) if isinstance(doc, dict) and doc.get("source") else None
