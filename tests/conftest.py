"""Shared fixtures: a real database file per test, a store on it, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from traxd.clock import FakeClock
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue.store import Store

# Fixtures `media_files` and `media_server` (a loopback HTTP server with generated audio).
pytest_plugins = ("tests.fakes.media_server",)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file for this test."""
    return f"sqlite:///{tmp_path / 'trax.db'}"


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    """A migrated store on the test's database, using the fake clock."""
    engine = open_engine(db_url)
    upgrade(engine)
    yield Store(engine, clock)
    engine.dispose()
