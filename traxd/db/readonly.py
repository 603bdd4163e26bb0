"""Read-only DB-API connections for commands that only look (status, the dashboard's reads).

They skip SQLAlchemy, Alembic and the table declarations, which together cost most of a short command's
start-up: the schema version is checked with one query against the shipped head (`traxd.db.revisions`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


def connect(url: str, busy_timeout_ms: int = 30_000) -> tuple[Any, str] | None:
    """A DB-API connection and its dialect ('sqlite' or 'postgresql'); None when the URL needs the full path."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        return _sqlite(url, busy_timeout_ms)
    if scheme in ("postgresql", "postgres") and parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        import psycopg  # only for PostgreSQL, and only the driver

        conninfo = "postgresql" + url[len(parts.scheme):]
        try:
            conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error:
            return None  # the full path reports it in one line
        return conn, "postgresql"
    return None


def _sqlite(url: str, busy_timeout_ms: int) -> tuple[Any, str] | None:
    # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them; query options go the full way.
    rest = url.split(":", 1)[1]
    if not rest.startswith("///") or "?" in rest:
        return None
    path = Path(unquote(rest[3:])).expanduser()
    if not path.is_file():
        return None  # the full path creates it, or says why it cannot
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
    except sqlite3.Error:
        return None
    return conn, "sqlite"


def schema_version(conn: Any) -> str | None:
    """The revision the database is at, in one query; None when it has no schema yet."""
    cur = conn.cursor()
    try:
        cur.execute("SELECT version_num FROM alembic_version")
        row = cur.fetchone()
    except Exception:  # noqa: BLE001 - no alembic_version table: an empty or foreign database
        _rollback(conn)
        return None
    finally:
        cur.close()
    return row[0] if row else None


def _rollback(conn: Any) -> None:
    """Leave a failed statement's transaction (psycopg outside autocommit; a no-op elsewhere)."""
    with contextlib.suppress(Exception):
        conn.rollback()
