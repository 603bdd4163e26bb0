"""How a background loop (lease renewal and rescue, the inbox watcher) ends on a bug: loudly, and its owner knows.

Expected trouble (the database unreachable, busy or full; a file system error) is retried by the loop itself.
Anything else is a bug: a loop that carried on would fail the same way each round while, for example, leases
quietly stop being renewed. So it is logged once with its traceback, the loop ends, and the `Crashed` callback
given by the loop's owner is told (the daemon's pool then stops as `traxctl stop` does and traxd exits 1, which
launchd and systemd restart).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Crashed = Callable[[str, BaseException], None]  # (the loop's name, what it raised)


def report_crash(log: Any, loop: str, exc: BaseException, crashed: Crashed | None) -> None:
    """Log an unexpected error of a background loop with its traceback and tell the loop's owner."""
    log.error("background_loop_failed", loop=loop, error=repr(exc), exc_info=exc)
    if crashed is not None:
        crashed(loop, exc)
