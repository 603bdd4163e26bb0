"""Engine set-up: SQLite in WAL mode with BEGIN IMMEDIATE writers, or PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from traxd.errors import DatabaseError

READ_ONLY = {"trax_read": True}
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
PAID_SYNCHRONOUS = "FULL"  # the least a commit recording a paid result gets: the WAL is synced at COMMIT
_FLOOR = "trax_synchronous"  # connection-record keys: the floor this connection returns to after a paid commit
_FULL_FSYNC = "trax_full_fsync"
# PostgreSQL: only ever raise synchronous_commit (off/local -> on), never lower remote_write/remote_apply.
_PG_DURABLE = ("SELECT set_config('synchronous_commit', 'on', true) "
               "WHERE current_setting('synchronous_commit') IN ('off', 'local')")  # fmt: skip


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def open_engine(
    url: str, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000, pool_size: int = 16,
    full_fsync: bool | None = None,
) -> Engine:
    """Create an engine; fail with a one-line DatabaseError when the database cannot be used.

    `synchronous` is SQLite's floor for every transaction; `full_fsync` (default: on macOS) makes SQLite's
    syncs F_FULLFSYNC, which is what reaches the platter there.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"database URL {url!r} is not valid: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        full = sys.platform == "darwin" if full_fsync is None else full_fsync
        engine = _sqlite_engine(url, synchronous, busy_timeout_ms, pool_size, full)
    else:
        from traxd.db.models import declare_postgresql_predicates

        declare_postgresql_predicates()
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=8)
    check_connection(engine)
    return engine


def _sqlite_engine(url: str, synchronous: str, busy_timeout_ms: int, pool_size: int, full_fsync: bool) -> Engine:
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise DatabaseError(f"SQLite {sqlite3.sqlite_version} is too old: Trax needs 3.35 or newer (RETURNING)")
    sync = synchronous.upper()
    if sync not in SYNCHRONOUS:
        raise DatabaseError(f"synchronous={synchronous!r} is not one of {', '.join(SYNCHRONOUS)}")
    path = sqlite_path(url)
    if path is None:  # an in-memory database: each connection would see its own, empty queue
        raise DatabaseError(f"database URL {url!r} names no file: the queue needs one, e.g. sqlite:///PATH/trax.db")
    _prepare_sqlite_file(path)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=8,
    )
    _install_sqlite_hooks(engine, sync, busy_timeout_ms, full_fsync)
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


def _install_sqlite_hooks(engine: Engine, synchronous: str, busy_timeout_ms: int, full_fsync: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Take transaction control away from pysqlite so that we decide how each one begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        if full_fsync:
            # A checkpoint copies synced WAL frames into the database and then reuses the WAL: it must reach
            # the platter too, or a paid commit could be lost after it was safely in the WAL.
            cur.execute("PRAGMA checkpoint_fullfsync=ON")
        cur.close()
        record.info[_FLOOR] = synchronous
        record.info[_FULL_FSYNC] = full_fsync
        _set_sync(dbapi_conn, synchronous, full_fsync)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.connection.dbapi_connection.in_transaction:
            return  # the queue store's driver began it (BEGIN IMMEDIATE on the raw connection)
        # Writers take the write lock up front: no SQLITE_BUSY_SNAPSHOT half way through.
        read_only = conn.get_execution_options().get("trax_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _rank(level: str) -> int:
    return SYNCHRONOUS.index(level)


def _set_sync(dbapi_conn: Any, level: str, full_fsync: bool) -> None:
    """Set a SQLite connection's sync level (only possible outside a transaction); F_FULLFSYNC when it syncs."""
    dbapi_conn.execute(f"PRAGMA synchronous={level}")
    dbapi_conn.execute(f"PRAGMA fullfsync={'ON' if full_fsync and _rank(level) >= _rank('FULL') else 'OFF'}")


@contextmanager
def paid_transaction(conn: Connection) -> Iterator[Connection]:
    """A write transaction on `conn` that is on disk when COMMIT returns: it records a result we paid for.

    SQLite: this one transaction runs at synchronous=FULL (or the higher floor), with F_FULLFSYNC where enabled,
    so its WAL frames are synced at COMMIT; the connection then returns to the floor (NORMAL: claims and
    heartbeats are not synced one by one). PostgreSQL commits durably already; synchronous_commit is raised to
    on for this transaction only if the server or role turned it off.
    """
    if not is_sqlite(conn.engine):
        with conn.begin():
            conn.exec_driver_sql(_PG_DURABLE)
            yield conn
        return
    floor, full = conn.info.get(_FLOOR, "NORMAL"), bool(conn.info.get(_FULL_FSYNC))
    raw = conn.connection.dbapi_connection
    _set_sync(raw, max(floor, PAID_SYNCHRONOUS, key=_rank), full)
    try:
        with conn.begin():
            yield conn
    finally:
        try:
            _set_sync(raw, floor, full)
        except sqlite3.Error:
            conn.invalidate()  # never hand a FULL connection back to the pool: a fresh one next time


def check_connection(engine: Engine) -> None:
    """Open one connection and read the schema, turning driver errors into one line."""
    try:
        with engine.connect().execution_options(**READ_ONLY) as conn:
            conn.exec_driver_sql("SELECT 1 FROM sqlite_master LIMIT 1" if is_sqlite(engine) else "SELECT 1")
    except DBAPIError as exc:
        engine.dispose()
        first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]  # one line, as every error
        unreachable = "database unreachable: " if isinstance(exc, OperationalError) else ""
        raise DatabaseError(f"{unreachable}cannot open database {redact_url(engine)}: {first}") from None


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def redact_url(engine: Engine) -> str:
    """The engine's URL with any password hidden."""
    return engine.url.render_as_string(hide_password=True)
