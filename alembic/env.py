"""Alembic environment: migrations run on the connection traxd.db.migrate hands in."""

from __future__ import annotations

from alembic import context
from traxd.db.models import include_object, metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    """Run on the caller's connection, inside the caller's (BEGIN IMMEDIATE) transaction."""
    connection = config.attributes.get("connection")
    if connection is None:
        from traxd.db.engine import open_engine

        engine = open_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _run(conn)
        engine.dispose()
        return
    _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run them through traxd")
run_migrations_online()
