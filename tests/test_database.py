"""traxd.database, the one way to open the database: the shipped head, readers light or pooled, and reads that
cost one query where one will do."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.pool import Pool
from typer.testing import CliRunner

from tests.daemon_helpers import forget_environment
from traxd import database
from traxd.cli.traxctl_cmd import app
from traxd.config import load_settings
from traxd.db import migrate
from traxd.types import NewJob, NewTask, TaskType

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TRAX_HOME with no database yet, and no setting from the environment."""
    forget_environment(monkeypatch)
    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement sent on the SQLite connections opened meanwhile (their trace callback)."""
    sent: list[str] = []

    def trace(dbapi_conn: object, _record: object) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.set_trace_callback(sent.append)

    event.listen(Pool, "connect", trace)
    yield sent
    event.remove(Pool, "connect", trace)


def test_the_shipped_head_is_alembics(home: Path) -> None:
    store = database.open_store(load_settings())
    try:
        script = ScriptDirectory.from_config(migrate.alembic_config(store.engine))
        assert database.shipped_head() == script.get_current_head() is not None
        assert migrate.stored_revision(store.engine) == database.shipped_head()
    finally:
        store.engine.dispose()


def test_traxctl_list_reads_the_jobs_in_one_query(home: Path, statements: list[str]) -> None:
    store = database.open_store(load_settings())
    for i in range(30):
        store.create_job(NewJob(f"/in/{i}.wav", f"talk-{i}"), [NewTask(TaskType.PREPROCESS, {}, dedupe_key=str(i))])
    store.engine.dispose()
    statements.clear()
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(t["name"] for t in json.loads(result.output)) == sorted(f"talk-{i}" for i in range(30))
    job_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and " FROM jobs" in s]
    assert len(job_reads) == 1, job_reads


def test_a_reader_on_a_new_home_creates_the_schema_then_reads_light(home: Path) -> None:
    with database.reader_for(load_settings()) as reader:
        assert isinstance(reader.conn, sqlite3.Connection)  # the light connection, not SQLAlchemy's pool
        assert reader.controls() == {} and reader.workers() == []


def test_a_url_the_light_path_cannot_open_reads_through_the_stores_pool(home: Path) -> None:
    home.mkdir()
    url = f"sqlite:///{home / 'trax.db'}?timeout=5"  # query options are SQLAlchemy's to read
    with database.reader_for(load_settings({"database_url": url})) as reader:
        assert not isinstance(reader.conn, sqlite3.Connection)
        assert reader.job_counts()["queued"] == 0
