"""A daemon stand-in for crash tests: `python -m tests.fakes.pool_child HOME BASE_URL CHUNK_SIZE` drains the queue."""

from __future__ import annotations

import sys
from pathlib import Path

from traxd.config import load_settings
from traxd.daemon.pool import Pool, PoolConfig
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers import default_registry
from traxd.queue.store import Store


def main(home: str, base_url: str, chunk_size: str) -> int:
    """Run a pool with the real handlers on HOME/trax.db until nothing is runnable."""
    settings = load_settings({"home": Path(home), "openai_api_key": "sk-test", "openai_base_url": base_url,
                              "chunk_size": float(chunk_size), "lease_seconds": 10.0}, env={})  # fmt: skip
    engine = open_engine(settings.database_url)
    upgrade(engine)
    pool = Pool(Store(engine), default_registry(settings), PoolConfig(slots=2, lease_seconds=10.0, settings=settings))
    stats = pool.run(drain=True)
    print(f"claimed={stats.claimed} succeeded={stats.succeeded} failed={stats.failed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
