"""A child process running a Pool on a real database, for crash, control and multi-process tests.

Usage: python -m tests.workers.pool_child DB_URL SIDE_EFFECT_LOG SLOTS MODE [--lease S] [--rescue S]
                                         [--max-sleep S] [--no-migrate] [--gate PATH]
MODE "drain": run until nothing is left; "serve": run until told to stop through the control table.
Each run appends "task_id attempt pid" to SIDE_EFFECT_LOG (O_APPEND), then sleeps a little (the payload's
"sleep", else up to --max-sleep seconds; 0 makes it a no-op; a released run wakes early), then returns; with
--gate it first waits until the file PATH exists (a test holds every slot busy that way, for as long as it needs).
"""

from __future__ import annotations

import argparse
import os
import random
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
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("log")
    ap.add_argument("slots", type=int)
    ap.add_argument("mode", choices=("drain", "serve"))
    ap.add_argument("--lease", type=float, default=600.0, help="lease seconds (long: only dead-owner rescue)")
    ap.add_argument("--rescue", type=float, default=5.0, help="seconds between rescue rounds")
    ap.add_argument("--max-sleep", type=float, default=0.02, help="upper bound of a run's random sleep")
    ap.add_argument("--no-migrate", action="store_true", help="the parent already migrated the database")
    ap.add_argument("--gate", help="runs wait until this file exists")
    args = ap.parse_args()
    engine = open_engine(args.url)
    if not args.no_migrate:
        upgrade(engine)
    rng = random.Random()
    fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    pid = os.getpid()

    def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        os.write(fd, f"{ctx.task.id} {ctx.task.attempts} {pid}\n".encode())
        while args.gate and not os.path.exists(args.gate):
            time.sleep(0.01)
        pause = payload.get("sleep", rng.uniform(0.0, args.max_sleep) if args.max_sleep > 0 else 0.0)
        if pause:
            ctx.cancelled.wait(pause)  # a released run stops early, as a cooperative handler does
        return {"pid": pid}

    registry = Registry({TaskType.TRANSCRIBE: handler})
    config = PoolConfig(slots=args.slots, lease_seconds=args.lease, grace_seconds=float(os.environ.get("GRACE", "10")),
                        control_seconds=0.2, rescue_seconds=args.rescue)  # fmt: skip
    Pool(Store(engine), registry, config).run(drain=args.mode == "drain")
    print("exited cleanly", flush=True)


if __name__ == "__main__":
    main()
