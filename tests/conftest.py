"""Shared fixtures: a real database per test (SQLite file, and PostgreSQL when a server is given), a fake clock.

The queue suite runs once per backend through the parametrised `db_url` fixture. PostgreSQL tests need
TRAX_TEST_PG_URL (an admin URL; .ci/run starts a throwaway server and sets it); with TRAX_REQUIRE_PG=1 a
missing server fails the run instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_helpers import Daemon
from tests.pgdb import fresh_pg_database
from traxd.clock import FakeClock
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.queue.store import Store

# Fixtures `media_files` and `media_server` (a loopback HTTP server with generated audio).
pytest_plugins = ("tests.fakes.media_server",)

PG_ADMIN_URL = os.environ.get("TRAX_TEST_PG_URL")


def _pg_database() -> Iterator[str]:
    if not PG_ADMIN_URL:
        if os.environ.get("TRAX_REQUIRE_PG") == "1":
            pytest.fail("TRAX_REQUIRE_PG=1 but TRAX_TEST_PG_URL is not set: PostgreSQL did not start")
        pytest.skip("PostgreSQL tests need TRAX_TEST_PG_URL (.ci/run starts a server and sets it)")
    with fresh_pg_database(PG_ADMIN_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for this test: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trax.db'}"
    else:
        yield from _pg_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file (for SQLite-only behaviour)."""
    return f"sqlite:///{tmp_path / 'trax.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (PostgreSQL-only tests)."""
    yield from _pg_database()


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


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Real `traxd run` processes a test starts (append them): stopped at the end, SIGKILL if SIGTERM is not enough."""
    made: list[Daemon] = []
    yield made
    for d in made:
        d.stop()
