"""Opening the database, the one way every entry point does it: a store for commands that write, a reader for
those that only look, and the schema head this Trax ships.

`open_store` creates the home when missing and upgrades the schema. `reader_for` opens a light DB-API connection
(no SQLAlchemy, Alembic or table declarations: `traxctl status` answers in a tenth of a second) when the database
is already at the shipped head; otherwise it opens the store once to create or upgrade it, then reads through a
light connection, or through the store's pool when the URL needs SQLAlchemy (query options, other drivers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from traxd.config import Settings
from traxd.db import readonly
from traxd.db.revisions import shipped_head
from traxd.errors import UserError

if TYPE_CHECKING:  # the light path never loads the store (SQLAlchemy, the table declarations)
    from traxd.clock import Clock
    from traxd.queue.reads import Reader
    from traxd.queue.store import Store

__all__ = ["open_store", "prepare_home", "reader_for", "reader_on", "shipped_head", "stored_revision"]


def prepare_home(settings: Settings) -> None:
    """Create the home, logs, scratch, inbox and outbox folders (0700) if they are missing."""
    folders = [settings.home, settings.logs_dir, settings.tmp_dir]
    for watch in settings.watch:
        folders += [watch.inbox, watch.outbox]
    for folder in folders:
        if not folder.exists():
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create {folder}: {exc.strerror} (check TRAX_HOME and config.toml)") from None
            os.chmod(folder, 0o700)


def open_store(settings: Settings, *, pool_size: int = 4, clock: Clock | None = None) -> Store:
    """Open the database (creating the home first) and upgrade it to the shipped head.

    `pool_size`: connections kept open (a pool's slots plus its dispatcher, maintenance and watcher threads).
    """
    from traxd.db import migrate
    from traxd.db.engine import open_engine
    from traxd.queue.store import Store

    if not settings.home.exists():
        prepare_home(settings)
    engine = open_engine(settings.database_url, synchronous=settings.synchronous, pool_size=pool_size)
    migrate.upgrade(engine)
    return Store(engine, clock)


def reader_on(store: Store) -> Reader:
    """A Reader on one of the store's pooled connections (close it to give the connection back)."""
    from traxd.queue.reads import Reader

    return Reader(store.engine.raw_connection(), store.driver)  # as Store.reading, for a caller that closes it


@contextmanager
def reader_for(settings: Settings) -> Iterator[Reader]:
    """A read-only Reader on the settings' database, light when the schema is at the shipped head."""
    from traxd.queue import driver
    from traxd.queue.reads import Reader

    opened = _light_at_head(settings.database_url)
    store = None
    if opened is None:
        store = open_store(settings, pool_size=1)  # creates or upgrades the schema, or says in one line why not
        opened = readonly.connect(settings.database_url)
    if opened is not None:
        reader = Reader(opened[0], driver.for_dialect(opened[1]))
    else:
        assert store is not None  # the full path ran: its pool serves a URL the light path cannot open
        reader = reader_on(store)
    try:
        yield reader
    finally:
        reader.close()
        if store is not None:
            store.engine.dispose()


def _light_at_head(url: str) -> tuple[Any, str] | None:
    """A light connection when the URL allows one and the schema is at the shipped head; else None."""
    opened = readonly.connect(url)
    if opened is not None and readonly.schema_version(opened[0]) != shipped_head():
        opened[0].close()
        return None
    return opened


def stored_revision(settings: Settings) -> tuple[str, str | None]:
    """(the database's URL without its password, the revision it is at) without creating or changing anything."""
    from traxd.db import migrate
    from traxd.db.engine import open_engine

    engine = open_engine(settings.database_url, pool_size=1)
    try:
        return engine.url.render_as_string(hide_password=True), migrate.stored_revision(engine)
    finally:
        engine.dispose()
