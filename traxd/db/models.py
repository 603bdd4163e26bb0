"""Table declarations of the Trax database (the schema itself comes from Alembic migrations)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The partial indexes of `tasks`: the rows each one covers (the same predicate on SQLite and PostgreSQL).
PARTIAL_WHERE = {
    "ix_tasks_claim": "state = 'queued'",
    "ix_tasks_lease": "state = 'running'",
    "ix_tasks_failed": "state = 'failed'",
    "ix_tasks_cancelled": "state = 'cancelled'",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING)


class JobRow(Base):
    """One input (a file or URL) and where its outputs go."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(512))
    output_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    group: Mapped[str] = mapped_column("group_name", String(128), default="default", index=True)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class TaskRow(Base):
    """A unit of work with its lease, retries and result."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True, index=True)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[float] = mapped_column(Float)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The host whose local files this task reads; None means any machine may claim it.
    affinity: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        # The claim query reads only queued rows in (priority, id) order: a partial index keeps it
        # small and fast whatever the number of finished tasks.
        Index("ix_tasks_claim", "priority", "id", "run_after", sqlite_where=text(PARTIAL_WHERE["ix_tasks_claim"])),
        Index("ix_tasks_lease", "lease_expires_at", sqlite_where=text(PARTIAL_WHERE["ix_tasks_lease"])),
        # Status and the dashboard: throughput and the current work by finish time; the few failed/cancelled rows.
        Index("ix_tasks_finished_at", "finished_at"),
        Index("ix_tasks_failed", "job_id", sqlite_where=text(PARTIAL_WHERE["ix_tasks_failed"])),
        Index("ix_tasks_cancelled", "job_id", sqlite_where=text(PARTIAL_WHERE["ix_tasks_cancelled"])),
    )


def declare_postgresql_predicates() -> None:
    """Give the partial indexes their PostgreSQL predicates too (what a PostgreSQL engine compares against).

    Not in the class body: any `postgresql_*` option loads SQLAlchemy's PostgreSQL dialect, 3 MB of memory that a
    daemon on SQLite never uses. `open_engine` calls this for a PostgreSQL URL.
    """
    for index in TaskRow.__table__.indexes:
        if index.name in PARTIAL_WHERE:
            index.dialect_kwargs["postgresql_where"] = text(PARTIAL_WHERE[index.name])


class ControlRow(Base):
    """Desired state per scope: '*' for the whole queue, or a task type paused for a reason."""

    __tablename__ = "control"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)


class WorkerRow(Base):
    """One daemon's heartbeat."""

    __tablename__ = "workers"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    active_tasks: Mapped[int] = mapped_column(Integer, default=0)
    slots: Mapped[int] = mapped_column(Integer, default=0)
    rss_mb: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_percent: Mapped[float] = mapped_column(Float, default=0.0)


class IngestedFileRow(Base):
    """A file an inbox scan has queued, with the stamp it had: a restart skips it unless the stamp changed."""

    __tablename__ = "ingested_files"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)  # "" when the inboxes are shared storage
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    outbox: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seen_at: Mapped[float] = mapped_column(Float)


class TranscriptRow(Base):
    """One finished transcript in the search archive (its NAME.json and the job that made it)."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    json_path: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    indexed_at: Mapped[float] = mapped_column(Float, index=True)


class SegmentRow(Base):
    """One segment of an archived transcript; the full-text index (FTS5 / tsvector) is kept on `text`."""

    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    start_sec: Mapped[float] = mapped_column(Float)
    end_sec: Mapped[float] = mapped_column(Float)
    speaker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    text: Mapped[str] = mapped_column(Text)


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


class VoiceRow(Base):
    """An enrolled speaker: a name and the voice print (embedding) diarized speakers are matched against."""

    __tablename__ = "voices"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    embedding: Mapped[list] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(64))
    sample: Mapped[str | None] = mapped_column(Text, nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[float] = mapped_column(Float)
