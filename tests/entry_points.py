"""A Trax home for driving every entry point (traxctl add, trax batch, the API, an inbox) and reading back the
options each stored with its job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import forget_environment
from traxd.handlers.registry import Registry
from traxd.queue.store import Store


def no_handlers(settings: object = None) -> Registry:
    """`trax batch` with nothing to run: its inputs stay queued as ingestion left them."""
    return Registry({})


def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str | None = None) -> Path:
    """A new TRAX_HOME (with `config` as its config.toml), no Trax/API variables from the caller's environment, and
    subprocess commands that run no handler."""
    forget_environment(monkeypatch)
    home = tmp_path / "home"
    home.mkdir()
    if config is not None:
        (home / "config.toml").write_text(config)
    monkeypatch.setenv("TRAX_HOME", str(home))
    monkeypatch.setenv("TRAX_TEST_HANDLERS", f"{__name__}:no_handlers")
    return home


def media(folder: Path, name: str) -> Path:
    """A small input file whose content is its own (none is a duplicate of another)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(name.encode() * 50)
    return path


def options_by_name(store: Store) -> dict[str, dict[str, Any]]:
    """Each queued job's stored options, by the file name of its source."""
    jobs = [store.get_job(t.job_id) for t in store.list_tasks(limit=100) if t.job_id is not None]
    return {Path(j.source).name: j.options for j in jobs if j is not None}
