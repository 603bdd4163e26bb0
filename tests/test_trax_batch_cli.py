"""`trax batch` through typer's CliRunner: results, exit codes, bad input, options passed through, re-runs."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests import batch_handlers
from traxd.batching.inputs import group_for
from traxd.cli.trax_cmd import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private TRAX_HOME, the test handlers, and a side-effect file (returned)."""
    effects = tmp_path / "effects.jsonl"
    for var in ("TRAX_DATABASE_URL", "DEEPSEEK_API_KEY", "TRAX_LANGUAGE", "TRAX_TRANSCRIBE_MODEL", "TRAX_ENHANCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRAX_TEST_HANDLERS", "tests.batch_handlers:registry")
    monkeypatch.setenv(batch_handlers.SIDE_EFFECTS_ENV, str(effects))
    return effects


def media(folder: Path, *names: str) -> Path:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 40)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def trax(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["batch", *args])
    return result.exit_code, result.stdout, result.stderr


def test_all_good_exit_0_outputs_report_and_json(tmp_path: Path, env: Path) -> None:
    folder = media(tmp_path / "in", "a.mp3", "b.wav", "sub/c.m4a")
    code, out, err = trax(str(folder), "--json", "--progress-interval", "0.01")
    assert code == 0, err
    data = json.loads(out)
    assert (data["total"], data["succeeded"], data["failed"]) == (3, 3, 0)
    assert data["quality"]["average_confidence"] == 0.9
    assert "Progress: 3/3 (100.0% success) | Active: 0 | Failed: 0 | Memory: " in err
    report = Path(data["report"])
    assert report.parent == folder / "transcripts" and report.name.startswith("trax-batch-")
    assert json.loads(report.read_text())["succeeded"] == 3
    assert sorted(p.relative_to(folder / "transcripts").as_posix() for p in (folder / "transcripts").rglob("*.txt")) == [
        "a.txt", "b.txt", "sub/c.txt"]  # fmt: skip


def test_bad_files_exit_1_with_one_line_reason_each(tmp_path: Path, env: Path) -> None:
    folder = media(tmp_path / "in", "good.mp3", "bad one.mp3", "bad two.wav", "quiet.mp3")
    code, out, _err = trax(str(folder))
    assert code == 1
    assert "bad one.mp3 is not a media file" in out and "bad two.wav is not a media file" in out
    assert "Failures (2):" in out and "low_confidence" in out and "Report: " in out
    assert f"FAILED {folder / 'bad one.mp3'} (preprocess): bad one.mp3 is not a media file\n" in out
    report = json.loads(next((folder / "transcripts").glob("trax-batch-*.json")).read_text())
    assert (report["total"], report["succeeded"], report["failed"]) == (4, 2, 2)
    assert sorted(f["reason"] for f in report["failures"]) == ["bad one.mp3 is not a media file",
                                                                "bad two.wav is not a media file"]  # fmt: skip
    assert report["warnings"] == [{"warning": "low_confidence", "count": 1, "sources": [str(folder / "quiet.mp3")]}]


def test_rerun_skips_finished_files_and_retries_failed_ones(tmp_path: Path, env: Path) -> None:
    folder = media(tmp_path / "in", "a.mp3", "b.mp3", "bad.mp3")
    assert trax(str(folder))[0] == 1
    first = Counter(Path(x["source"]).name for x in batch_handlers.read_side_effects(env))
    os.chdir(tmp_path)  # a relative path to the same folder is the same batch
    code, _out, err = trax("in")
    assert code == 1 and "to retry" in err
    second = Counter(Path(x["source"]).name for x in batch_handlers.read_side_effects(env))
    assert first == {"a.mp3": 1, "b.mp3": 1, "bad.mp3": 1}
    assert second == {"a.mp3": 1, "b.mp3": 1, "bad.mp3": 2}


def test_every_option_reaches_the_handlers(tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # the openai backend: --model is an API model name
    folder = media(tmp_path / "in", "a.mp3", "deep/b.mp3")
    out_dir = tmp_path / "out"
    code, _out, err = trax(str(folder), "--workers", "3", "--progress-interval", "0.5", "--memory-limit", "16384",
                           "--cpu-limit", "80", "--model", "gpt-4o-transcribe", "--language", "DE", "--chunk-size",
                           "300", "--enhance", "--no-recursive", "--output", str(out_dir), "--word-timestamps")  # fmt: skip
    assert code == 0, err
    assert "--enhance without DEEPSEEK_API_KEY" in err
    lines = batch_handlers.read_side_effects(env)
    assert [Path(x["source"]).name for x in lines] == ["a.mp3"]  # --no-recursive
    assert lines[0]["options"] == {"enhance": True, "language": "de", "model": "gpt-4o-transcribe", "backend": "openai",
                                   "chunk_size": 300.0, "word_timestamps": True}  # fmt: skip
    assert lines[0]["output_dir"] == str(out_dir) and lines[0]["group"] == group_for(folder)
    assert (out_dir / "a.txt").is_file() and list(out_dir.glob("trax-batch-*.json"))


def test_environment_fills_what_flags_leave_out(tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAX_TRANSCRIBE_MODEL", "whisper-large")
    monkeypatch.setenv("TRAX_LANGUAGE", "french")
    assert trax(str(media(tmp_path / "in", "a.mp3")))[0] == 0
    options = batch_handlers.read_side_effects(env)[0]["options"]
    # The configured model is not copied into the job: the backend that runs it reads its own setting then.
    assert options == {"enhance": False, "language": "fr", "model": None, "chunk_size": 600.0, "word_timestamps": False}


def test_one_file_is_accepted(tmp_path: Path, env: Path) -> None:
    folder = media(tmp_path / "in", "only.mp3", "other.mp3")
    code, _out, _err = trax(str(folder / "only.mp3"))
    assert code == 0 and [Path(x["source"]).name for x in batch_handlers.read_side_effects(env)] == ["only.mp3"]
    assert (folder / "transcripts" / "only.txt").is_file()


def test_empty_folder_and_ignored_files(tmp_path: Path, env: Path) -> None:
    folder = media(tmp_path / "in", ".hidden.mp3", "x.mp3.part", "notes.txt", "dl.crdownload")
    (folder / "link.mp3").symlink_to(tmp_path / "elsewhere.mp3")
    os.mkfifo(folder / "pipe.mp3")
    code, _out, err = trax(str(folder))
    assert code == 0 and "nothing to do" in err and not env.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["MISSING"], "no such file or folder"),
        (["IN", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["IN", "--workers", "-3"], "--workers must be at least 1, got -3"),
        (["IN", "--memory-limit", "99999999"], "is more than this machine's memory"),
        (["IN", "--language", "xx"], "unknown language 'xx'"),
        (["IN", "--cpu-limit", "150"], "--cpu-limit must be between 0 and 100"),
        (["IN", "--chunk-size", "0"], "--chunk-size must be greater than 0"),
        (["IN", "--progress-interval", "0"], "--progress-interval must be greater than 0"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, env: Path, args: list[str], message: str) -> None:
    folder = media(tmp_path / "in", "a.mp3")
    args = [str(folder) if a == "IN" else str(tmp_path / "missing") if a == "MISSING" else a for a in args]
    code, _out, err = trax(*args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not env.exists()  # nothing ran


def test_typer_rejects_non_numbers_with_exit_2(tmp_path: Path, env: Path) -> None:
    assert trax(str(tmp_path), "--workers", "many")[0] == 2
