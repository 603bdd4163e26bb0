"""One place sets up a pool from settings: the daemon, `trax batch` and the API run theirs the same way."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tests import batch_handlers
from traxd import create_batch_processor
from traxd.config import Settings
from traxd.daemon.pool_setup import pool_config
from traxd.database import open_store
from traxd.types import TaskType


@pytest.mark.parametrize("shared", [False, True])
def test_a_batch_pins_successors_to_this_host_unless_storage_is_shared(tmp_path: Path, shared: bool) -> None:
    (tmp_path / "talk.mp3").write_bytes(b"talk" * 100)
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'trax.db'}",
                        shared_storage=shared)  # fmt: skip
    proc = create_batch_processor(settings=settings, registry=batch_handlers.registry(),
                                  follow_ups=batch_handlers.follow_ups, output_dir=tmp_path / "out")  # fmt: skip

    async def run() -> None:
        await proc.add_task(TaskType.PREPROCESS, {"path": str(tmp_path / "talk.mp3")})
        await proc.start()

    try:
        asyncio.run(run())
    finally:
        proc.close()
    store = open_store(settings)
    try:
        (transcribe,) = [t for t in store.list_tasks(limit=10) if t.type is TaskType.TRANSCRIBE]
    finally:
        store.engine.dispose()
    # Its chunks are on this machine's disk, unless every machine sees the same paths.
    assert transcribe.affinity == (None if shared else socket.gethostname())


def test_only_the_daemon_keeps_to_the_task_types_this_machine_takes(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, task_types=("preprocess",), workers=3, shared_storage=True)
    daemon, batch = pool_config(settings), pool_config(settings, group="batch:x")
    assert (daemon.types, daemon.group, daemon.slots, daemon.pin_successors) == ((TaskType.PREPROCESS,), None, 3, False)
    assert (batch.types, batch.group) == (None, "batch:x")  # a batch runs every stage of its own inputs
