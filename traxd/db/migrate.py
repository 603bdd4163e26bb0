"""Upgrade a database to the newest schema with Alembic, on open."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from alembic import command

_HERE = Path(__file__).resolve().parent


def script_location() -> Path:
    """Where the migrations live: inside the wheel, or at the top of a source checkout."""
    for candidate in (_HERE.parent / "_alembic", _HERE.parent.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Trax's Alembic migrations are missing from this installation")


def alembic_config(engine: Engine) -> Config:
    """An Alembic Config bound to this engine's URL and our migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to head in one transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL)."""
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
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when empty)."""
    with engine.connect().execution_options(trax_read=True) as conn:
        return MigrationContext.configure(conn).get_current_revision()
