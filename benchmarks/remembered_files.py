"""Restart with 50,000 remembered inbox files: time `Watcher.load_remembered` (read the list, check each file is
still there and its outbox unchanged), the step a daemon start runs before its first scan.

Files are real (empty, in 50 subfolders of one inbox, as a big voice-memo archive would be) and remembered with their
stamps in a fresh SQLite home, as an earlier run leaves them. Prints the median of `--repeat` loads and where the
time goes (the database read, the rest).

    uv run python -m benchmarks.remembered_files [--files 50000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from traxd.config import WatchFolder
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.ingest.enqueue import Ingestor
from traxd.ingest.watcher import Watcher
from traxd.queue.store import Store
from traxd.types import IngestedFile


def fill(root: Path, files: int) -> tuple[Store, WatchFolder]:
    """An inbox of `files` empty files in 50 subfolders, every one remembered as queued."""
    folder = WatchFolder(root / "inbox", root / "outbox")
    remembered = []
    for i in range(files):
        path = folder.inbox / f"day-{i % 50:02}" / f"memo-{i:06}.m4a"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        st = path.stat()
        remembered.append(IngestedFile("", str(path), str(folder.outbox), st.st_size, st.st_mtime_ns, st.st_ino))
    folder.outbox.mkdir()
    engine = open_engine(f"sqlite:///{root / 'trax.db'}")
    upgrade(engine)
    store = Store(engine)
    store.remember_files(remembered)
    return store, folder


def main() -> None:
    """Fill, then time the loads."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store, folder = fill(Path(tmp), args.files)
        loads, reads = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            store.ingested_files("")
            reads.append(time.perf_counter() - t0)
            watcher = Watcher([folder], Ingestor(store))
            t0 = time.perf_counter()
            loaded = watcher.load_remembered()
            loads.append(time.perf_counter() - t0)
            assert loaded == args.files, loaded
        store.engine.dispose()
    print(f"load_remembered of {args.files:,} files: median {statistics.median(loads):.3f} s "
          f"(min {min(loads):.3f} s), of which the database read {statistics.median(reads):.3f} s; goal ≤ 1 s; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} shared cores")  # fmt: skip


if __name__ == "__main__":
    main()
