"""Ingest latency and idle cost of a real `traxd run`.

Drops 1,000 small files into a watched inbox and prints p50/p95/max from "file complete" (closed) to "task
queued" (the task row's created_at), then the daemon's idle CPU% and RSS over 30 s with an empty queue.
Goals: p95 < settle interval + 1 s; idle CPU < 1 %; idle RSS < 80 MB.

    uv run python -m benchmarks.ingest_latency [--files 1000] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


def empty_registry(_settings: Any) -> Any:
    """No handlers: the benchmark measures ingestion alone, nothing gets claimed."""
    from traxd.handlers.registry import Registry

    return Registry()


def start_daemon(home: Path) -> subprocess.Popen[bytes]:
    """`traxd run` on `home` with default settle/rescan intervals."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAX_", "OPENAI_", "DEEPSEEK_"))}
    env.update(TRAX_HOME=str(home), PYTHONPATH=str(REPO), TRAX_TEST_HANDLERS="benchmarks.ingest_latency:empty_registry")
    log = open(home.parent / f"{home.name}.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen([sys.executable, "-m", "traxd.cli.traxd_cmd", "run"], env=env, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 120
    while "observer_started" not in (home.parent / f"{home.name}.log").read_text(errors="replace"):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("daemon did not start")
        time.sleep(0.1)
    return proc


def queued_times(db: Path) -> dict[str, float]:
    """path -> created_at of every PREPROCESS task (read with plain sqlite3, short read)."""
    import json
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute("SELECT payload, created_at FROM tasks WHERE type = 'preprocess'").fetchall()
    return {json.loads(p)["path"]: c for p, c in rows}


def drop_files(inbox: Path, count: int) -> dict[str, float]:
    """Write `count` small files; returns path -> time the file was complete (closed)."""
    done: dict[str, float] = {}
    for i in range(count):
        path = inbox / f"clip-{i:05}.mp3"
        with open(path, "wb") as fh:
            fh.write(f"benchmark clip {i} ".encode() * 20)
        done[str(path.resolve())] = time.time()
    return done


def latency(files: int) -> list[float]:
    """Seconds from complete to queued for each file."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        proc = start_daemon(home)
        try:
            complete = drop_files(home / "inbox", files)
            deadline = time.monotonic() + 300
            while len(queued := queued_times(home / "trax.db")) < files and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return sorted(queued[p] - t for p, t in complete.items() if p in queued)


def idle(seconds: float) -> tuple[float, float]:
    """CPU% and peak RSS (MB) of an idle daemon over `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_daemon(Path(tmp) / "home")
        try:
            ps = psutil.Process(proc.pid)
            time.sleep(3)  # let start-up settle
            before, started, peak = ps.cpu_times(), time.monotonic(), 0.0
            while time.monotonic() - started < seconds:
                peak = max(peak, ps.memory_info().rss / 1e6)
                time.sleep(1)
            after = ps.cpu_times()
            cpu = 100 * ((after.user - before.user) + (after.system - before.system)) / (time.monotonic() - started)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return cpu, peak


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    lat = latency(args.files)
    if len(lat) < args.files:
        print(f"only {len(lat)}/{args.files} files were queued")
    q = statistics.quantiles(lat, n=100)
    print(f"ingest latency over {len(lat)} files: p50 {q[49]:.2f}s  p95 {q[94]:.2f}s  max {lat[-1]:.2f}s "
          "(goal p95 < settle 2.0s + 1s)")  # fmt: skip
    cpu, rss = idle(args.idle_seconds)
    print(f"idle over {args.idle_seconds:.0f}s: CPU {cpu:.2f}%  RSS {rss:.1f} MB (goals < 1% and < 80 MB)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared with other jobs)")


if __name__ == "__main__":
    main()
