"""`TRAX_TEST_HANDLERS=tests.diarize_handlers:registry`: the real handlers, DIARIZE held at a gate.

DIARIZE touches $TRAX_TEST_GATE.started and waits until $TRAX_TEST_GATE exists, so a test can SIGKILL the process
while diarization runs; then it runs the real DIARIZE handler.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from traxd.handlers import default_registry
from traxd.handlers.registry import Registry, TaskContext
from traxd.types import TaskType

GATE_ENV = "TRAX_TEST_GATE"


def registry(settings: Any = None) -> Registry:
    """The real registry with a gate in front of DIARIZE."""
    real = default_registry(settings)
    diarize = real.get(TaskType.DIARIZE)
    assert diarize is not None

    def gated(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any] | None:
        gate = Path(os.environ[GATE_ENV])
        Path(f"{gate}.started").touch()
        while not gate.exists() and not ctx.cancelled.is_set():
            time.sleep(0.05)
        return diarize(ctx, payload)

    real.register(TaskType.DIARIZE, gated)
    return real
