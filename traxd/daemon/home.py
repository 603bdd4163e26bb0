"""The home folder's daemon lock (one daemon per home) and the connections a daemon keeps open.

Creating the home and opening the store at head: `traxd.database`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Self

from traxd.errors import UserError

LOCK_NAME = "traxd.lock"


def connections_for(slots: int) -> int:
    """Database connections a process running `slots` slots keeps open: one per slot, plus its dispatcher,
    maintenance, watcher and status readers."""
    return slots + 6


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
