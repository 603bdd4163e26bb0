"""Search archive on SQLite: FTS5 prefix indexes (2-4 characters), so `budg*` reads one index entry, not every term.

The FTS5 table is rebuilt from the segments table (external content), so every transcript indexed so far is kept.
PostgreSQL needs no change (its GIN index answers prefixes).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TRIGGERS = [
    ("CREATE TRIGGER transcript_segments_ai AFTER INSERT ON transcript_segments BEGIN "
     "INSERT INTO transcript_segments_fts(rowid, text) VALUES (new.id, new.text); END"),
    ("CREATE TRIGGER transcript_segments_ad AFTER DELETE ON transcript_segments BEGIN "
     "INSERT INTO transcript_segments_fts(transcript_segments_fts, rowid, text) VALUES ('delete', old.id, old.text); END"),
    ("CREATE TRIGGER transcript_segments_au AFTER UPDATE ON transcript_segments BEGIN "
     "INSERT INTO transcript_segments_fts(transcript_segments_fts, rowid, text) VALUES ('delete', old.id, old.text); "
     "INSERT INTO transcript_segments_fts(rowid, text) VALUES (new.id, new.text); END"),
]


def _recreate(prefix: str) -> None:
    for name in ("transcript_segments_ai", "transcript_segments_ad", "transcript_segments_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS transcript_segments_fts")
    op.execute(
        "CREATE VIRTUAL TABLE transcript_segments_fts USING fts5(text, content='transcript_segments', "
        f"content_rowid='id', tokenize='unicode61 remove_diacritics 2'{prefix})"
    )
    for statement in TRIGGERS:
        op.execute(statement)
    op.execute("INSERT INTO transcript_segments_fts(transcript_segments_fts) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate(", prefix='2 3 4'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate("")
