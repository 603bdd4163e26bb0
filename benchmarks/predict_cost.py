"""How well traxd.costs predicts a local transcription's time and peak memory: leave-one-out on files of different
lengths.

    uv run python benchmarks/predict_cost.py

Makes one ~5-minute file of several voices (benchmarks/speech_sets.py), cuts it to five lengths, transcribes each
in a fresh process with the packaged tiny.en (model load outside the timed call, as in a daemon that has it loaded;
the peak RSS is the process's, load included, as the memory limit sees it), then predicts each file from the other
four and prints the mean absolute % error for time and memory. A few minutes on two cores.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LENGTHS = (15.0, 30.0, 60.0, 120.0, 240.0)


def child(model: str, path: str, seconds: float) -> None:
    """Transcribe one file with the engine the daemon uses; print wall seconds and peak RSS (MB)."""
    from traxd.adapters.transcribe_local import LocalTranscriber, load_model

    load_model(model, device="cpu")
    began = time.perf_counter()
    LocalTranscriber("cpu", 4096.0).transcribe(Path(path), model=model, duration=seconds, language="en")
    wall = time.perf_counter() - began
    print(json.dumps({"wall": wall, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(model: str, folder: Path) -> list[tuple[float, float, float]]:
    """(media seconds, wall seconds, peak RSS MB) of each length, each in its own process."""
    from benchmarks.speech_sets import five_minutes, seconds_of

    source, _ = five_minutes(folder)
    rows = []
    for length in LENGTHS:
        cut = folder / f"cut-{int(length)}.wav"
        subprocess.run(["sox", str(source), str(cut), "trim", "0", str(length)], check=True)
        seconds = seconds_of(cut)
        out = subprocess.run([sys.executable, __file__, "--child", model, str(cut), str(seconds)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        got = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((seconds, got["wall"], got["rss"]))
        print(f"{seconds:6.1f} s audio: {got['wall']:6.2f} s wall, peak {got['rss']:6.0f} MB", flush=True)
    return rows


def main() -> None:
    """Measure, then predict each file from the others."""
    from tests.fakes.models import tiny_en
    from traxd.costs import Cost, abs_pct_error, predict

    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(str(tiny_en()), Path(tmp))
    time_errors, memory_errors = [], []
    for i, (seconds, wall, rss) in enumerate(rows):
        others = [Cost(*r) for j, r in enumerate(rows) if j != i]
        guess = predict(others, seconds)
        assert guess is not None
        time_errors.append(abs_pct_error(guess.wall_seconds, wall))
        memory_errors.append(abs_pct_error(guess.peak_rss_mb, rss))
        print(f"{seconds:6.1f} s: predicted {guess.wall_seconds:6.2f} s ({time_errors[-1]:5.1f}% off), "
              f"{guess.peak_rss_mb:6.0f} MB ({memory_errors[-1]:5.1f}% off)")  # fmt: skip
    print(f"mean absolute error, leave-one-out over {len(rows)} files: time {sum(time_errors) / len(rows):.1f}%, "
          f"memory {sum(memory_errors) / len(rows):.1f}%")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
