"""The note a daemon leaves while it cannot reach its database, and what `traxctl status` makes of it.

Stdlib only: `status` reads it without loading the store or the logging set-up.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

OUTAGE_NOTE = "database-unreachable.json"  # in the spool folder while the daemon cannot reach its database


def outage_warning(spool_folder: Path) -> str | None:
    """What `status` says when this machine's daemon cannot reach the database (its note, while that pid lives)."""
    try:
        note = json.loads((spool_folder / OUTAGE_NOTE).read_text(encoding="utf-8"))
        pid, since, error = int(note["pid"]), float(note["since"]), str(note["error"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a note the killed daemon left behind
    except PermissionError:
        pass
    waiting = len(list(spool_folder.glob("task-*.json")))
    stamp = time.strftime("%H:%M:%S", time.localtime(since))
    return (f"database unreachable from traxd (pid {pid}) since {stamp}: {error}"
            + (f"; {waiting} paid result(s) wait in the spool" if waiting else ""))  # fmt: skip
