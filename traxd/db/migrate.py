"""Upgrade a database to the newest schema with Alembic, on open."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, exc, text

from traxd.db.revisions import script_location, shipped_head

if TYPE_CHECKING:
    from alembic.config import Config

def alembic_config(engine: Engine) -> Config:
    """An Alembic Config bound to this engine's URL and our migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to head in one transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL).

    A database already at head costs one SELECT: Alembic (~half a second of imports) loads only to migrate.
    """
    if stored_revision(engine) == shipped_head():
        return
    from alembic import command

    cfg = alembic_config(engine)
    if current_revision(engine) == head_revision(cfg):
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two daemons starting together must not both run the same DDL.
            conn.execute(text("SELECT pg_advisory_xact_lock(7242)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def head_revision(cfg: Config) -> str | None:
    """The newest revision shipped with this version of Trax."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when empty)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect().execution_options(trax_read=True) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def stored_revision(engine: Engine) -> str | None:
    """The revision in alembic_version, or None when the table is missing or holds several rows."""
    try:
        with engine.connect().execution_options(trax_read=True) as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except exc.DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None
