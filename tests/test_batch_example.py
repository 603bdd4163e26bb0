"""The original design's async example runs with only its import line changed (as a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import batch_handlers

ROOT = Path(__file__).resolve().parent.parent


def run_example(home: Path, folder: Path, effects: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAX_HOME": str(home), "PYTHONPATH": str(ROOT),
           "TRAX_TEST_HANDLERS": "tests.batch_handlers:registry", batch_handlers.SIDE_EFFECTS_ENV: str(effects)}  # fmt: skip
    env.pop("TRAX_DATABASE_URL", None)
    return subprocess.run([sys.executable, str(ROOT / "examples" / "batch_example.py"), str(folder)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_example_imports_only_from_traxd() -> None:
    source = (ROOT / "examples" / "batch_example.py").read_text()
    assert "from traxd import create_batch_processor, TaskType\n" in source
    assert [line for line in source.splitlines() if "traxd" in line and "import" in line] == [
        "from traxd import create_batch_processor, TaskType"
    ]


def test_example_runs_and_a_rerun_skips_done_files(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("one.mp3", "two.wav", "three.m4a", "bad.mp3", "notes.md"):
        (folder / name).write_bytes(name.encode() * 50)
    effects = tmp_path / "effects.jsonl"
    first = run_example(tmp_path / "home", folder, effects)
    assert first.returncode == 1, first.stderr
    assert "Progress: " in first.stdout and "Total: 4" in first.stdout and "Successful: 3" in first.stdout
    assert "Failed: 1" in first.stdout and "Processing time: " in first.stdout and "Peak memory: " in first.stdout
    assert "FAILED " in first.stdout and "bad.mp3 is not a media file" in first.stdout
    assert (folder / "transcripts" / "one.txt").is_file()
    ran = len(batch_handlers.read_side_effects(effects))
    assert ran == 4
    second = run_example(tmp_path / "home", folder, effects)
    assert "Successful: 3" in second.stdout
    # Done files are skipped; only the failed one is tried again.
    assert len(batch_handlers.read_side_effects(effects)) == ran + 1
