"""Engine set-up: SQLite in WAL mode with BEGIN IMMEDIATE writers, or PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from traxd.errors import DatabaseError

READ_ONLY = {"trax_read": True}
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def open_engine(
    url: str, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000, pool_size: int = 16
) -> Engine:
    """Create an engine; fail with a one-line DatabaseError when the database cannot be used."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"database URL {url!r} is not valid: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, synchronous, busy_timeout_ms, pool_size)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=8)
    check_connection(engine)
    return engine


def _sqlite_engine(url: str, synchronous: str, busy_timeout_ms: int, pool_size: int) -> Engine:
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise DatabaseError(f"SQLite {sqlite3.sqlite_version} is too old: Trax needs 3.35 or newer (RETURNING)")
    sync = synchronous.upper()
    if sync not in SYNCHRONOUS:
        raise DatabaseError(f"synchronous={synchronous!r} is not one of {', '.join(SYNCHRONOUS)}")
    path = sqlite_path(url)
    if path is not None:
        _prepare_sqlite_file(path)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=8,
    )
    _install_sqlite_hooks(engine, sync, busy_timeout_ms)
    return engine


def _prepare_sqlite_file(path: Path) -> None:
    """Create the DB file 0600 ourselves so its -wal and -shm inherit the mode; never create folders."""
    folder = path.parent
    if not folder.is_dir():
        raise DatabaseError(f"database folder {folder} does not exist: create it or set TRAX_DATABASE_URL")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise DatabaseError(f"database file {path} is not readable and writable by this user")
        return
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseError(f"database folder {folder} is not writable: fix its permissions or move TRAX_HOME")
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def _install_sqlite_hooks(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that we decide how each one begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: no SQLITE_BUSY_SNAPSHOT half way through.
        read_only = conn.get_execution_options().get("trax_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def check_connection(engine: Engine) -> None:
    """Open one connection and read the schema, turning driver errors into one line."""
    try:
        with engine.connect().execution_options(**READ_ONLY) as conn:
            conn.exec_driver_sql("SELECT 1 FROM sqlite_master LIMIT 1" if is_sqlite(engine) else "SELECT 1")
    except DBAPIError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot open database {redact_url(engine)}: {exc.orig}") from None


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def redact_url(engine: Engine) -> str:
    """The engine's URL with any password hidden."""
    return engine.url.render_as_string(hide_password=True)
