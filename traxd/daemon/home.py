"""The home folder: creating it (0700), opening the store at head, and the one-daemon-per-home lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Self

from traxd.clock import Clock
from traxd.config import Settings
from traxd.db import migrate
from traxd.db.engine import open_engine
from traxd.errors import UserError
from traxd.queue.store import Store

LOCK_NAME = "traxd.lock"


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


def connections_for(slots: int) -> int:
    """Database connections a process running `slots` slots keeps open: one per slot, plus its dispatcher,
    maintenance, watcher and status readers."""
    return slots + 6


def open_store(settings: Settings, *, pool_size: int = 4, clock: Clock | None = None) -> Store:
    """Open the database (creating the home first) and upgrade it to the newest schema: every entry point's one way.

    `pool_size`: connections kept open (a pool's slots plus its dispatcher, maintenance and watcher threads).
    """
    if not settings.home.exists():
        prepare_home(settings)
    engine = open_engine(settings.database_url, synchronous=settings.synchronous, pool_size=pool_size)
    migrate.upgrade(engine)
    return Store(engine, clock)


class DaemonLock:
    """An exclusive flock on $TRAX_HOME/traxd.lock: a second daemon on the same home refuses to start."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise a UserError naming the running daemon."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fh = os.fdopen(fd, "r+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise UserError(
                f"another traxd (pid {holder}) already runs on {self.path.parent}; "
                "stop it with `traxctl stop` or use another TRAX_HOME"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        """Drop the lock (the kernel also drops it when the process dies, even by kill -9)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def lock_holder(home: Path) -> int | None:
    """The pid of the daemon holding the home's lock, or None when no daemon runs there."""
    path = home / LOCK_NAME
    try:
        fh = open(path)  # noqa: SIM115 - closed below on every path
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return None
