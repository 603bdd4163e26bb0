"""The note a daemon leaves while this machine holds work back (power, quiet hours, heat), and its reader.

Stdlib only: `traxctl status`, the dashboard and `/metrics` read it without loading the store. It lives in
$TRAX_HOME, so it tells about this machine's daemon; a daemon on another machine leaves its own there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

WAITING_NOTE = "waiting.json"
KINDS = ("power", "hours", "thermal", "memory")  # the label values of trax_waiting in /metrics


@dataclass(frozen=True)
class Waiting:
    """Why this machine's daemon claims nothing new (`reason`, of `kind` power or hours), and its heat."""

    reason: str | None = None
    kind: str | None = None
    thermal: str = "nominal"  # nominal | fair | serious | critical
    local_slots: str | None = None  # "halved" or "one" while heat lowers the local slots
    memory: str | None = None  # why local transcription waits: predicted not to fit the memory limit (the rest runs)

    def as_dict(self) -> dict[str, str | None]:
        """The JSON the note holds (and `status --json` shows)."""
        return {"reason": self.reason, "kind": self.kind, "thermal": self.thermal, "local_slots": self.local_slots,
                "memory": self.memory}  # fmt: skip

    def kinds(self) -> set[str]:
        """The trax_waiting labels that are 1 now."""
        heat = {"thermal"} if self.local_slots else set()
        return heat | ({self.kind} if self.kind else set()) | ({"memory"} if self.memory else set())


def write_note(home: Path, waiting: Waiting) -> None:
    """Replace the note atomically (a reader never sees half of it); no note when nothing is held back."""
    path = home / WAITING_NOTE
    if waiting == Waiting():
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **waiting.as_dict()}), encoding="utf-8")
    tmp.replace(path)


def read_note(home: Path) -> Waiting | None:
    """This machine's daemon's note, while that daemon lives (a killed one's note says nothing)."""
    try:
        note = json.loads((home / WAITING_NOTE).read_text(encoding="utf-8"))
        pid = int(note["pid"])
        waiting = Waiting(note.get("reason"), note.get("kind"), str(note.get("thermal") or "nominal"),
                          note.get("local_slots"), note.get("memory"))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return waiting
