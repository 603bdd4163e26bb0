"""Dashboard pages with 100,000 jobs in the database: render time of every page, fragment and API call.

Goal (issue 14): every page ≤ 200 ms. The jobs are bulk-inserted with plain sqlite3 (two tasks each: mostly
succeeded, some failed, cancelled, queued and running); the dashboard is served by uvicorn on loopback in this
process and timed over HTTP with httpx.

    uv run python -m benchmarks.dashboard_scale [--jobs 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

STATES = ["succeeded"] * 90 + ["failed"] * 4 + ["cancelled"] * 2 + ["queued"] * 4
RUNNING_EVERY = 12_500  # 8 running jobs in 100,000: as many as a daemon's slots


def fill(db: Path, jobs: int, inbox: str) -> None:
    """Insert `jobs` jobs with a preprocess and a transcribe task each, spread over the last day."""
    now = time.time()
    conn = sqlite3.connect(db)
    job_rows, task_rows = [], []
    for i in range(1, jobs + 1):
        created = now - 86_400 + 86_400 * i / jobs
        job_rows.append((i, f"{inbox}/clip-{i:06}.wav", f"clip-{i:06}", "/tmp/outbox", "daemon", "{}", created))
        state = "running" if i % RUNNING_EVERY == 0 else STATES[i % len(STATES)]
        first = "succeeded" if state in ("succeeded", "failed", "running") else state
        task_rows.append(_task(2 * i - 1, i, "preprocess", first, created, {"duration": 60.0}))
        if state in ("succeeded", "failed", "running"):
            task_rows.append(_task(2 * i, i, "transcribe", state, created + 1, {"duration": 60.0}))
    conn.executemany("INSERT INTO jobs (id, source, name, output_dir, group_name, options, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", job_rows)  # fmt: skip
    conn.executemany("INSERT INTO tasks (id, job_id, type, payload, state, priority, attempts, max_retries, run_after, "
                     "lease_owner, lease_expires_at, error_kind, error_message, errors, result, created_at, updated_at, "
                     "started_at, finished_at) VALUES (?, ?, ?, '{}', ?, 6, 1, 3, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     task_rows)  # fmt: skip
    conn.commit()
    conn.close()


def _task(tid: int, job: int, kind: str, state: str, at: float, result: dict) -> tuple:
    failed = state == "failed"
    errors = json.dumps([{"at": at, "attempt": 1, "kind": "permanent", "type": "PermanentError",
                          "message": "server said no (HTTP 400)"}] if failed else [])  # fmt: skip
    done = state in ("succeeded", "failed", "cancelled")
    return (tid, job, kind, state, at, "bench:1:1.00" if state == "running" else None,
            at + 600 if state == "running" else None, "permanent" if failed else None,
            "server said no (HTTP 400)" if failed else None, errors, json.dumps(result) if state == "succeeded" else None,
            at, at, at if state != "queued" else None, at + 1 if done else None)  # fmt: skip


def main() -> None:
    """Build the database, serve the dashboard, time every page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRAX_HOME"] = str(Path(tmp) / "home")
        from benchmarks.ingest_latency import REPO  # noqa: F401 - the repo on sys.path
        from traxd.config import load_settings
        from traxd.daemon.jobcontrol import JobControl
        from traxd.dashboard.server import dashboard_for, make_server
        from traxd.database import open_store

        settings = load_settings()
        store = open_store(settings)
        inbox = str(Path(tmp) / "inbox")
        started = time.perf_counter()
        fill(Path(tmp) / "home" / "trax.db", args.jobs, inbox)
        print(f"{args.jobs:,} jobs inserted in {time.perf_counter() - started:.1f}s")
        dash = dashboard_for(settings, store, None, JobControl(store, settings.tmp_dir))
        dash.summary_ttl = dash.metrics_ttl = 0.0  # every request computes its figures: the worst case
        server = make_server(dash, "127.0.0.1", 0)
        server.config.port = _free_port()
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{server.config.port}"
        paths = ["/", "/jobs", "/jobs?state=failed", "/jobs?state=succeeded", "/jobs?state=queued",
                 "/jobs?state=running", "/jobs?state=cancelled", "/jobs?type=transcribe", f"/jobs?inbox={inbox}",
                 f"/jobs?before={args.jobs // 2}", f"/jobs/{args.jobs - 100}", "/failed", "/daemons",
                 "/search?q=hello", "/frag/summary", "/frag/jobs", "/api/summary", "/api/jobs?state=failed",
                 "/metrics"]  # fmt: skip
        worst = 0.0
        with httpx.Client(base_url=base, timeout=60) as client:
            for path in paths:
                client.get(path)  # templates compiled, connection pooled
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    r = client.get(path)
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, (path, r.status_code)
                med = statistics.median(times)
                worst = max(worst, med)
                print(f"  {path:<40} median {med * 1000:7.1f} ms   max {max(times) * 1000:7.1f} ms")
        server.should_exit = True
        print(f"slowest page median {worst * 1000:.1f} ms (goal ≤ 200 ms); machine: {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.2f} (shared with other jobs)")  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
