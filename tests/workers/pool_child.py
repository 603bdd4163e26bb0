"""A child process running a Pool on a real database, for crash and control tests.

Usage: python -m tests.workers.pool_child DB_URL SIDE_EFFECT_LOG SLOTS MODE
MODE "drain": run until nothing is left; "serve": run until told to stop through the control table.
Each run appends "task_id attempt" to SIDE_EFFECT_LOG (O_APPEND), then sleeps a little, then returns.
"""

from __future__ import annotations

import os
import random
import sys
import time
from typing import Any

from traxd.daemon.pool import Pool, PoolConfig
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers.registry import Registry, TaskContext
from traxd.queue.store import Store
from traxd.types import TaskType


def main() -> None:
    """Run the pool with a side-effect-logging handler."""
    url, log_path, slots, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    engine = open_engine(url)
    upgrade(engine)
    rng = random.Random()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        os.write(fd, f"{ctx.task.id} {ctx.task.attempts}\n".encode())
        time.sleep(payload.get("sleep", rng.uniform(0.0, 0.02)))
        return {"pid": os.getpid()}

    registry = Registry({TaskType.TRANSCRIBE: handler})
    config = PoolConfig(slots=slots, lease_seconds=600, grace_seconds=float(os.environ.get("GRACE", "10")),
                        control_seconds=0.2)  # fmt: skip
    Pool(Store(engine), registry, config).run(drain=mode == "drain")
    print("exited cleanly", flush=True)


if __name__ == "__main__":
    main()
