"""Paid results that the database would not take: a synced file per lease under $TRAX_HOME/spool until it does.

Written only once a paid checkpoint's commit has failed (the normal path writes no file and pays no extra sync),
removed once the result is committed, replayed (fenced) by the next start after a kill or a reboot. A file holds
the task's id, the lease it was paid under, its type and the handler's checkpoint: never settings or keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traxd.logging import get_logger
from traxd.types import Lease

log = get_logger("spool")

FORMAT = 1  # the file layout; a file of another layout is set aside, never guessed at
ASIDE = "unapplied"  # the subfolder where files that cannot be applied go, each with a NAME.reason line


@dataclass(frozen=True)
class Spooled:
    """One paid result waiting in the spool: where it is, the lease it was paid under, its task type, the data."""

    path: Path
    lease: Lease
    task_type: str
    data: dict[str, Any]


class SpoolError(ValueError):
    """A spool file that cannot be applied (unreadable, another layout): set aside with this one-line reason."""


class Spool:
    """The folder of paid results waiting for the database (one file per lease, replaced by a later checkpoint)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, lease: Lease, task_type: str, data: dict[str, Any]) -> Path:
        """Store the result durably (written, synced, renamed into place, folder synced); its path."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = {"format": FORMAT, "task_id": lease.task_id, "owner": lease.owner, "attempt": lease.attempt,
                  "type": task_type, "spooled_at": time.time(), "data": data}  # fmt: skip
        path = self.folder / f"task-{lease.task_id}-attempt-{lease.attempt}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(record, separators=(",", ":")).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _sync_folder(self.folder)
        return path

    def remove(self, path: Path) -> None:
        """The result is committed: the file goes (a missing one is fine)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def files(self) -> list[Path]:
        """The spooled results waiting, oldest task first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("task-*.json"), key=lambda p: p.stat().st_mtime_ns)

    def read(self, path: Path) -> Spooled:
        """Parse one file; SpoolError (with the reason) when it cannot be applied as it is."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SpoolError(f"unreadable: {exc}") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise SpoolError(f"spool format {record.get('format') if isinstance(record, dict) else '?'}, "
                             f"this Trax reads {FORMAT}")  # fmt: skip
        try:
            lease = Lease(int(record["task_id"]), str(record["owner"]), int(record["attempt"]))
            task_type, data = str(record["type"]), record["data"]
        except (KeyError, TypeError, ValueError) as exc:
            raise SpoolError(f"missing or bad field: {exc}") from None
        if not isinstance(data, dict):
            raise SpoolError("its data is not an object")
        return Spooled(path, lease, task_type, data)

    def set_aside(self, path: Path, reason: str) -> Path:
        """Move a file that cannot be applied out of the way, with a one-line reason beside it (never retried)."""
        aside = self.folder / ASIDE
        aside.mkdir(mode=0o700, exist_ok=True)
        target = aside / path.name
        os.replace(path, target)
        line = " ".join(reason.split())[:500]
        target.with_suffix(".reason").write_text(line + "\n", encoding="utf-8")
        log.error("spool_set_aside", file=str(target), reason=line)
        return target


def _sync_folder(folder: Path) -> None:
    """Sync the folder entry of a renamed file (the rename itself must survive a power cut)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

