"""The dashboard over real HTTP on loopback: pages, /api, /metrics, escaping, CSRF, the token, no traversal.

A real uvicorn server on a free port, a real database (SQLite, and PostgreSQL when given), httpx as the client.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from traxd.access import is_loopback
from traxd.clock import FakeClock
from traxd.config import load_settings
from traxd.daemon.jobcontrol import JobControl
from traxd.dashboard.server import check_binding, dashboard_for, make_server
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.errors import PermanentError, UsageError, classify
from traxd.outputs import index_entry
from traxd.queue.store import Store
from traxd.queue.transitions import (
    WORKER_LOST,
    RetryPolicy,
    decide_failure,
    decide_rescue,
)
from traxd.types import ControlState, NewJob, NewTask, TaskState, TaskType

HOSTILE = "<img src=x onerror=alert(1)>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A dashboard served on loopback in this process, with its store and the seeded job ids."""

    def __init__(self, store: Store, tmp: Path, token: str | None = None) -> None:
        self.store, self.tmp = store, tmp
        settings = load_settings({"home": str(tmp / "home")})
        self.dash = dashboard_for(settings, store, token, JobControl(store, settings.tmp_dir))
        self.port = free_port()
        self.server = make_server(self.dash, "127.0.0.1", self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "dashboard did not start"
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{self.port}"
        self.ids: dict[str, int] = {}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.base + path, timeout=30, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def seed(store: Store, tmp: Path) -> dict[str, int]:
    """A done job with a transcript (hostile name), a failed one (HTTP 401), a rescued one, a queued one."""
    inbox, outbox = tmp / "inbox", tmp / "outbox"
    inbox.mkdir()
    outbox.mkdir()
    src = inbox / f"{HOSTILE}.wav"
    with wave.open(str(src), "wb") as w:  # three seconds of silence the browser can play
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 24000)
    job, _, _ = store.create_job(NewJob(str(src), src.stem, str(outbox)),
                                        [NewTask(TaskType.PREPROCESS, {"path": str(src)}, dedupe_key="a")])  # fmt: skip
    (t,) = store.claim("me", 1, 60)
    assert store.complete(t.lease, {"duration": 5.0}, [NewTask(TaskType.TRANSCRIBE, {"path": str(src)})])
    (t,) = store.claim("me", 1, 60)
    doc = outbox / "talk.json"
    doc.write_text(json.dumps({"segments": [{"start": 1.5, "end": 3.0, "text": f"said {HOSTILE}"}]}))
    (tmp / "secret.txt").write_text("not yours")
    outputs = {"json": str(doc), "escape": str(tmp / "secret.txt"), "dots": str(outbox / ".." / "secret.txt")}
    assert store.complete(t.lease, {"duration": 5.0, "outputs": outputs})
    entry = index_entry({"name": HOSTILE, "source": str(src), "duration": 5.0, "segments": json.loads(doc.read_text())["segments"]}, doc)
    store.index_transcript(entry, job.id)
    bad, _, _ = store.create_job(NewJob("https://x.org/a.mp3", "refused"), [NewTask(TaskType.DOWNLOAD, {}, dedupe_key="b")])
    (t,) = store.claim("me", 1, 60)
    refused = classify(PermanentError("the server refused the credentials (HTTP 401)", http_status=401))
    assert store.apply(t.lease, decide_failure(t, refused, store.clock.now(), RetryPolicy(), random.Random()))
    lost, _, _ = store.create_job(NewJob("/gone/b.wav", "rescued"), [NewTask(TaskType.PREPROCESS, {}, dedupe_key="c")])
    (t,) = store.claim("dead:1:1.00", 1, 60)
    assert store.rescue(t.lease, decide_rescue(t, store.clock.now(), "the worker vanished"))
    waiting, _, _ = store.create_job(NewJob("/in/c.wav", "waiting"), [NewTask(TaskType.PREPROCESS, {}, dedupe_key="d")])
    return {"done": job.id, "failed": bad.id, "rescued": lost.id, "waiting": waiting.id}


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    engine = open_engine(db_url)
    upgrade(engine)
    store = Store(engine, FakeClock(time.time() - 120))
    ids = seed(store, tmp_path)
    srv = Served(store, tmp_path)
    srv.ids = ids
    yield srv
    srv.stop()
    engine.dispose()


def test_pages_render_and_names_are_text(served: Served) -> None:
    for path in ("/", "/jobs", "/jobs?state=failed", f"/jobs/{served.ids['done']}", "/failed", "/daemons"):
        r = served.get(path)
        assert r.status_code == 200, path
        assert HOSTILE not in r.text, path  # never raw markup
        assert "Content-Security-Policy" in r.headers
    page = served.get(f"/jobs/{served.ids['done']}").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and 'data-t="1.5"' in page and "0:01" in page
    assert served.get("/jobs/999999").status_code == 404


def test_search_over_transcripts(served: Served) -> None:
    page = served.get("/search", params={"q": "said"}).text
    assert HOSTILE not in page and "<mark>said</mark>" in page and f'href="/jobs/{served.ids["done"]}"' in page
    hits = served.get("/api/search", params={"q": "said"}).json()["hits"]
    assert [(h["job_id"], h["start"]) for h in hits] == [(served.ids["done"], 1.5)]
    bad = served.get("/api/search", params={"q": '"unclosed'})
    assert bad.status_code == 400 and bad.json()["error"]


def test_api_counts_filters_and_pages(served: Served) -> None:
    summary = served.get("/api/summary").json()
    assert summary["jobs"] == {"queued": 2, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0}
    assert len(summary["throughput"]) == 60 and sum(p["succeeded"] for p in summary["throughput"]) >= 2
    failed = served.get("/api/jobs", params={"state": "failed"}).json()["jobs"]
    assert [j["id"] for j in failed] == [served.ids["failed"]]
    downloads = served.get("/api/jobs", params={"type": "download"}).json()["jobs"]
    assert [j["id"] for j in downloads] == [served.ids["failed"]]
    inbox = served.get("/api/jobs", params={"inbox": str(served.tmp / "inbox")}).json()["jobs"]
    assert [j["name"] for j in inbox] == [HOSTILE]
    everything = served.get("/api/jobs").json()
    assert [j["id"] for j in everything["jobs"]] == sorted(served.ids.values(), reverse=True)
    older = served.get("/api/jobs", params={"before": served.ids["failed"]}).json()["jobs"]
    assert [j["id"] for j in older] == [served.ids["done"]]
    job = served.get(f"/api/jobs/{served.ids['done']}").json()
    assert [t["type"] for t in job["tasks"]] == ["preprocess", "transcribe"] and job["outputs"] == ["json"]
    assert served.get("/api/failed").json()["jobs"][0]["reason"].endswith("(HTTP 401)")
    assert served.get("/api/daemons").json() == {"daemons": [], "unowned_leases": []}


def test_outputs_only_from_their_outbox(served: Served) -> None:
    done = served.ids["done"]
    assert served.get(f"/jobs/{done}/outputs/json").json()["segments"][0]["start"] == 1.5
    for kind in ("escape", "dots", "..%2F..%2Fsecret.txt", "missing"):
        r = served.get(f"/jobs/{done}/outputs/{kind}")
        assert r.status_code == 404 and "not yours" not in r.text
    assert served.get("/static/..%2Fapp.py").status_code == 404
    media = served.get(f"/jobs/{done}/media", headers={"Range": "bytes=0-3"})
    assert media.status_code == 206 and media.content == b"RIFF"
    assert served.get(f"/jobs/{served.ids['failed']}/media").status_code == 404


def test_state_changes_need_the_csrf_token(served: Served) -> None:
    failed = served.ids["failed"]
    assert served.post(f"/actions/jobs/{failed}/retry").status_code == 403
    assert served.post(f"/actions/jobs/{failed}/retry", data={"csrf": "guess"}).status_code == 403
    assert served.post("/actions/pause", data={"csrf": "guess", "scope": "*"}).status_code == 403
    assert served.store.tasks_of_job(failed)[0].state is TaskState.FAILED and "*" not in served.store.controls()
    r = served.post(f"/actions/jobs/{failed}/retry", data={"csrf": served.dash.csrf, "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert served.store.tasks_of_job(failed)[0].state is TaskState.QUEUED
    ok = served.post(f"/actions/jobs/{failed}/cancel", headers={"X-CSRF-Token": served.dash.csrf,
                                                               "Accept": "application/json"})  # fmt: skip
    assert ok.json()["tasks"] == 1 and served.store.tasks_of_job(failed)[0].state is TaskState.CANCELLED
    served.post("/actions/pause", data={"csrf": served.dash.csrf, "scope": "transcribe"})
    assert served.store.controls()["transcribe"].state is ControlState.PAUSED
    assert "Resume transcribe" in served.get("/").text
    served.post("/actions/pause", data={"csrf": served.dash.csrf, "scope": "*"})
    assert served.store.controls()["*"].state is ControlState.PAUSED
    served.post("/actions/resume", data={"csrf": served.dash.csrf, "scope": "*"})
    assert served.store.controls()["*"].state is ControlState.RUNNING and "transcribe" not in served.store.controls()
    assert served.post("/actions/pause", data={"csrf": served.dash.csrf, "scope": "bogus"}).status_code == 404


def test_other_host_names_are_refused_without_a_token(served: Served) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 gets nothing, not even the CSRF token."""
    r = served.get("/", headers={"Host": f"evil.example:{served.port}"})
    assert r.status_code == 400 and served.dash.csrf not in r.text
    assert served.get("/", headers={"Host": f"localhost:{served.port}"}).status_code == 200


def test_traxctl_dashboard_refuses_a_short_token_beyond_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from traxd.cli.traxctl_cmd import app

    monkeypatch.setenv("TRAX_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0", "--token", "short"])
    assert result.exit_code == 2 and "at least 16 characters" in result.output and "Traceback" not in result.output


def test_metrics_in_prometheus_text(served: Served) -> None:
    served.get("/jobs/999999")
    text = served.get("/metrics").text
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip
    assert samples[("trax_tasks", (("state", "succeeded"), ("type", "transcribe")))] == 1
    assert samples[("trax_tasks", (("state", "queued"), ("type", "preprocess")))] == 2
    assert samples[("trax_jobs", (("state", "failed"),))] == 1
    assert samples[("trax_tasks_finished_total", (("state", "failed"), ("type", "download")))] == 1
    assert samples[("trax_lease_rescues_total", ())] == 1
    assert samples[("trax_task_errors_total", (("error", WORKER_LOST),))] == 1
    assert samples[("trax_api_errors_total", (("status", "401"),))] == 1
    assert samples[("trax_dashboard_errors_total", (("status", "404"),))] >= 1
    assert samples[("trax_audio_seconds_total", ())] == 5.0


def test_a_token_guards_every_request(db_url: str, tmp_path: Path) -> None:
    engine = open_engine(db_url)
    upgrade(engine)
    srv = Served(Store(engine), tmp_path, token="t" * 24)
    try:
        for path in ("/", "/api/summary", "/metrics", "/static/app.js"):
            assert srv.get(path).status_code == 401
        assert srv.get("/api/summary", params={"token": "wrong"}).status_code == 401
        first = srv.get("/", params={"token": "t" * 24})
        assert first.status_code == 200 and first.cookies.get("trax_token") == "t" * 24
        assert srv.get("/api/summary", cookies={"trax_token": "t" * 24}).status_code == 200
        assert srv.get("/metrics", headers={"Authorization": "Bearer " + "t" * 24}).status_code == 200
    finally:
        srv.stop()
        engine.dispose()


def test_binding_beyond_loopback_needs_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert check_binding("127.0.0.1", None) is None
    made = check_binding("0.0.0.0", None)
    assert made is not None and len(made) >= 16
    assert check_binding("0.0.0.0", "x" * 20) == "x" * 20
    with pytest.raises(UsageError, match="at least 16"):
        check_binding("0.0.0.0", "short")


def test_the_dashboard_retries_and_cancels_jobs_as_traxctl_does(served: Served, tmp_path: Path) -> None:
    """Cancel removes the ended job's scratch folder (as `traxctl cancel`); a job's retry is one transaction."""
    waiting = served.ids["waiting"]
    scratch = tmp_path / "home" / "tmp" / f"job-{waiting}"
    scratch.mkdir(parents=True)
    (scratch / "chunk-000.opus").write_bytes(b"paid for once")
    json_post = {"X-CSRF-Token": served.dash.csrf, "Accept": "application/json"}
    assert served.post(f"/actions/jobs/{waiting}/cancel", headers=json_post).json()["tasks"] == 1
    assert not scratch.exists()
    pair, _, _ = served.store.create_job(NewJob("/in/pair.wav", "pair"), [
        NewTask(TaskType.PREPROCESS, {}, dedupe_key="p1"), NewTask(TaskType.PREPROCESS, {}, dedupe_key="p2")])  # fmt: skip
    for task in served.store.tasks_of_job(pair.id):
        assert served.store.cancel(task.id)
    opened: list[bool] = []
    open_tx = served.store._tx
    served.store._tx = lambda paid=False: (opened.append(paid), open_tx(paid))[1]  # type: ignore[method-assign]
    assert served.post(f"/actions/jobs/{pair.id}/retry", headers=json_post).json()["tasks"] == 2
    assert len(opened) == 1  # both tasks back in the queue together, or neither
    assert {t.state for t in served.store.tasks_of_job(pair.id)} == {TaskState.QUEUED}
