"""URL jobs through the real pool and store: bad lines end as failed tasks with reasons; a site URL flows on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.media_server import MediaServer
from tests.test_download import make_settings
from traxd.clock import SystemClock
from traxd.config import Settings
from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers import default_registry
from traxd.queue.store import Store
from traxd.types import Job, NewJob, NewTask, Task, TaskState, TaskType
from traxd.urls import classify_url, parse_url_file, task_type_for


@pytest.fixture
def real_store(db_url: str) -> Iterator[Store]:
    engine = open_engine(db_url)
    upgrade(engine)
    yield Store(engine, SystemClock())
    engine.dispose()


def queue_urls(store: Store, settings: Settings, urls: list[str]) -> list[Task]:
    """What ingest does with a URL file: one job per URL, first task by classification."""
    outbox = str(settings.home / "outbox")
    tasks = []
    for url in urls:
        kind = classify_url(url).kind
        first = NewTask(task_type_for(kind), {"url": url}, dedupe_key=f"url:{url}:{outbox}")
        _, created, _ = store.create_job(NewJob(url, "talk", outbox, "test", {}), [first])
        tasks += created
    return tasks


def drain(store: Store, settings: Settings, follow_ups: Any = None) -> None:
    wiring = PoolWiring(follow_ups=follow_ups) if follow_ups else None
    pool = Pool(store, default_registry(settings), PoolConfig(slots=2, lease_seconds=30, settings=settings), wiring)
    pool.run(drain=True)


def test_bad_url_lines_become_failed_tasks_with_reasons(tmp_path: Path, real_store: Store) -> None:
    settings = make_settings(tmp_path)
    url_file = tmp_path / "links.txt"
    url_file.write_text("file:///etc/passwd\nftp://example.com/talk.mp3\nhttp://nonexistent.invalid/talk.mp3\n"
                        "https://nonexistent.invalid/watch?v=1\n", encoding="utf-8")  # fmt: skip
    tasks = queue_urls(real_store, settings, parse_url_file(url_file))
    drain(real_store, settings)
    done = [real_store.get(t.id) for t in tasks]
    assert [t.state for t in done] == [TaskState.FAILED] * 4
    assert [t.error_kind for t in done] == ["permanent"] * 4
    messages = [t.error_message or "" for t in done]
    assert "unsupported URL scheme (file://)" in messages[0] and "only http and https" in messages[0]
    assert "unsupported URL scheme (ftp://)" in messages[1]
    assert "unknown host 'nonexistent.invalid'" in messages[2] and "unknown host" in messages[3]
    assert all("Traceback" not in m for m in messages)
    assert not (settings.home / "outbox").exists() or not any((settings.home / "outbox").iterdir())


def test_site_url_flows_from_metadata_to_download(
    tmp_path: Path, real_store: Store, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)

    def chain(task: Task, result: dict[str, Any] | None, job: Job | None) -> list[NewTask]:
        # The shape pipelines.follow_ups gives YOUTUBE -> DOWNLOAD: the result is the next payload.
        if task.type is TaskType.YOUTUBE and result:
            return [NewTask(TaskType.DOWNLOAD, result, dedupe_key=f"job:{task.job_id}:download")]
        return []

    (first,) = queue_urls(real_store, settings, [media_server.url("/page/tone.mp3.html")])
    assert first.type is TaskType.YOUTUBE
    drain(real_store, settings, follow_ups=chain)
    tasks = real_store.tasks_of_job(first.job_id)
    assert [(t.type, t.state) for t in tasks] == [(TaskType.YOUTUBE, TaskState.SUCCEEDED),
                                                  (TaskType.DOWNLOAD, TaskState.SUCCEEDED)]  # fmt: skip
    download = tasks[1].result or {}
    # The job ends here (no PREPROCESS in this chain): its scratch folder is gone, the download kept in the outbox.
    assert download["sha256"] == hashlib.sha256(media_files["tone.mp3"]).hexdigest() and download["via"] == "yt-dlp"
    assert Path(download["path"]).parent == (settings.home / "outbox").resolve()
    assert Path(download["path"]).read_bytes() == media_files["tone.mp3"]
    assert not (settings.tmp_dir / f"job-{first.job_id}").exists()
    assert download["title"].startswith("Episode") and (settings.home / "outbox" / "talk.meta.json").is_file()
