"""A daemon-like pool process whose TRANSCRIBE tasks pay the loopback fake API, for database-outage tests.

Usage: python -m tests.workers.paid_child DB_URL SPOOL_DIR API_URL SLOTS [--lease S] [--rescue S] [--busy-ms MS]
                                          [--db-retry-max S]
Each task's payload {"chunks": N} is N uploads, one per chunk not yet in the task's checkpoint, named
"task<ID>-chunk<I>.wav" (the fake counts uploads per name); each reply is saved with the handlers' own
`save_paid` before the next upload, as the real TRANSCRIBE does. Runs until the control table says stop.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import openai

from traxd.daemon.pool import Pool, PoolConfig
from traxd.db.engine import open_engine
from traxd.handlers.common import save_paid
from traxd.handlers.registry import Registry, TaskContext
from traxd.logging import configure
from traxd.queue.store import Store
from traxd.types import TaskType


def main() -> None:
    """Run the pool until stopped through the control table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("spool")
    ap.add_argument("api")
    ap.add_argument("slots", type=int)
    ap.add_argument("--lease", type=float, default=30.0)
    ap.add_argument("--rescue", type=float, default=1.0)
    ap.add_argument("--busy-ms", type=int, default=30_000, help="SQLite busy timeout")
    ap.add_argument("--db-retry-max", type=float, default=2.0, help="longest pause between database retries")
    args = ap.parse_args()
    configure("INFO", None)  # JSON lines on stderr: the test reads what the pool said
    client = openai.OpenAI(base_url=args.api, api_key="sk-test-never-spooled", max_retries=0, timeout=600)

    def handler(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        done = dict(ctx.previous.get("done") or {})
        for i in range(int(payload["chunks"])):
            if str(i) in done:
                continue  # paid for by an earlier attempt: never sent again
            reply = client.audio.transcriptions.create(
                model="whisper-1", file=(f"task{ctx.task.id}-chunk{i}.wav", b"RIFF-fake-audio"), response_format="json"
            )
            done[str(i)] = reply.text
            save_paid(ctx, {"done": done})
        return {"chunks": len(done), "pid": os.getpid()}

    engine = open_engine(args.url, busy_timeout_ms=args.busy_ms)
    config = PoolConfig(slots=args.slots, lease_seconds=args.lease, grace_seconds=5.0, control_seconds=0.2,
                        rescue_seconds=args.rescue, db_retry_max_seconds=args.db_retry_max,
                        spool_dir=Path(args.spool))  # fmt: skip
    Pool(Store(engine), Registry({TaskType.TRANSCRIBE: handler}), config).run()
    print("exited cleanly", flush=True)


if __name__ == "__main__":
    main()
