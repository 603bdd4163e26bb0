"""Restart cost of `traxd run` with a large inbox that was already ingested.

Fills an inbox with N sparse files (default 5,000 x 2 MB = 10 GB apparent size, each with its own first bytes),
lets a daemon queue them all (nothing is claimed), stops it, rewrites one file, then restarts it twice:
- timed: seconds from the start of `traxd run` to its first claimed task (goal < 2 s);
- under strace (openat): which inbox files the restarted daemon opens (goal: only the rewritten one, which is
  queued again).

    uv run python -m benchmarks.restart_cost [--files 5000] [--size-mb 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
MARK_ENV = "TRAX_BENCH_CLAIM_MARK"


def empty_registry(_settings: Any) -> Any:
    """No handlers: the first run only ingests."""
    from traxd.handlers.registry import Registry

    return Registry()


def marking_registry(_settings: Any) -> Any:
    """PREPROCESS writes the wall time of the first claim to $TRAX_BENCH_CLAIM_MARK (once) and succeeds."""
    from traxd.handlers.registry import Registry
    from traxd.types import TaskType

    def mark(_ctx: Any, _payload: dict[str, Any]) -> dict[str, Any]:
        path = Path(os.environ[MARK_ENV])
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return {}
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{time.time()!r} {time.process_time()!r}")  # wall clock, CPU seconds of the daemon so far
        return {}

    return Registry({TaskType.PREPROCESS: mark})


def make_inbox(inbox: Path, files: int, size: int) -> None:
    """Sparse files: a unique header, then a hole up to `size` bytes."""
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        with open(inbox / f"episode-{i:05}.mp3", "wb") as fh:
            fh.write(f"episode {i} ".encode())
            fh.truncate(size)


def daemon(home: Path, registry: str, prefix: list[str] | None = None, **env: str) -> subprocess.Popen[bytes]:
    """`traxd run` on `home` with the given test registry (optionally under a wrapper such as strace)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRAX_", "OPENAI_", "DEEPSEEK_"))}
    base.update(TRAX_HOME=str(home), PYTHONPATH=str(REPO), TRAX_TEST_HANDLERS=f"benchmarks.restart_cost:{registry}", **env)
    cmd = [*(prefix or []), sys.executable, "-m", "traxd.cli.traxd_cmd", "run"]
    return subprocess.Popen(cmd, env=base, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def count(db: Path, sql: str) -> int:
    """A count read with plain sqlite3 (0 while the daemon is still creating the schema)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def wait_for(cond: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def first_ingest(home: Path, files: int) -> float:
    """Queue every file with a daemon that claims nothing; seconds it took."""
    db = home / "trax.db"
    started = time.monotonic()
    proc = daemon(home, "empty_registry")
    try:
        wait_for(lambda: db.exists() and count(db, "SELECT count(*) FROM ingested_files") >= files, 3600, "ingest")
    finally:
        stop(proc)
    return time.monotonic() - started


def timed_restart(home: Path, mark: Path) -> tuple[float, float]:
    """Wall seconds from `traxd run` to its first claimed task, and the CPU seconds the daemon used until then."""
    mark.unlink(missing_ok=True)
    started = time.time()
    proc = daemon(home, "marking_registry", **{MARK_ENV: str(mark)})
    try:
        wait_for(mark.exists, 300, "the first claim")
        wait_for(lambda: len(mark.read_text().split()) == 2, 10, "the mark")
    finally:
        stop(proc)
    wall, cpu = (float(x) for x in mark.read_text().split())
    return wall - started, cpu


def traced_restart(home: Path, mark: Path, changed: Path, files: int) -> list[str]:
    """The inbox files a restarted daemon opens (strace -f -e openat), after it queued the changed file."""
    if shutil.which("strace") is None:
        raise SystemExit("strace is not installed")
    trace = home.parent / "restart.strace"
    mark.unlink(missing_ok=True)
    proc = daemon(home, "empty_registry", ["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace)])
    db = home / "trax.db"
    try:
        wait_for(lambda: count(db, "SELECT count(*) FROM jobs") > files, 600, "the changed file to be queued")
        time.sleep(5)  # time to open anything else it would
    finally:
        for child in psutil.Process(proc.pid).children():  # strace does not pass SIGTERM on: stop traxd itself
            child.send_signal(signal.SIGTERM)
        proc.wait(120)
    inbox = str(home / "inbox")
    return sorted({line.split('"')[1] for line in trace.read_text().splitlines() if f'"{inbox}/' in line})


def main() -> None:
    """Build the inbox, ingest it once, restart, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size-mb", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        make_inbox(home / "inbox", args.files, int(args.size_mb * 1e6))
        apparent = args.files * args.size_mb / 1000
        took = first_ingest(home, args.files)
        print(f"first ingest of {args.files} files ({apparent:.1f} GB sparse): {took:.1f} s")
        claims = [timed_restart(home, Path(tmp) / "claimed") for _ in range(3)]
        print("restart -> first claimed task: " + ", ".join(f"{w:.2f} s wall ({c:.2f} s CPU)" for w, c in claims)
              + " (goal < 2 s)")  # fmt: skip
        changed = home / "inbox" / "episode-00007.mp3"
        with open(changed, "r+b") as fh:
            fh.write(b"rewritten while the daemon was down")
        opened = traced_restart(home, Path(tmp) / "claimed", changed, args.files)
        print(f"inbox files opened by the restarted daemon: {[Path(p).name for p in opened]} "
              f"(goal: only {changed.name}, which is queued again)")  # fmt: skip
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared with other jobs)")


if __name__ == "__main__":
    main()
