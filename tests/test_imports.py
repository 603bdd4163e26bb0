"""What a process that runs the queue loads: only what the queue needs (every module stays in memory for good)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade

RUN_THE_QUEUE = """
import sys
from traxd.daemon.pool import Pool, PoolConfig
from traxd.db.engine import open_engine
from traxd.handlers.registry import Registry
from traxd.queue.store import Store
from traxd.types import NewTask, TaskType

store = Store(open_engine(sys.argv[1]))
store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}) for i in range(20)])
Pool(store, Registry({TaskType.TRANSCRIBE: lambda ctx, payload: {}}), PoolConfig(slots=4)).run(drain=True)
assert store.counts()["succeeded"] == 20, store.counts()
unneeded = ("sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "alembic", "openai", "httpx", "yt_dlp",
            "faster_whisper", "typer", "pydantic", "watchdog")
print("LOADED", [m for m in unneeded if m in sys.modules])
"""


def test_running_the_queue_on_sqlite_loads_no_orm_postgresql_dialect_or_sdk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trax.db'}"
    engine = open_engine(url)
    upgrade(engine)  # a daemon at head does not import Alembic
    engine.dispose()
    done = subprocess.run([sys.executable, "-c", RUN_THE_QUEUE, url], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


def test_the_real_registry_imports_an_sdk_only_when_a_task_needs_it() -> None:
    """`trax batch` on a local model never runs a download or a DeepSeek stage: openai, yt-dlp and httpx (~1.7 s of
    start-up) stay unloaded until such a task runs."""
    code = ("import sys\nfrom traxd.handlers import default_registry\nfrom traxd.types import TaskType\n"
            "r = default_registry()\nassert TaskType.ENHANCE in r and TaskType.DOWNLOAD in r\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'openai', 'yt_dlp', 'httpx', 'apprise'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
