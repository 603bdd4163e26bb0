"""Search archive: transcripts and their segments, with SQLite FTS5 or a PostgreSQL tsvector + GIN index.

SQLite: an external-content FTS5 table (unicode61, diacritics removed) kept in step by triggers, so every
insert or delete of a segment (including a cascade from its job) updates the index in the same transaction.
PostgreSQL: a generated tsvector column over a text-search configuration that folds case and accents
(unaccent, when the server has it), with a GIN index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    ("CREATE VIRTUAL TABLE transcript_segments_fts USING fts5(text, content='transcript_segments', "
     "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"),
    ("CREATE TRIGGER transcript_segments_ai AFTER INSERT ON transcript_segments BEGIN "
     "INSERT INTO transcript_segments_fts(rowid, text) VALUES (new.id, new.text); END"),
    ("CREATE TRIGGER transcript_segments_ad AFTER DELETE ON transcript_segments BEGIN "
     "INSERT INTO transcript_segments_fts(transcript_segments_fts, rowid, text) VALUES ('delete', old.id, old.text); END"),
    ("CREATE TRIGGER transcript_segments_au AFTER UPDATE ON transcript_segments BEGIN "
     "INSERT INTO transcript_segments_fts(transcript_segments_fts, rowid, text) VALUES ('delete', old.id, old.text); "
     "INSERT INTO transcript_segments_fts(rowid, text) VALUES (new.id, new.text); END"),
]
PG_CONFIG = "trax_search"


def upgrade() -> None:
    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", name="fk_transcripts_job_id_jobs",
                                                        ondelete="CASCADE"), nullable=True),
        sa.Column("json_path", sa.Text(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("indexed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transcripts"),
        sa.UniqueConstraint("job_id", name="uq_transcripts_job_id"),
        sa.UniqueConstraint("json_path", name="uq_transcripts_json_path"),
    )
    op.create_index("ix_transcripts_indexed_at", "transcripts", ["indexed_at"])
    op.create_table(
        "transcript_segments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("transcript_id", sa.Integer(), sa.ForeignKey(
            "transcripts.id", name="fk_transcript_segments_transcript_id_transcripts", ondelete="CASCADE"),
            nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("start_sec", sa.Float(), nullable=False),
        sa.Column("end_sec", sa.Float(), nullable=False),
        sa.Column("speaker", sa.String(128), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transcript_segments"),
    )
    op.create_index("ix_transcript_segments_transcript_id", "transcript_segments", ["transcript_id"])
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_fulltext()
    else:
        for statement in SQLITE_FTS:
            op.execute(statement)


def _postgresql_fulltext() -> None:
    """A configuration that lower-cases and strips accents, a generated tsvector over it, a GIN index."""
    bind = op.get_bind()
    has_unaccent = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'").first() is not None
    op.execute(f"CREATE TEXT SEARCH CONFIGURATION {PG_CONFIG} (COPY = simple)")
    if has_unaccent:
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        op.execute(f"ALTER TEXT SEARCH CONFIGURATION {PG_CONFIG} "
                   "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple")
    op.execute(f"ALTER TABLE transcript_segments ADD COLUMN tsv tsvector "
               f"GENERATED ALWAYS AS (to_tsvector('{PG_CONFIG}'::regconfig, text)) STORED")
    op.execute("CREATE INDEX ix_transcript_segments_tsv ON transcript_segments USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table("transcript_segments")
        op.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {PG_CONFIG}")
    else:
        for name in ("transcript_segments_ai", "transcript_segments_ad", "transcript_segments_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS transcript_segments_fts")
        op.drop_table("transcript_segments")
    op.drop_table("transcripts")
