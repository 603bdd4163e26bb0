"""All SQL of enrolled voices: a name and its voice print, read by DIARIZE through the runner."""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from traxd.db.models import voices as V


@dataclass(frozen=True)
class Voice:
    """A frozen snapshot of one enrolled voice (without its embedding)."""

    name: str
    model: str
    sample: str | None
    seconds: float
    created_at: float


class Voices:
    """Enrol, list, remove and read voice prints."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enroll(self, name: str, embedding: list[float], model: str, sample: str | None, seconds: float) -> bool:
        """Store (or replace) the print of `name`; True when the name is new."""
        values = {"embedding": [float(x) for x in embedding], "model": model, "sample": sample,
                  "seconds": round(seconds, 2), "created_at": time.time()}  # fmt: skip
        with self.engine.begin() as conn:
            if conn.execute(update(V).where(V.c.name == name).values(**values)).rowcount:
                return False
            conn.execute(insert(V).values(name=name, **values))
            return True

    def list(self) -> list[Voice]:
        """Every enrolled voice, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(V.c.name, V.c.model, V.c.sample, V.c.seconds, V.c.created_at)
                                .order_by(V.c.name)).all()  # fmt: skip
        return [Voice(r.name, r.model, r.sample, r.seconds, r.created_at) for r in rows]

    def remove(self, name: str) -> bool:
        """Forget a voice; False when there was none of that name."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(V).where(V.c.name == name)).rowcount)

    def prints(self) -> dict[str, builtins.list[float]]:  # `list` here is the method above
        """Name -> voice print, for matching diarized speakers."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(V.c.name, V.c.embedding)).all()
        return {r.name: list(r.embedding) for r in rows}
