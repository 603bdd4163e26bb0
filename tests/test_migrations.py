"""The schema comes only from Alembic, and it matches the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from traxd.db.engine import open_engine
from traxd.db.migrate import current_revision, head_revision, alembic_config, upgrade
from traxd.db.models import Base


def test_upgrade_from_empty_gives_the_models_schema(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    assert current_revision(engine) == head_revision(alembic_config(engine))
    engine.dispose()


def test_upgrade_is_idempotent_and_creates_every_table(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    upgrade(engine)
    assert {"tasks", "jobs", "control", "workers", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_database_file_is_private(tmp_path: Path) -> None:  # SQLite only
    path = tmp_path / "trax.db"
    engine = open_engine(f"sqlite:///{path}")
    upgrade(engine)
    assert path.stat().st_mode & 0o777 == 0o600
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
