"""The schema comes only from Alembic, and it matches the models."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from traxd.db.engine import open_engine
from traxd.db.migrate import alembic_config, current_revision, head_revision, upgrade
from traxd.db.models import include_object, metadata, tasks

OPTS = {"include_object": include_object}


def test_upgrade_from_empty_gives_the_models_schema(db_url: str) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts=OPTS), metadata)
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


def test_postgresql_schema_has_the_partial_indexes_and_types(pg_url: str) -> None:
    """What compare_metadata does not look at on PostgreSQL: partial-index predicates, and types/defaults."""
    engine = open_engine(pg_url)
    upgrade(engine)
    with engine.connect() as conn:
        opts = {"compare_type": True, "compare_server_default": True, **OPTS}
        assert compare_metadata(MigrationContext.configure(conn, opts=opts), metadata) == []
        defs = dict(conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'").all())
    assert "WHERE ((state)::text = 'queued'::text)" in defs["ix_tasks_claim"]
    assert "(priority, id, run_after)" in defs["ix_tasks_claim"]
    assert "WHERE ((state)::text = 'running'::text)" in defs["ix_tasks_lease"]
    columns = {c["name"]: c for c in inspect(engine).get_columns("tasks")}
    # Epoch seconds need double precision (a 4-byte real would round them to minutes).
    assert columns["run_after"]["type"].__class__.__name__ == "DOUBLE_PRECISION"
    assert columns["payload"]["type"].__class__.__name__ == "JSON"
    engine.dispose()


def test_postgresql_predicates_are_declared_when_a_postgresql_engine_opens(pg_url: str) -> None:
    """The models name no PostgreSQL option (that would load its dialect into SQLite daemons); PostgreSQL adds them."""
    engine = open_engine(pg_url)
    indexes = {i.name: i for i in tasks.indexes}
    assert str(indexes["ix_tasks_claim"].dialect_options["postgresql"]["where"]) == "state = 'queued'"
    assert str(indexes["ix_tasks_cancelled"].dialect_options["postgresql"]["where"]) == "state = 'cancelled'"
    engine.dispose()


def test_daemons_starting_together_on_an_empty_postgresql_migrate_once(pg_url: str) -> None:
    """Several machines start at the same moment: one runs the DDL, the others wait and find it done."""
    engines = [open_engine(pg_url) for _ in range(3)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        try:
            barrier.wait(timeout=60)
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,), daemon=True) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "concurrent migrations blocked each other"
    assert errors == []
    with engines[0].connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts=OPTS), metadata) == []
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    for e in engines:
        e.dispose()


def test_one_linear_migration_history_for_both_dialects(sqlite_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(open_engine(sqlite_url)))
    assert len(script.get_heads()) == 1 and len(script.get_bases()) == 1
    revisions = list(script.walk_revisions())
    assert all(len(r._all_down_revisions) <= 1 for r in revisions), "branched history"


def test_the_head_read_from_the_files_is_alembics_head(tmp_path: Path) -> None:
    """upgrade() skips importing Alembic when the database is at the head it reads from the migration files."""
    from sqlalchemy import create_engine

    from traxd.db import migrate

    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    assert migrate.shipped_head() == migrate.head_revision(migrate.alembic_config(engine))
    assert migrate.stored_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.stored_revision(engine) == migrate.shipped_head()
    engine.dispose()


def test_finish_time_queries_read_the_partial_finished_at_index(db_url: str) -> None:
    """ix_tasks_finished_at holds finished rows only; the `finished_at >= ?` filters of status, the dashboard and
    the ETA must still be answered from it, on both databases."""
    engine = open_engine(db_url)
    upgrade(engine)
    sql = "SELECT COUNT(*) FROM tasks WHERE finished_at >= {}"
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: ask whether the index can serve
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_tasks_finished_at'"
            ).scalar()
            assert "WHERE (finished_at IS NOT NULL)" in str(definition)
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql.format("%(since)s"), {"since": 0.0}))
        else:
            definition = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_tasks_finished_at'"
            ).scalar()
            assert "WHERE finished_at IS NOT NULL" in str(definition)
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql.format("?"), (0.0,)).all()
            plan = "\n".join(str(r[-1]) for r in rows)
    assert "ix_tasks_finished_at" in plan, plan
    engine.dispose()
