"""Benchmark: Trax's own overhead per file in `trax batch` (500 tiny files), and peak RSS.

    uv run python benchmarks/batch_overhead.py [--files 500] [--workers 8]

Until the real PREPROCESS/TRANSCRIBE handlers are on main this measures with no-op handlers (no fake
server): every second of wall time is Trax's own work (discovery, hashing, enqueue, claims, completion,
progress, result). "Handler time" is the union of the intervals in which at least one handler ran;
overhead = wall - handler time. Two runs: in-process (run_batch, the same code as the CLI) and the real
`trax batch` console script in a subprocess (adds interpreter start-up and imports).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

_spans: list[tuple[float, float]] = []
_lock = threading.Lock()


def registry(settings: Any = None) -> Any:
    """TRAX_TEST_HANDLERS=batch_overhead:registry - no-op handlers that record when they ran."""
    from traxd.handlers.registry import Registry
    from traxd.types import TaskType

    def noop(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        end = time.perf_counter()
        with _lock:
            _spans.append((start, end))
        return {}

    return Registry({t: noop for t in TaskType})


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds in which at least one handler ran (union of intervals)."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(spans):
        if cur_end is None or start > cur_end:
            total += (cur_end - cur_start) if cur_end is not None and cur_start is not None else 0.0
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def make_files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"clip{i:04d}.mp3").write_bytes(os.urandom(64))


class Quiet:
    """A reporter that shows nothing (we time Trax, not the terminal)."""

    def message(self, text: str) -> None: ...

    def begin(self, total: int) -> None: ...

    def update(self, progress: Any) -> None: ...

    def finish(self, result: Any, report: Any) -> None:
        self.result = result


def in_process(folder: Path, home: Path, workers: int) -> dict[str, float]:
    """run_batch in this process with the recording no-op handlers."""
    os.environ.update({"TRAX_HOME": str(home), "TRAX_TEST_HANDLERS": "batch_overhead:registry"})
    sys.path.insert(0, str(HERE))
    import batch_overhead  # the module the loader imports: share its span list

    from traxd.batching.command import BatchOptions, run_batch

    reporter = Quiet()
    started = time.perf_counter()
    code = run_batch(BatchOptions(folder, workers=workers, progress_interval=1.0), reporter)
    wall = time.perf_counter() - started
    busy = covered(batch_overhead._spans)
    assert code == 0 and reporter.result.completed_tasks == len(list(folder.glob("*.mp3")))
    return {"wall": wall, "busy": busy, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def subprocess_run(folder: Path, home: Path, workers: int) -> dict[str, float]:
    """The real console script; peak RSS of the child from getrusage."""
    env = {**os.environ, "TRAX_HOME": str(home), "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}",
           "TRAX_TEST_HANDLERS": "batch_overhead:registry"}  # fmt: skip
    trax = Path(sys.executable).parent / "trax"
    started = time.perf_counter()
    done = subprocess.run([str(trax), "batch", str(folder), "--workers", str(workers), "--json"], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    processing = json.loads(done.stdout)["processing_time"]
    return {"wall": wall, "processing": processing,
            "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        make_files(base / "a", args.files)
        make_files(base / "b", args.files)
        inproc = in_process(base / "a", base / "home-a", args.workers)
        sub = subprocess_run(base / "b", base / "home-b", args.workers)
    n = args.files
    overhead = inproc["wall"] - inproc["busy"]
    print(f"files: {n}, workers: {args.workers}, handlers: no-op (real pipeline not on main yet)")
    print(f"in-process run_batch: {inproc['wall']:.2f}s wall, {n / inproc['wall']:.0f} files/s, "
          f"overhead {overhead / n * 1000:.2f} ms/file ({100 * overhead / inproc['wall']:.1f}% of wall), "
          f"peak RSS {inproc['rss_mb']:.1f} MB")  # fmt: skip
    print(f"trax batch subprocess: {sub['wall']:.2f}s wall including interpreter start-up and imports "
          f"({sub['processing']:.2f}s of it running the queue), {n / sub['wall']:.0f} files/s, "
          f"peak RSS {sub['rss_mb']:.1f} MB")  # fmt: skip
    print("goals: overhead < 10 ms/file, peak RSS < 150 MB")


if __name__ == "__main__":
    main()
