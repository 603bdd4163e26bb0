"""Write the control table from another process: python -m tests.workers.control DB_URL STATE [REASON]."""

from __future__ import annotations

import sys

from traxd.db.engine import open_engine
from traxd.queue.store import Store
from traxd.types import GLOBAL_SCOPE, ControlState

if __name__ == "__main__":
    engine = open_engine(sys.argv[1])
    Store(engine).set_control(GLOBAL_SCOPE, ControlState(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    engine.dispose()
