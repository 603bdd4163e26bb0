"""follow_ups: the whole chain, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from traxd.pipelines import follow_ups
from traxd.types import Job, Task, TaskState, TaskType

T = TaskType


def task(kind: TaskType, priority: int = 6) -> Task:
    return Task(id=5, type=kind, payload={}, state=TaskState.RUNNING, priority=priority, attempts=1, max_retries=3,
                run_after=0.0, lease_owner="o", lease_expires_at=None, error_kind=None, error_message=None, errors=[],
                result=None, dedupe_key=None, job_id=9, created_at=0.0, updated_at=0.0, started_at=None, finished_at=None)


def job(enhance: bool = False) -> Job:
    return Job(9, "/in/a.mp3", "a", "/out", "daemon", {"enhance": enhance}, 0.0)


CHUNKS = {"path": "/in/a.mp3", "duration": 5.0, "chunks": [{"path": "/t/c0.ogg", "offset": 0.0, "duration": 5.0}]}
OUTPUTS = {"name": "a", "outputs": {"txt": "/out/a.txt", "json": "/out/a.json"}, "text": "big", "segments": [1]}


@pytest.mark.parametrize(
    ("kind", "result", "enhance", "expected"),
    [
        (T.YOUTUBE, {"url": "https://m/x.m4a", "title": "X"}, False, (T.DOWNLOAD, {"url": "https://m/x.m4a", "title": "X"})),
        (T.DOWNLOAD, {"path": "/tmp/job-9/x.m4a", "sha256": "ab", "bytes": 3}, False,
         (T.PREPROCESS, {"path": "/tmp/job-9/x.m4a", "sha256": "ab"})),
        (T.PREPROCESS, CHUNKS, False, (T.TRANSCRIBE, CHUNKS)),
        (T.TRANSCRIBE, OUTPUTS, True, (T.ENHANCE, {"name": "a", "outputs": OUTPUTS["outputs"]})),
        (T.TRANSCRIBE, OUTPUTS, False, None),
        (T.ENHANCE, {"verdict": "accepted"}, True, None),
        (T.YOUTUBE, {"title": "no url"}, False, None),
        (T.DOWNLOAD, {}, False, None),
        (T.PREPROCESS, None, False, None),
    ],
)
def test_chain(kind: TaskType, result: dict[str, Any] | None, enhance: bool, expected: tuple | None) -> None:
    got = follow_ups(task(kind), result, job(enhance))
    if expected is None:
        assert got == []
        return
    assert len(got) == 1
    new = got[0]
    assert (new.type, new.payload) == expected
    assert new.dedupe_key == f"job:9:{expected[0].value}" and new.max_retries == 3 and new.priority == 6


def test_without_a_job_the_chain_goes_on_but_never_enhances() -> None:
    assert [t.type for t in follow_ups(task(T.PREPROCESS), CHUNKS, None)] == [T.TRANSCRIBE]
    assert follow_ups(task(T.TRANSCRIBE), OUTPUTS, None) == []


def test_successor_keeps_the_job_priority() -> None:
    hurried = Job(9, "/in/a.mp3", "a", "/out", "daemon", {"priority": 2}, 0.0)
    assert follow_ups(task(T.PREPROCESS, priority=4), CHUNKS, hurried)[0].priority == 2


def test_default_registry_and_type_limits() -> None:
    from traxd.config import load_settings
    from traxd.handlers import default_registry, default_type_limits

    assert {T.PREPROCESS, T.TRANSCRIBE} <= set(default_registry(None).types())
    local = load_settings({"home": "/nonexistent-trax-home"}, env={})
    remote = load_settings({"home": "/nonexistent-trax-home", "openai_api_key": "sk-x"}, env={})
    assert T.TRANSCRIBE in default_type_limits(local) and T.TRANSCRIBE not in default_type_limits(remote)
    assert default_type_limits(remote)[T.PREPROCESS] >= 1
