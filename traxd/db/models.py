"""Table declarations of the Trax database (the schema itself comes from Alembic migrations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

# Plain Core tables: the code reads and writes them with Core statements only, and SQLAlchemy's ORM (its declarative
# classes) would add 4 MB to every process that opens the queue.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# The partial indexes of `tasks`: the rows each one covers (the same predicate on SQLite and PostgreSQL, but one).
PARTIAL_WHERE = {
    "ix_tasks_claim": "state = 'queued'",
    "ix_tasks_lease": "state = 'running'",
    "ix_tasks_failed": "state = 'failed'",
    "ix_tasks_cancelled": "state = 'cancelled'",
    "ix_tasks_succeeded_type": "state = 'succeeded'",
    # Finished rows only: a completion then adds one entry instead of moving one from the NULL end (a page less
    # written per settle); every query on it filters `finished_at >= ?`, which implies the predicate.
    "ix_tasks_finished_at": "finished_at IS NOT NULL",
    # Tasks with an error history (a few in a hundred): `/metrics` walks only these histories.
    "ix_tasks_errors": "errors <> '[]'",
}
# PostgreSQL compares a JSON column as text only through a cast (the metrics query spells the same predicate).
PG_PARTIAL_WHERE = PARTIAL_WHERE | {"ix_tasks_errors": "errors::text <> '[]'"}


def _required(name: str, *args: Any, **kw: Any) -> Column[Any]:
    return Column(name, *args, nullable=False, **kw)


def _optional(name: str, *args: Any, **kw: Any) -> Column[Any]:
    return Column(name, *args, nullable=True, **kw)


# One input (a file or URL) and where its outputs go.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _required("source", Text),
    _required("name", String(512)),
    _optional("output_dir", Text),
    _required("group_name", String(128), default="default", index=True),
    _required("options", JSON, default=dict),
    _required("created_at", Float),
    # Not started before this moment (epoch seconds; `--at` / `--not-before`); None = at once. Its first task's
    # run_after carries it for the claim; kept here so a retry of a job that never ran keeps its time.
    _optional("not_before", Float),
)

# A job that starts only once another has succeeded (`--after`): the claim skips a task of `job_id` while any task
# of `after_job_id` is not succeeded. Dependencies are given at enqueue and only on jobs that exist, so no cycle.
job_deps = Table(
    "job_deps",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("after_job_id", Integer, ForeignKey("jobs.id"), primary_key=True, index=True),
)

# A unit of work with its lease, retries and result.
tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _optional("job_id", Integer, ForeignKey("jobs.id"), index=True),
    _required("type", String(32)),
    _required("payload", JSON, default=dict),
    _required("state", String(16)),
    _required("priority", Integer),
    _required("attempts", Integer, default=0),
    _required("max_retries", Integer),
    _required("run_after", Float),
    _optional("lease_owner", String(255)),
    _optional("lease_expires_at", Float),
    _optional("error_kind", String(16)),
    _optional("error_message", Text),
    _required("errors", JSON, default=list),
    _optional("result", JSON),
    _optional("dedupe_key", String(255), unique=True),
    _required("created_at", Float),
    _required("updated_at", Float),
    _optional("started_at", Float),
    _optional("finished_at", Float),
    # The host whose local files this task reads; None means any machine may claim it.
    _optional("affinity", String(255)),
    # The claim query reads only queued rows in (priority, id) order: a partial index keeps it
    # small and fast whatever the number of finished tasks.
    Index("ix_tasks_claim", "priority", "id", "run_after", sqlite_where=text(PARTIAL_WHERE["ix_tasks_claim"])),
    Index("ix_tasks_lease", "lease_expires_at", sqlite_where=text(PARTIAL_WHERE["ix_tasks_lease"])),
    # Status and the dashboard: throughput and the current work by finish time; the few failed/cancelled rows.
    Index("ix_tasks_finished_at", "finished_at", sqlite_where=text(PARTIAL_WHERE["ix_tasks_finished_at"])),
    Index("ix_tasks_failed", "job_id", sqlite_where=text(PARTIAL_WHERE["ix_tasks_failed"])),
    Index("ix_tasks_cancelled", "job_id", sqlite_where=text(PARTIAL_WHERE["ix_tasks_cancelled"])),
    # `/metrics`: succeeded tasks per type from the index alone (the other states have partial indexes above).
    Index("ix_tasks_succeeded_type", "type", "state", sqlite_where=text(PARTIAL_WHERE["ix_tasks_succeeded_type"])),
    Index("ix_tasks_errors", "id", sqlite_where=text(PARTIAL_WHERE["ix_tasks_errors"])),
)


def declare_postgresql_predicates() -> None:
    """Give the partial indexes their PostgreSQL predicates too (what a PostgreSQL engine compares against).

    Not in the declarations: any `postgresql_*` option loads SQLAlchemy's PostgreSQL dialect, 3 MB of memory that a
    daemon on SQLite never uses. `open_engine` calls this for a PostgreSQL URL.
    """
    for index in tasks.indexes:
        if index.name in PARTIAL_WHERE:
            index.dialect_kwargs["postgresql_where"] = text(PG_PARTIAL_WHERE[index.name])


# Desired state per scope: '*' for the whole queue, or a task type paused for a reason.
control = Table(
    "control",
    metadata,
    Column("scope", String(32), primary_key=True),
    _required("state", String(16)),
    _optional("reason", Text),
    _required("updated_at", Float),
)

# One daemon's heartbeat.
workers = Table(
    "workers",
    metadata,
    Column("owner", String(255), primary_key=True),
    _required("host", String(255)),
    _required("pid", Integer),
    _required("started_at", Float),
    _required("last_seen", Float),
    _required("active_tasks", Integer, default=0),
    _required("slots", Integer, default=0),
    _required("rss_mb", Float, default=0.0),
    _required("cpu_percent", Float, default=0.0),
)

# A file an inbox scan has queued, with the stamp it had: a restart skips it unless the stamp changed.
ingested_files = Table(
    "ingested_files",
    metadata,
    Column("host", String(255), primary_key=True),  # "" when the inboxes are shared storage
    Column("path", Text, primary_key=True),
    _required("outbox", Text),
    _required("size", BigInteger),
    _required("mtime_ns", BigInteger),
    _required("inode", BigInteger),
    _optional("sha256", String(64)),
    _required("seen_at", Float),
)

# One finished transcript in the search archive (its NAME.json and the job that made it).
transcripts = Table(
    "transcripts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _optional("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), unique=True),
    _required("json_path", Text, unique=True),
    _required("name", String(512)),
    _required("source", Text),
    _optional("language", String(16)),
    _optional("duration", Float),
    _required("indexed_at", Float, index=True),
)

# One segment of an archived transcript; the full-text index (FTS5 / tsvector) is kept on `text`.
transcript_segments = Table(
    "transcript_segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _required("transcript_id", Integer, ForeignKey("transcripts.id", ondelete="CASCADE"), index=True),
    _required("seq", Integer),
    _required("start_sec", Float),
    _required("end_sec", Float),
    _optional("speaker", String(128)),
    _required("text", Text),
)


# Full-text objects the engines add beside the declared tables (migration 0003): the FTS5 table and its shadow
# tables on SQLite, the generated tsvector column and its GIN index on PostgreSQL. Schema comparisons skip them.
SEARCH_ENGINE_TABLE_PREFIX = "transcript_segments_fts"
SEARCH_ENGINE_COLUMNS = {("transcript_segments", "tsv")}
SEARCH_ENGINE_INDEXES = {"ix_transcript_segments_tsv"}


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's filter: leave the engine-specific full-text objects out of schema comparisons."""
    if not reflected or compare_to is not None or name is None:
        return True
    if type_ == "table":
        return not name.startswith(SEARCH_ENGINE_TABLE_PREFIX)
    if type_ == "column":
        return (getattr(getattr(obj, "table", None), "name", None), name) not in SEARCH_ENGINE_COLUMNS
    if type_ == "index":
        return name not in SEARCH_ENGINE_INDEXES
    return True


# An enrolled speaker: a name and the voice print (embedding) diarized speakers are matched against.
voices = Table(
    "voices",
    metadata,
    Column("name", String(255), primary_key=True),
    _required("embedding", JSON),
    _required("model", String(64)),
    _optional("sample", Text),
    _required("seconds", Float, default=0.0),
    _required("created_at", Float),
)

# What a finished local task cost on a host: the history the claim's memory check and the ETA predict from
# (traxd/costs.py). One row per finished TRANSCRIBE/PREPROCESS run that reported its media duration.
task_costs = Table(
    "task_costs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _required("host", String(255)),
    _required("type", String(32)),
    _required("model", String(255)),
    _required("seconds_audio", Float),
    _required("wall_seconds", Float),
    _required("peak_rss_mb", Float),
    _required("finished_at", Float),
    Index("ix_task_costs_host_type_model", "host", "type", "model", "finished_at"),
)
