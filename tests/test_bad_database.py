"""A database that cannot be used gives one clear line, and nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from traxd.db.engine import open_engine
from traxd.errors import DatabaseError


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match=r"database folder .*nope does not exist"):
        open_engine(f"sqlite:///{tmp_path / 'nope' / 'trax.db'}")
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(DatabaseError, match="is not writable"):
        open_engine(f"sqlite:///{folder / 'trax.db'}")
    assert list(folder.iterdir()) == []


def test_read_only_filesystem_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores permission bits, so simulate what os.access reports on a read-only mount."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(DatabaseError, match="is not writable"):
        open_engine(f"sqlite:///{tmp_path / 'trax.db'}")
    assert not (tmp_path / "trax.db").exists()


def test_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "trax.db"
    path.write_bytes(b"this is a text file, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="file is not a database"):
        open_engine(f"sqlite:///{path}")
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def test_bad_url() -> None:
    with pytest.raises(DatabaseError, match="not valid"):
        open_engine("not a url at all")
    for memory in ("sqlite://", "sqlite:///:memory:"):  # was a TypeError traceback from SQLAlchemy's pool
        with pytest.raises(DatabaseError, match="names no file"):
            open_engine(memory)
    with pytest.raises(DatabaseError, match="cannot open database"):
        open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
