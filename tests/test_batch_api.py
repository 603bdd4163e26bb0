"""The original design's API on the durable queue: add_task, start with progress, pause/resume/stop, results."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import batch_handlers
from traxd import BatchProgress, BatchResult, TaskType, create_batch_processor
from traxd.batch import BatchProcessor, QueueFullError, TaskInputError
from traxd.clock import FakeClock
from traxd.errors import UserError
from traxd.handlers.registry import Registry, TaskContext
from traxd.progress import progress_line
from traxd.resources import Sample


def calm() -> Sample:
    return Sample(100.0, 5.0, 10_000.0)


def make_files(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name in enumerate(names):
        path = folder / name
        path.write_bytes(f"fake media {i} {name}".encode() * 10)
        out.append(path)
    return out


def processor(tmp_path: Path, registry: Registry | None = None, **kw: Any) -> BatchProcessor:
    kw.setdefault("sampler", calm)
    return create_batch_processor(home=tmp_path / "home", registry=registry or batch_handlers.registry(), **kw)


class Counting:
    """A registry whose TRANSCRIBE handler counts runs per path and can be held on an event."""

    def __init__(self, on_run: Callable[[TaskContext], None] | None = None) -> None:
        self.runs: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.on_run = on_run

    def handler(self, ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.runs[payload["path"]] += 1
        if self.on_run is not None:
            self.on_run(ctx)
        return {"duration": 10.0, "quality": {"confidence": 0.8, "warnings": ["low confidence"]}}

    def registry(self) -> Registry:
        return Registry({TaskType.TRANSCRIBE: self.handler})


def wait_for(cond: Callable[[], bool], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def test_every_task_runs_once_and_result_counts(tmp_path: Path) -> None:
    counting = Counting()
    files = make_files(tmp_path / "media", [f"f{i:02d}.mp3" for i in range(30)])
    proc = processor(tmp_path, counting.registry(), max_workers=4)

    async def main() -> BatchResult:
        for f in files:
            task = await proc.add_task(TaskType.TRANSCRIBE, {"file_path": str(f)})
            assert task.created and task.task_type is TaskType.TRANSCRIBE
        return await proc.start()

    result = asyncio.run(main())
    assert set(counting.runs.values()) == {1} and len(counting.runs) == 30
    assert (result.total_tasks, result.completed_tasks, result.failed_tasks) == (30, 30, 0)
    assert (result.success_rate, result.failure_rate, result.ok) == (100.0, 0.0, True)
    assert result.quality_metrics["average_confidence"] == 0.8
    assert result.warnings == [{"warning": "low confidence", "count": 30, "sources": [str(f) for f in files]}]
    assert result.quality_metrics["per_type"]["transcribe"]["succeeded"] == 30
    assert result.peak_memory_mb == 100.0 and result.peak_cpu_percent == 5.0


def test_progress_callback_cadence_with_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    counting = Counting(on_run=lambda ctx: clock.advance(2.0))  # every task "takes" 2 s of the fake clock
    files = make_files(tmp_path / "media", [f"f{i}.wav" for i in range(12)])
    proc = processor(tmp_path, counting.registry(), max_workers=1, progress_interval=5.0, clock=clock)
    seen: list[tuple[float, BatchProgress]] = []

    async def main() -> BatchResult:
        for f in files:
            await proc.add_task("transcribe", {"path": str(f)})
        return await proc.start(progress_callback=lambda p: seen.append((clock.now(), p)))

    result = asyncio.run(main())
    # Each report carries the clock reading it was due at; reports come no closer than the interval.
    times = [p.elapsed_seconds for _, p in seen[:-1]]
    assert len(seen) >= 2 and all(b - a >= 5.0 for a, b in itertools.pairwise(times))
    assert len(times) <= 24 / 5 + 1  # 12 tasks x 2 s of fake time, one report per 5 s at most
    final = seen[-1][1]
    assert (final.completed_tasks, final.total_tasks, final.state) == (12, 12, "finished")
    assert final.elapsed_seconds == pytest.approx(24.0) and result.processing_time == pytest.approx(24.0)
    assert final.eta_seconds == 0.0


async def _async_callback_used(proc: BatchProcessor, files: list[Path]) -> list[BatchProgress]:
    got: list[BatchProgress] = []

    async def callback(p: BatchProgress) -> None:
        got.append(p)

    for f in files:
        await proc.add_task(TaskType.TRANSCRIBE, {"audio_path": str(f)})
    await proc.start(progress_callback=callback)
    return got


def test_async_callback_and_get_progress_fields(tmp_path: Path) -> None:
    files = make_files(tmp_path / "media", ["a.mp3", "b.mp3"])
    proc = processor(tmp_path)
    got = asyncio.run(_async_callback_used(proc, files))
    assert got and got[-1].completed_tasks == 2
    p = proc.get_progress()
    assert (p.total_tasks, p.completed_tasks, p.failed_tasks, p.active_tasks, p.queued_tasks) == (2, 2, 0, 0, 0)
    assert (p.success_rate, p.failure_rate, p.memory_usage_mb, p.cpu_usage_percent) == (100.0, 0.0, 100.0, 5.0)
    assert p.state == "finished" and p.as_dict()["succeeded"] == 2


def test_pause_resume(tmp_path: Path) -> None:
    counting = Counting()
    files = make_files(tmp_path / "media", [f"p{i}.mp3" for i in range(5)])
    proc = processor(tmp_path, counting.registry(), max_workers=2)

    async def main() -> BatchResult:
        for f in files:
            await proc.add_task(TaskType.TRANSCRIBE, {"path": str(f)})
        proc.pause()
        job = asyncio.create_task(proc.start())
        while proc.get_progress().state != "paused":
            await asyncio.sleep(0.01)
        assert proc.get_progress().paused_reason == "paused by the caller" and not counting.runs
        proc.resume()
        return await job

    result = asyncio.run(main())
    assert result.completed_tasks == 5 and sum(counting.runs.values()) == 5


def test_stop_keeps_the_rest_for_the_next_start(tmp_path: Path) -> None:
    gate, started = threading.Event(), threading.Event()

    def hold(ctx: TaskContext) -> None:
        started.set()
        gate.wait(30)

    counting = Counting(on_run=hold)
    files = make_files(tmp_path / "media", [f"s{i}.mp3" for i in range(6)])
    proc = processor(tmp_path, counting.registry(), max_workers=1)

    async def main() -> tuple[BatchResult, BatchResult]:
        for f in files:
            await proc.add_task(TaskType.TRANSCRIBE, {"path": str(f)})
        job = asyncio.create_task(proc.start())
        await asyncio.to_thread(started.wait, 30)
        proc.stop()
        gate.set()  # the running task finishes within the grace period
        first = await job
        second = await proc.start()
        return first, second

    first, second = asyncio.run(main())
    assert first.interrupted and first.completed_tasks == 1 and first.pending_tasks == 5
    assert "run the batch again" in (first.pending_reason or "") and not first.ok
    assert second.completed_tasks == 6 and second.ok
    assert set(counting.runs.values()) == {1} and len(counting.runs) == 6


@pytest.mark.parametrize(
    "task_type, data, message",
    [
        ("SPEAK", {"path": "x"}, "unknown task type 'SPEAK'"),
        (TaskType.TRANSCRIBE, ["x.mp3"], "task data must be a dict, got list"),
        (TaskType.TRANSCRIBE, {"name": "x"}, "TRANSCRIBE task data needs a 'path'"),
        (TaskType.TRANSCRIBE, {"path": "/nope/missing.mp3"}, "no such file"),
        (TaskType.DOWNLOAD, {"path": "x"}, "DOWNLOAD task data needs a 'url'"),
        (TaskType.TRANSCRIBE, {"url": "notaurl"}, "needs a 'url' \\(http or https\\)"),
        (TaskType.YOUTUBE, {"url": "javascript:alert(1)"}, "needs a 'url' \\(http or https\\)"),
        (TaskType.TRANSCRIBE, {"path": "PLACEHOLDER.part"}, "is not an input: partial download"),
        (TaskType.TRANSCRIBE, {"path": "PLACEHOLDER", "language": "klingon"}, "unknown language 'klingon'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, task_type: Any, data: Any, message: str) -> None:
    f = make_files(tmp_path / "media", ["ok.mp3"])[0]
    if isinstance(data, dict) and data.get("path") == "PLACEHOLDER":
        data = {**data, "path": str(f)}
    if isinstance(data, dict) and data.get("path") == "PLACEHOLDER.part":
        data = {**data, "path": str(make_files(tmp_path / "media", ["ok.mp3.part"])[0])}
    proc = processor(tmp_path)
    with pytest.raises(TaskInputError, match=message) as err:
        asyncio.run(proc.add_task(task_type, data))
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    assert proc.get_progress().total_tasks == 0 and proc._run.store.counts() == {s: 0 for s in proc._run.store.counts()}


def test_queue_size_and_bad_arguments(tmp_path: Path) -> None:
    files = make_files(tmp_path / "media", ["a.mp3", "b.mp3"])
    proc = processor(tmp_path, queue_size=1)
    asyncio.run(proc.add_task(TaskType.TRANSCRIBE, {"path": str(files[0])}))
    with pytest.raises(QueueFullError):
        asyncio.run(proc.add_task(TaskType.TRANSCRIBE, {"path": str(files[1])}))
    with pytest.raises(UserError, match="max_workers"):
        create_batch_processor(max_workers=0, home=tmp_path / "home")


def test_same_file_is_not_processed_twice_across_processors(tmp_path: Path) -> None:
    counting = Counting()
    f = make_files(tmp_path / "media", ["same.mp3"])[0]
    copy = tmp_path / "media" / "renamed.mp3"
    copy.write_bytes(f.read_bytes())

    async def run_once(paths: list[Path]) -> BatchResult:
        proc = processor(tmp_path, counting.registry())
        for p in paths:
            await proc.add_task(TaskType.TRANSCRIBE, {"path": str(p)})
        return await proc.start()

    first = asyncio.run(run_once([f, copy]))  # same content, renamed: one job
    second = asyncio.run(run_once([f]))  # another processor later: already done
    assert sum(counting.runs.values()) == 1
    assert (first.total_tasks, first.completed_tasks) == (1, 1)
    assert (second.total_tasks, second.completed_tasks, second.skipped_tasks) == (1, 1, 1)


def test_failures_urls_enhance_and_options_reach_handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    effects = tmp_path / "effects.jsonl"
    monkeypatch.setenv(batch_handlers.SIDE_EFFECTS_ENV, str(effects))
    files = make_files(tmp_path / "media", ["good.mp3", "bad.mp3", "quiet.mp3"])
    proc = processor(tmp_path, follow_ups=batch_handlers.follow_ups, enhance=True, language="German",
                     model="tiny.en", chunk_size=300.0, output_dir=tmp_path / "out", word_timestamps=True)  # fmt: skip

    async def main() -> BatchResult:
        for f in files:
            await proc.add_task(TaskType.PREPROCESS, {"path": str(f)})
        await proc.add_task(TaskType.YOUTUBE, {"url": "https://www.youtube.com/watch?v=abc"})
        return await proc.start()

    result = asyncio.run(main())
    lines = batch_handlers.read_side_effects(effects)
    assert Counter(line["type"] for line in lines) == {"preprocess": 3, "transcribe": 2, "enhance": 2, "youtube": 1}
    # No OpenAI key: the local backend runs, so the model is a local size and the job says for which backend.
    options = {"enhance": True, "language": "de", "model": "tiny.en", "backend": "local", "chunk_size": 300.0,
               "word_timestamps": True}  # fmt: skip
    assert all(line["options"] == options for line in lines)
    assert (result.total_tasks, result.completed_tasks, result.failed_tasks) == (4, 1, 3)
    reasons = {Path(f["source"]).name: (f["type"], f["reason"]) for f in result.failures}
    assert reasons["bad.mp3"] == ("preprocess", "bad.mp3 is not a media file")
    assert reasons["good.mp3"] == ("enhance", "DEEPSEEK_API_KEY is not set: cannot enhance")
    assert (tmp_path / "out" / "good.txt").exists()
    assert result.warnings[0]["warning"] == "low_confidence" and result.warnings[0]["count"] == 1


def test_a_crash_of_the_pool_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = make_files(tmp_path / "media", ["a.mp3"])[0]
    proc = processor(tmp_path)

    def broken(*args: Any, **kw: Any) -> list[Any]:
        raise RuntimeError("a bug in the queue")

    monkeypatch.setattr(proc._run.store, "exchange", broken)

    async def main() -> BatchResult:
        await proc.add_task(TaskType.TRANSCRIBE, {"path": str(f)})
        return await proc.start()

    with pytest.raises(RuntimeError, match="a bug in the queue"):
        asyncio.run(main())


def test_memory_pressure_holds_claims_and_shows_in_progress(tmp_path: Path) -> None:
    counting = Counting()
    readings = [Sample(5000.0, 10.0, 10_000.0)]  # far over the 2048 MB limit until the test says otherwise
    files = make_files(tmp_path / "media", ["a.mp3", "b.mp3"])
    proc = processor(tmp_path, counting.registry(), sampler=lambda: readings[-1])
    proc._run.monitor.interval = 0.0

    async def main() -> tuple[BatchProgress, int, BatchResult]:
        for f in files:
            await proc.add_task(TaskType.TRANSCRIBE, {"path": str(f)})
        job = asyncio.create_task(proc.start())
        while (proc.get_progress().paused_reason or "") != "memory 5000MB over limit 2048MB":
            await asyncio.sleep(0.01)
        held, ran = proc.get_progress(), sum(counting.runs.values())
        readings.append(Sample(100.0, 10.0, 10_000.0))  # pressure gone: claims resume
        return held, ran, await job

    held, ran, result = asyncio.run(main())
    assert held.completed_tasks == 0 and held.active_tasks == 0 and ran == 0
    assert progress_line(held).endswith("| Paused: memory 5000MB over limit 2048MB")
    assert held.extra["slots"] < 8  # lasting pressure lowered the slots too
    assert result.completed_tasks == 2 and result.peak_memory_mb == 5000.0


def test_a_download_that_ends_its_job_is_kept_where_the_caller_said(
    tmp_path: Path, media_server: Any, media_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stand-in pipeline stops after DOWNLOAD: the job ends there and its scratch folder is swept, so the file
    # goes to the output folder the caller named, and the task's result says where; a second one gets NAME-2.
    from traxd.handlers.download import handle_download

    monkeypatch.setenv("TRAX_ALLOW_PRIVATE_URLS", "1")  # the media server is on 127.0.0.1
    proc = processor(tmp_path, Registry({TaskType.DOWNLOAD: handle_download}), follow_ups=batch_handlers.follow_ups)
    out = tmp_path / "saved"
    out.mkdir()
    (out / "tone.wav").write_bytes(b"someone else's")

    async def main() -> BatchResult:
        await proc.add_task(TaskType.DOWNLOAD, {"url": media_server.url("/media/tone.wav"), "output_dir": str(out)})
        return await proc.start()

    result = asyncio.run(main())
    assert result.completed_tasks == 1 and result.failed_tasks == 0
    (task,) = proc.tasks
    done = proc._run.store.get(task.task_id)
    assert done is not None and done.result is not None
    saved = Path(done.result["path"])
    assert saved == out.resolve() / "tone-2.wav" and saved.read_bytes() == media_files["tone.wav"]
    assert (out / "tone.wav").read_bytes() == b"someone else's"
    assert not (tmp_path / "home" / "tmp" / f"job-{task.job_id}").exists()  # the scratch went with the job


def test_not_before_and_after_hold_tasks_of_the_api(tmp_path: Path) -> None:
    """`add_task(..., not_before=, after=[job])`: the first starts no earlier than its time, the second only once the
    first has succeeded; an unknown job is refused in one line and writes nothing."""
    ran: list[tuple[str, float]] = []
    counting = Counting(on_run=lambda ctx: ran.append((Path(ctx.task.payload["path"]).name, time.time())))
    first, second, third = make_files(tmp_path / "media", ["first.mp3", "second.mp3", "third.mp3"])
    proc = processor(tmp_path, counting.registry(), max_workers=4)
    at = time.time() + 1.0

    async def main() -> BatchResult:
        held = await proc.add_task(TaskType.TRANSCRIBE, {"file_path": str(first)}, not_before=at)
        await proc.add_task(TaskType.TRANSCRIBE, {"file_path": str(second)}, after=[held.job_id])
        with pytest.raises(UserError, match="no job"):
            await proc.add_task(TaskType.TRANSCRIBE, {"file_path": str(third)}, after=[held.job_id + 99])
        return await proc.start()

    result = asyncio.run(main())
    assert [name for name, _ in ran] == ["first.mp3", "second.mp3"] and result.completed_tasks == 2
    assert ran[0][1] >= at
