"""Owner identity (host:pid:process-start) and the same-host "is that owner dead?" check."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

# psutil is imported where it is used: `traxctl status` with no daemon running never needs it.


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: a reused pid or another machine never looks like us."""

    host: str
    pid: int
    started: float

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.started:.2f}"

    @classmethod
    def current(cls, host: str | None = None) -> Owner:
        """This process."""
        import psutil

        started = psutil.Process(os.getpid()).create_time()
        return cls(host or socket.gethostname(), os.getpid(), started)

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """Read an owner id back; None when it is not ours to interpret."""
        try:
            host, pid, started = text.rsplit(":", 2)
            return cls(host, int(pid), float(started))
        except ValueError:
            return None


def owner_is_dead(owner_id: str, host: str) -> bool:
    """True only when the owner ran on this host and that exact process is gone (or a zombie)."""
    owner = Owner.parse(owner_id)
    if owner is None or owner.host != host:
        return False
    import psutil

    try:
        proc = psutil.Process(owner.pid)
        if f"{proc.create_time():.2f}" != f"{owner.started:.2f}":
            return True  # the pid was reused by another process
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False
