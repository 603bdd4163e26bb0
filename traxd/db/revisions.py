"""Where the migrations are, and the newest schema revision this Trax ships, read without Alembic or SQLAlchemy.

Reading two lines of each migration file costs a millisecond; importing Alembic costs half a second, which the
commands that only look (status) and a daemon whose database is already at head never pay.
"""

from __future__ import annotations

import re
from pathlib import Path

_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*["\']?([\w.-]+|None)["\']?', re.MULTILINE)
_HERE = Path(__file__).resolve().parent


def script_location() -> Path:
    """Where the migrations live: inside the wheel, or at the top of a source checkout."""
    for candidate in (_HERE.parent / "_alembic", _HERE.parent.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Trax's Alembic migrations are missing from this installation")


def shipped_head() -> str | None:
    """The head revision, from the migration files' `revision`/`down_revision` lines; None when several (Alembic
    then decides, and complains)."""
    revisions, parents = set(), set()
    for path in (script_location() / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        revisions.add(found.get("revision"))
        parents.add(found.get("down_revision"))
    heads = revisions - parents - {None}
    return heads.pop() if len(heads) == 1 else None
