"""A bulk re-index leaves the full-text index merged: one FTS5 segment on SQLite; on PostgreSQL the GIN pending list
is flushed (the search still answers on both)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from traxd import archive, outputs
from traxd.queue.store import Store


def _segments_in_the_fts_index(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(DISTINCT segid) FROM transcript_segments_fts_idx")).scalar_one())


def test_a_bulk_reindex_merges_the_full_text_index(store: Store, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for n in range(12):
        doc = {"source": f"/inbox/talk-{n}.mp3", "segments": [{"start": 0, "end": 1, "text": f"budget item{n} plan"}]}
        (outbox / f"talk-{n}.json").write_text(json.dumps(doc))
        # indexed one transaction each, as finished transcriptions are: the index is in pieces
        store.index_transcript(outputs.index_entry(doc, outbox / f"talk-{n}.json") or {}, None)
    sqlite = store.engine.dialect.name == "sqlite"
    if sqlite:
        assert _segments_in_the_fts_index(store) > 1
    done = archive.reindex(store, outbox)
    assert done.transcripts == 12
    if sqlite:
        assert _segments_in_the_fts_index(store) == 1
    assert len(archive.search("budget", store=store, limit=50)) == 12
