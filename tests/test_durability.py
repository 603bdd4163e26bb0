"""Paid results reach the disk before the next paid request; the queue's own bookkeeping is not synced one by one.

The system-call test runs a real `traxd run --drain` under strace against the loopback fake API (transcription,
enhancement, translation and summary) and reads the order of events from the trace: each 200 reply received, the
WAL synced, the next paid request sent.
"""

from __future__ import annotations

import codecs
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine

from tests.daemon_helpers import REPO, home_env
from tests.fakes import media
from tests.fakes.context import Ctx
from tests.fakes.openai_server import FakeOpenAI
from tests.test_download import make_ctx, make_settings
from tests.test_enhance import KEY as ENHANCE_KEY
from tests.test_enhance import write_transcript
from traxd import outputs
from traxd.config import load_settings
from traxd.db.engine import open_engine, paid_transaction
from traxd.errors import RetryableError
from traxd.handlers.diarize import diarize
from traxd.handlers.enhance import handle_enhance
from traxd.handlers.registry import TaskContext
from traxd.queue.store import Store
from traxd.speakers import Diarization, Turn
from traxd.types import PAID_KEY, NewTask, TaskType

LEVEL = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
PAID_PATHS = ("POST /v1/audio/transcriptions ", "POST /v1/chat/completions ")


def pragmas(engine: Engine, paid: bool) -> tuple[str, int, int]:
    """(synchronous, fullfsync, checkpoint_fullfsync) of a connection, inside a paid transaction or after one."""
    with engine.connect() as conn:
        if paid:
            with paid_transaction(conn):
                return _read_pragmas(conn)
        return _read_pragmas(conn)


def _read_pragmas(conn: Connection) -> tuple[str, int, int]:
    raw = conn.connection.dbapi_connection
    sync, full, ckpt = (raw.execute(f"PRAGMA {p}").fetchone()[0] for p in ("synchronous", "fullfsync", "checkpoint_fullfsync"))
    return LEVEL[sync], full, ckpt


@pytest.mark.parametrize(
    ("floor", "full_fsync", "inside", "after"),
    [
        ("NORMAL", False, ("FULL", 0, 0), ("NORMAL", 0, 0)),
        ("OFF", False, ("FULL", 0, 0), ("OFF", 0, 0)),  # the floor never weakens a paid commit
        ("EXTRA", False, ("EXTRA", 0, 0), ("EXTRA", 0, 0)),  # nor does a paid commit weaken the floor
        ("NORMAL", True, ("FULL", 1, 1), ("NORMAL", 0, 1)),  # macOS: F_FULLFSYNC for it and for checkpoints
        ("FULL", True, ("FULL", 1, 1), ("FULL", 1, 1)),
    ],
)
def test_a_paid_transaction_syncs_and_the_connection_returns_to_the_floor(
    tmp_path: Path, floor: str, full_fsync: bool, inside: tuple[str, int, int], after: tuple[str, int, int]
) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'trax.db'}", synchronous=floor, pool_size=1, full_fsync=full_fsync)
    try:
        assert pragmas(engine, paid=False) == after
        assert pragmas(engine, paid=True) == inside
        assert pragmas(engine, paid=False) == after  # the same pooled connection, back on the floor
    finally:
        engine.dispose()


def test_paid_checkpoint_is_stored_and_guarded_like_any_checkpoint(store: Store) -> None:
    store.enqueue(NewTask(TaskType.TRANSCRIBE, {}))
    (run,) = store.claim("me", 1, 30)
    assert store.checkpoint(run.lease, {"done": {"0": "paid"}}, paid=True)
    assert store.get(run.id).result == {"done": {"0": "paid"}, PAID_KEY: 1}  # type: ignore[union-attr]
    stale = run.lease.__class__(run.id, "someone-else", run.attempts)
    assert not store.checkpoint(stale, {"done": {}}, paid=True)
    assert store.get(run.id).result == {"done": {"0": "paid"}, PAID_KEY: 1}  # type: ignore[union-attr]


def test_postgresql_paid_commit_is_durable_even_where_synchronous_commit_is_off(pg_url: str) -> None:
    engine = open_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"  # PostgreSQL's default
            conn.exec_driver_sql("SET synchronous_commit TO off")  # a server or role tuned for speed
            conn.commit()
            with paid_transaction(conn):
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"  # only that transaction
            conn.exec_driver_sql("SET synchronous_commit TO remote_apply")
            conn.commit()
            with paid_transaction(conn):  # never lowered
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "remote_apply"
            conn.rollback()
    finally:
        engine.dispose()


# -- the system-call tests --------------------------------------------------------------------------------------
needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (Debian package; .ci/run installs it)")

# Queue bookkeeping on the home's database as the daemon opens it (TRAX_SYNCHRONOUS from the environment):
# 20 enqueues, claims, heartbeats and completions, and 3 paid checkpoints.
BOOKKEEPING = """
import sys
from traxd.config import load_settings
from traxd.database import open_store
from traxd.types import NewTask, TaskType, WorkerInfo
store = open_store(load_settings({}))
for i in range(20):
    store.enqueue(NewTask(TaskType.TRANSCRIBE, {"i": i}))
    (run,) = store.claim("me", 1, 30)
    if i % 7 == 0:
        assert store.checkpoint(run.lease, {"done": {"0": "paid"}}, paid=True)
    store.heartbeat(WorkerInfo("me", "host", 1, 0.0, float(i), 1, 10.0, 1.0, 1))
    assert store.complete(run.lease, None)
store.engine.dispose()
"""


@needs_strace
@pytest.mark.parametrize("floor", ["NORMAL", "FULL"])
def test_trax_synchronous_is_the_floor_for_every_commit(tmp_path: Path, floor: str) -> None:
    trace = tmp_path / "strace.txt"
    env = home_env(tmp_path / "home", handlers=None, TRAX_SYNCHRONOUS=floor)
    cmd = ["strace", "-f", "-yy", "-s", "64", "-o", str(trace), "-e", "trace=fsync,fdatasync,fcntl,pwrite64",
           sys.executable, "-c", BOOKKEEPING]  # fmt: skip
    proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with trace.open(encoding="utf-8", errors="replace") as lines:
        kinds = [e.kind for e in trace_events(lines, api_port=0)]
    commits, syncs = kinds.count("wal_commit"), kinds.count("wal_sync")
    assert commits >= 80  # 20 x (enqueue, claim, heartbeat, completion) + 3 paid checkpoints
    if floor == "NORMAL":
        assert syncs <= 3 + 3  # the paid checkpoints, the WAL's creation and the checkpoint at exit (5 here)
    else:
        assert syncs >= commits  # every commit synced


@dataclass(frozen=True)
class Event:
    """One traced system call that matters here."""

    kind: str  # request | reply | wal_sync | wal_commit
    tid: int


_CALL = re.compile(r"^(\d+)\s+(\w+)\((\d+)<(\w+:\[[^\]]*\]|[^>]*)>(.*)$")  # a socket's "<TCP:[a->b]>" has a ">"
_BUFFER = re.compile(r'^,\s*"((?:[^"\\]|\\.)*)"')


def trace_events(lines: Iterator[str], api_port: int) -> list[Event]:
    """Paid requests and replies on the API's socket, WAL syncs and WAL commit frames, in the order they happened.

    A request counts from its entry (the part before `<unfinished ...>`); a reply and a sync from their return.
    """
    pending: dict[int, str] = {}
    events: list[Event] = []
    for line in lines:
        line = line.rstrip("\n")
        tid = int(line.split(maxsplit=1)[0]) if line[:1].isdigit() else 0
        if line.endswith("<unfinished ...>"):
            pending[tid] = line[: -len("<unfinished ...>")]
            if " sendto(" in line:
                events += _classify(pending[tid], api_port)
            continue
        resumed = re.match(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$", line)
        if resumed:
            start = pending.pop(tid, "")
            if resumed.group(2) != "sendto" and start:
                events += _classify(start + resumed.group(3), api_port)
            continue
        events += _classify(line, api_port)
    return events


def _classify(line: str, api_port: int) -> list[Event]:
    m = _CALL.match(line)
    if not m:
        return []
    tid, call, path, rest = int(m.group(1)), m.group(2), m.group(4), m.group(5)
    buf = _BUFFER.match(rest)
    data = codecs.escape_decode(buf.group(1).encode())[0] if buf else b""
    on_api = path.startswith("TCP:[") and path.endswith(f"->127.0.0.1:{api_port}]")
    if on_api and call == "sendto" and data.decode("latin-1").startswith(PAID_PATHS):
        return [Event("request", tid)]
    if on_api and call == "recvfrom" and data.startswith(b"HTTP/1.1 200 "):
        return [Event("reply", tid)]
    if path.endswith("-wal") and (call in ("fsync", "fdatasync") or (call == "fcntl" and "F_FULLFSYNC" in rest)):
        return [Event("wal_sync", tid)]
    if path.endswith("-wal") and call == "pwrite64" and ", 24, " in rest and data[4:8] != b"\0\0\0\0":
        return [Event("wal_commit", tid)]  # a WAL frame header whose "database size" is set ends a transaction
    return []


def unsynced_replies(events: list[Event]) -> list[int]:
    """Indexes of paid replies after which the next paid request (or the end) came before any WAL sync."""
    bad = []
    replies = [i for i, e in enumerate(events) if e.kind == "reply"]
    for n, i in enumerate(replies):
        until = next((j for j in range(i + 1, len(events)) if events[j].kind == "request"), len(events))
        if not any(e.kind == "wal_sync" for e in events[i + 1 : until]):
            bad.append(n)
    return bad


@needs_strace
def test_every_paid_reply_is_on_disk_before_the_next_paid_request_and_bookkeeping_is_not_synced(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    media.tones_with_gaps(home / "inbox" / "talk.mp3", [3.0, 3.0, 3.0], 0.6)  # three chunks, then the LLM stages
    trace = tmp_path / "strace.txt"
    with FakeOpenAI(latency=0.3, transcribe=media.media_transcription) as server:
        env = home_env(home, handlers=None, OPENAI_API_KEY="sk-test-durable", OPENAI_BASE_URL=server.base_url,
                       DEEPSEEK_API_KEY="sk-test-durable", DEEPSEEK_BASE_URL=server.base_url, TRAX_ENHANCE="1",
                       TRAX_ENHANCE_CHUNK_CHARS="60", TRAX_TRANSLATE_TO="fr", TRAX_SUMMARIZE="1", TRAX_WORKERS="1",
                       TRAX_CHUNK_SIZE="4", TRAX_LEASE_SECONDS="3")  # fmt: skip
        cmd = ["strace", "-f", "-yy", "-s", "64", "-o", str(trace),
               "-e", "trace=fsync,fdatasync,fcntl,pwrite64,sendto,recvfrom",
               sys.executable, "-m", "traxd.cli.traxd_cmd", "run", "--drain"]  # fmt: skip
        proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        paid = [c for c in server.calls() if c.status == 200]
        port = int(server.base_url.split(":")[2].split("/")[0])
    with trace.open(encoding="utf-8", errors="replace") as lines:
        events = trace_events(lines, port)
    kinds = [e.kind for e in events]
    transcriptions = sum(1 for c in paid if c.path.endswith("/audio/transcriptions"))
    assert transcriptions == 3 and len(paid) >= transcriptions + 4  # chunks; enhancement, translation, summary
    made = {p.name for p in (home / "outbox").iterdir()}
    assert {"talk.enhanced.txt", "talk.fr.txt", "talk.summary.md"} <= made  # every paid stage ran
    assert kinds.count("request") == kinds.count("reply") == len(paid)
    assert unsynced_replies(events) == []
    # The WAL is synced for the paid checkpoints only (plus its creation and the final checkpoint at exit):
    # claims, completions, enqueues and heartbeats commit without a sync of their own.
    assert kinds.count("wal_sync") <= len(paid) + 2
    assert kinds.count("wal_commit") >= len(paid) + 8


# -- every stage stores what it paid for (money or minutes of compute) with a paid checkpoint -----------------


class OneSpeaker:
    """A diarizer that hears one speaker over the first second (stands in for minutes of local compute)."""

    name = "fake"

    def diarize(self, wav: Path, **_counts: int | None) -> Diarization:
        return Diarization([Turn(0.0, 1.0, "SPEAKER_00")], {})


def test_a_diarization_result_is_stored_by_a_paid_checkpoint(tmp_path: Path) -> None:
    audio = media.tone(tmp_path / "talk.wav", 1.0)
    folder = tmp_path / "out"
    folder.mkdir()
    doc = {"name": "talk", "source": str(audio), "text": "hello there", "model": "whisper-1", "backend": "openai",
           "segments": [{"start": 0.0, "end": 1.0, "text": "hello there"}]}  # fmt: skip
    paths = outputs.write_transcript(folder, "talk", doc)
    ctx = Ctx(load_settings({"home": tmp_path / "home"}, env={}))
    diarize(ctx.make({"path": str(audio)}), {"outputs": paths, "media": str(audio)}, OneSpeaker)
    assert ctx.saved is not None and ctx.saved["turns"] == [[0.0, 1.0, "A"]]
    assert ctx.paid == [True]


def test_enhancement_stops_paying_once_its_lease_is_lost(tmp_path: Path) -> None:
    text = "\n\n".join(f"paragraph {i} has a few words in it" for i in range(4))
    with FakeOpenAI(api_key=ENHANCE_KEY) as server:
        s = make_settings(tmp_path, deepseek_base_url=server.base_url, deepseek_api_key=ENHANCE_KEY,
                          enhance_chunk_chars=40)  # fmt: skip
        payload = write_transcript(tmp_path / "out", text)
        ctx = make_ctx(s, payload)
        lost = TaskContext(task=ctx.task, job=ctx.job, settings=s, work_dir=ctx.work_dir,
                           checkpoint=lambda _data, **_: False)  # another worker owns the task now
        with pytest.raises(RetryableError, match="lost the lease"):
            handle_enhance(lost, payload)
        assert len(server.calls("/chat/completions")) == 1  # not one request more
