"""All SQL of the search archive: replace a transcript's segments, forget a job, and ranked full-text queries.

SQLite answers from the FTS5 table (bm25 rank, snippet()); PostgreSQL from the tsvector column (ts_rank_cd,
ts_headline), both with the same marks around matches, turned into offsets here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, or_, select, text
from sqlalchemy.engine import Connection

from traxd.db.models import transcript_segments as SEG
from traxd.db.models import transcripts as TR
from traxd.searchquery import Node, to_fts5, to_tsquery
from traxd.types import SearchFilters, SearchHit

OPEN, CLOSE = "\x02", "\x03"  # never in a transcript (stripped on indexing): safe to mark matches with
PG_CONFIG = "trax_search"
SNIPPET_TOKENS = 16
HEADLINE_OPTIONS = (f'StartSel="{OPEN}", StopSel="{CLOSE}", MaxWords=24, MinWords=10, ShortWord=1, '
                    'MaxFragments=1, FragmentDelimiter=" … "')  # fmt: skip


def replace_transcript_in(conn: Connection, entry: dict[str, Any], job_id: int | None, now: float) -> int:
    """Index one transcript in the caller's transaction, replacing what its job or its JSON had; returns its id."""
    path = str(entry["json_path"])
    old = conn.execute(select(TR.c.id, TR.c.job_id).where(
        or_(TR.c.json_path == path, TR.c.job_id == job_id) if job_id is not None else TR.c.json_path == path
    )).all()  # fmt: skip
    if job_id is None:
        job_id = next((r.job_id for r in old if r.job_id is not None), None)
    _delete_transcripts(conn, [r.id for r in old])
    values = {"job_id": job_id, "json_path": path, "name": str(entry.get("name") or ""),
              "source": str(entry.get("source") or ""), "language": entry.get("language"),
              "duration": entry.get("duration"), "indexed_at": now}  # fmt: skip
    tid = int(conn.execute(insert(TR).values(values).returning(TR.c.id)).scalar_one())
    rows = [{"transcript_id": tid, "seq": i, "start_sec": float(s["start"]), "end_sec": float(s["end"]),
             "speaker": s.get("speaker"), "text": _clean(s["text"])} for i, s in enumerate(entry["segments"])]  # fmt: skip
    if rows:
        conn.execute(insert(SEG), rows)
    return tid


def _clean(value: Any) -> str:
    return " ".join(str(value).replace(OPEN, " ").replace(CLOSE, " ").split())


def _delete_transcripts(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(delete(SEG).where(SEG.c.transcript_id.in_(ids)))
        conn.execute(delete(TR).where(TR.c.id.in_(ids)))


def optimize(conn: Connection) -> None:
    """Merge the full-text index after bulk indexing: one FTS5 b-tree instead of one per transaction; on PostgreSQL,
    the GIN index's pending list moved into the index (what autovacuum would do later), so queries read no list."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("INSERT INTO transcript_segments_fts(transcript_segments_fts) VALUES ('optimize')"))
    else:
        conn.execute(text("SELECT gin_clean_pending_list('ix_transcript_segments_tsv'::regclass)"))


def counts(conn: Connection) -> tuple[int, int]:
    """(transcripts, segments) in the archive."""
    return (int(conn.execute(select(func.count()).select_from(TR)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(SEG)).scalar_one()))  # fmt: skip


def ranked_hits(conn: Connection, node: Node, filters: SearchFilters) -> list[SearchHit]:
    """Ranked hits for a parsed query, best first (a higher score is a better match)."""
    where, params = _filters(filters)
    params.update(limit=filters.limit, candidates=max(CANDIDATES, filters.limit))
    if conn.dialect.name == "postgresql":
        params["q"] = to_tsquery(node)
        sql = _PG_SQL.format(where=where, config=PG_CONFIG)
        params["opts"] = HEADLINE_OPTIONS
    else:
        params.update(q=to_fts5(node), open=OPEN, close=CLOSE)
        sql = _SQLITE_SQL.format(where=where, tokens=SNIPPET_TOKENS, joins=_JOINS if where else "")
    return [_hit(r) for r in conn.execute(text(sql), params)]


_SELECT = ("t.name, t.source, t.json_path, s.start_sec, s.end_sec, s.speaker, t.language, t.job_id, s.id AS segment")
# Ranking every match of a word found in most segments would cost time in proportion to the archive, so the
# CANDIDATES newest matches (rowid / id order, which the engines walk without sorting) are ranked, and the best
# `limit` of those kept: exact for any query with fewer matches, "best of the newest" beyond. Joins and snippets
# run for the returned rows only; filters need the joins inside, so they are added there only when given.
CANDIDATES = 1000
_FTS = "transcript_segments_fts"
_SQLITE_SQL = (
    f"SELECT {_SELECT}, snippet({_FTS}, 0, :open, :close, '…', {{tokens}}) AS snip, best.score AS score FROM ("
    f"SELECT id, score FROM (SELECT {_FTS}.rowid AS id, -{_FTS}.rank AS score FROM {_FTS} {{joins}}"
    f"WHERE {_FTS} MATCH :q {{where}} ORDER BY {_FTS}.rowid DESC LIMIT :candidates) "
    "ORDER BY score DESC, id LIMIT :limit) AS best "
    f"JOIN {_FTS} ON {_FTS}.rowid = best.id AND {_FTS} MATCH :q "
    "JOIN transcript_segments s ON s.id = best.id JOIN transcripts t ON t.id = s.transcript_id "
    "ORDER BY best.score DESC, s.id"
)
_JOINS = f"JOIN transcript_segments s ON s.id = {_FTS}.rowid JOIN transcripts t ON t.id = s.transcript_id "
_PG_SQL = (
    f"SELECT {_SELECT}, ts_headline('{{config}}', s.text, q.q, :opts) AS snip, best.score AS score FROM ("
    "SELECT cand.id, ts_rank_cd(cand.tsv, q.q) AS score FROM ("
    "SELECT s.id, s.tsv FROM transcript_segments s JOIN transcripts t ON t.id = s.transcript_id "
    "WHERE s.tsv @@ to_tsquery('{config}', :q) {where} ORDER BY s.id DESC LIMIT :candidates) AS cand, "
    "to_tsquery('{config}', :q) AS q(q) ORDER BY score DESC, cand.id LIMIT :limit) AS best "
    "JOIN transcript_segments s ON s.id = best.id JOIN transcripts t ON t.id = s.transcript_id, "
    "to_tsquery('{config}', :q) AS q(q) ORDER BY best.score DESC, s.id"
)


def _filters(f: SearchFilters) -> tuple[str, dict[str, Any]]:
    """Extra WHERE conditions (bound parameters only) for the optional filters."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if f.since is not None:
        parts.append("t.indexed_at >= :since")
        params["since"] = f.since
    if f.inbox:
        parts.append("t.source LIKE :inbox ESCAPE '\\'")
        folder = f.inbox.rstrip("/")
        params["inbox"] = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
    if f.speaker:
        parts.append("lower(s.speaker) = lower(:speaker)")
        params["speaker"] = f.speaker
    if f.language:
        parts.append("lower(t.language) = lower(:language)")
        params["language"] = f.language
    return "".join(f" AND {p}" for p in parts), params


def _hit(row: Any) -> SearchHit:
    snippet, marks = _unmark(str(row.snip or ""))
    return SearchHit(row.name, row.source, row.json_path, float(row.start_sec), float(row.end_sec), row.speaker,
                     snippet, marks, row.language, row.job_id, int(row.segment), float(row.score))  # fmt: skip


def _unmark(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Plain snippet and the (start, end) offsets of the engine's marked matches."""
    out: list[str] = []
    marks: list[tuple[int, int]] = []
    size, start = 0, None
    for ch in marked:
        if ch == OPEN:
            start = size
        elif ch == CLOSE and start is not None:
            marks.append((start, size))
            start = None
        else:
            out.append(ch)
            size += 1
    return "".join(out), tuple(marks)
