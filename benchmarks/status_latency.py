"""Wall time of `traxctl status`: idle with warm bytecode, and while a real `traxd run` ingests and runs files.

Goals (issue 14): idle ≤ 0.35 s; p95 ≤ 1 s while the daemon takes in and runs 2,000 files.

    uv run python -m benchmarks.status_latency [--files 2000] [--idle-runs 15] [--busy-seconds 90]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest_latency import REPO

# The console script, as users type it (its entry point answers `status` before loading the Typer app).
STATUS = [str(Path(sys.executable).parent / "traxctl"), "status"]


def busy_registry(_settings: Any) -> Any:
    """Every task takes 50 ms and reports a minute of media, so jobs move through their stages."""
    from traxd.handlers.registry import Registry
    from traxd.types import TaskType

    def handle(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.05)
        return {"duration": 60.0}

    return Registry({t: handle for t in TaskType})


def environment(home: Path) -> dict[str, str]:
    """A clean environment on `home` with the benchmark's handlers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAX_", "OPENAI_", "DEEPSEEK_"))}
    return env | {"TRAX_HOME": str(home), "PYTHONPATH": str(REPO),
                  "TRAX_TEST_HANDLERS": "benchmarks.status_latency:busy_registry"}  # fmt: skip


def timed_status(env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one `traxctl status` run (CPU time says more on a shared, loaded machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(STATUS, check=False, env=env, cwd=REPO, capture_output=True, timeout=300)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode(errors="replace"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def figures(samples: list[tuple[float, float]]) -> str:
    """Median and p95 of wall and CPU seconds."""
    walls, cpus = sorted(w for w, _ in samples), sorted(c for _, c in samples)

    def p95(xs: list[float]) -> float:
        return statistics.quantiles(xs, n=20)[18] if len(xs) >= 2 else xs[-1]

    return (f"wall median {statistics.median(walls):.3f}s p95 {p95(walls):.3f}s | "
            f"CPU median {statistics.median(cpus):.3f}s p95 {p95(cpus):.3f}s")  # fmt: skip


def idle(runs: int) -> list[tuple[float, float]]:
    """`status` on a stopped queue with some history; the first run (creating the DB) is not counted."""
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp) / "home")
        timed_status(env)
        timed_status(env)  # bytecode warm
        return [timed_status(env) for _ in range(runs)]


def busy(files: int, seconds: float) -> tuple[list[tuple[float, float]], str]:
    """`status` in a loop while a daemon ingests and runs `files` files; returns the times and the last report."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = environment(home)
        log = open(Path(tmp) / "traxd.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "traxd.cli.traxd_cmd", "run", "--workers", "8"], env=env,
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            while "observer_started" not in (Path(tmp) / "traxd.log").read_text(errors="replace"):
                time.sleep(0.1)
            for i in range(files):
                (home / "inbox" / f"clip-{i:05}.mp3").write_bytes(f"benchmark clip {i} ".encode() * 20)
            times: list[tuple[float, float]] = []
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                times.append(timed_status(env))
            last = subprocess.run(STATUS, check=False, env=env, cwd=REPO, capture_output=True, text=True).stdout
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
    return times, last


def main() -> None:
    """Measure both and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--idle-runs", type=int, default=15)
    parser.add_argument("--busy-seconds", type=float, default=90.0)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    quiet = idle(args.idle_runs)
    print(f"status idle (warm bytecode, {len(quiet)} runs): {figures(quiet)} (goal wall ≤ 0.35 s)")
    loaded, last = busy(args.files, args.busy_seconds)
    print(f"status while the daemon ingests and runs {args.files} files ({len(loaded)} runs): {figures(loaded)} "
          "(goal wall p95 ≤ 1 s)")  # fmt: skip
    print("last report:\n" + "\n".join("  " + line for line in last.splitlines()[:4]))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared with other jobs)")


if __name__ == "__main__":
    main()
