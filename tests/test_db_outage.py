"""A paid result outlives a database outage: real pool processes pay the loopback fake API while the database
blinks (a PostgreSQL fast restart, a minute-long stop, a kill -9 during the outage, SQLite's write lock held past
the busy timeout, SQLite's disk full), and no chunk is ever uploaded twice.

Every upload is named after its task and chunk, so the fake server counts what was paid for, per input.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.test_disk_full import fill, mount_small_fs
from tests.test_pg_cluster import (
    PG_SH,
    kill_all,
    migrated,
    own_pg,
    stop_all,
    wait_until,
)
from traxd.queue.store import Store
from traxd.types import NewTask, TaskType

__all__ = ["own_pg"]  # the throwaway cluster fixture, shared with test_pg_cluster (we stop and restart it)

ROOT = Path(__file__).resolve().parent.parent
POOLS, SLOTS, CHUNKS = 3, 4, 3
OUTAGE_SECONDS = 60.0  # the scenario, as it is: longer than every lease, so they all run out


# -- helpers -----------------------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def start_child(url: str, spool: Path, api: str, slots: int, *options: str) -> subprocess.Popen[str]:
    """One pool process paying the fake API (its log goes to SPOOL.log: a pipe nobody reads could fill up)."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    log = open(f"{spool}.log", "a")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "tests.workers.paid_child", url, str(spool), api, str(slots),
                             *options], cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip


def said(spool: Path, event: str) -> list[dict[str, object]]:
    """The JSON log lines of one child (all its runs) with this event."""
    path = Path(f"{spool}.log")
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for line in lines if line.startswith("{") and (e := json.loads(line)).get("event") == event]


def spooled(*spools: Path) -> list[Path]:
    return [p for s in spools if s.is_dir() for p in s.glob("task-*.json")]


def uploads(server: FakeOpenAI) -> collections.Counter[str]:
    """How many times each (task, chunk) was paid for."""
    return collections.Counter(r.file_name or "" for r in server.calls("/audio/transcriptions"))


def enqueue(store: Store, inputs: int, chunks: int = CHUNKS) -> list[int]:
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"chunks": chunks, "i": i}) for i in range(inputs)])
    return sorted(t.id for t in store.list_tasks(limit=inputs + 10))


def assert_paid_once(server: FakeOpenAI, task_ids: list[int], chunks: int = CHUNKS) -> None:
    """Every chunk of every input uploaded exactly once: none lost, none paid twice."""
    paid = uploads(server)
    twice = {name: n for name, n in paid.items() if n > 1}
    assert not twice, f"paid twice: {twice}"
    assert set(paid) == {f"task{t}-chunk{c}.wav" for t in task_ids for c in range(chunks)}


def pg(cmd: str, cluster: Path) -> None:
    done = subprocess.run(["bash", str(PG_SH), cmd, str(cluster)], check=False, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr


def status_line(home: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAX_HOME": str(home), "TRAX_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "traxd.cli.traxctl_cmd", "status"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def all_done(store: Store, total: int) -> bool:
    return store.counts().get("succeeded", 0) == total


def fresh_database(url: str, name: str) -> str:
    """A new empty database on the throwaway cluster (the tests of this module share the cluster, not tables)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


# -- PostgreSQL ----------------------------------------------------------------------------------------
def test_a_fast_restart_while_requests_are_open_pays_nothing_twice(
    tmp_path: Path, own_pg: tuple[str, Path], server: FakeOpenAI
) -> None:
    url, cluster = own_pg
    url = fresh_database(url, "fast_restart")
    store = migrated(url)
    ids = enqueue(store, 24)
    spools = [tmp_path / f"spool{i}" for i in range(POOLS)]
    server.hold()
    children = [start_child(url, s, server.base_url, SLOTS) for s in spools]
    try:
        wait_until("every slot's request open at the API", lambda: server.held == POOLS * SLOTS, children)
        pg("restart", cluster)  # pg_ctl restart -m fast: every connection dropped
        server.release()  # the replies come back to pools whose connections are gone
        wait_until("every input transcribed", lambda: all_done(store, len(ids)), children)
        stop_all(store, children)
    finally:
        server.release()
        kill_all(children)
    assert_paid_once(server, ids)
    assert sum(len(said(s, "paid_result_spooled")) for s in spools) >= 1, "no paid commit met the restart"
    assert not spooled(*spools), "a committed result stayed in the spool"
    store.engine.dispose()


def test_a_minute_without_postgresql_pays_nothing_twice_and_every_daemon_resumes(
    tmp_path: Path, own_pg: tuple[str, Path], server: FakeOpenAI
) -> None:
    url, cluster = own_pg
    url = fresh_database(url, "minute_down")
    store = migrated(url)
    ids = enqueue(store, 24)
    home = tmp_path / "home"
    spools = [home / "spool", tmp_path / "spool1", tmp_path / "spool2"]  # the first is the home status reads
    server.hold()
    # Leases of 10 s: the outage outlasts them all, so the rescuers meet expired leases of live daemons.
    children = [start_child(url, s, server.base_url, SLOTS, "--lease", "10") for s in spools]
    try:
        wait_until("every slot's request open at the API", lambda: server.held == POOLS * SLOTS, children)
        pg("stop", cluster)
        stopped = time.monotonic()
        server.release()
        wait_until("every paid result spooled", lambda: len(spooled(*spools)) == POOLS * SLOTS, children)
        assert not any("sk-test" in p.read_text() for p in spooled(*spools)), "a key reached the spool"
        shown = status_line(home, url)
        assert shown.returncode == 1 and shown.stderr.startswith("error: database unreachable"), shown.stderr
        assert len(shown.stderr.strip().splitlines()) == 1 and "Traceback" not in shown.stderr
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        assert all(c.poll() is None for c in children), "a daemon died during the outage"
        pg("resume", cluster)
        wait_until("every input transcribed", lambda: all_done(store, len(ids)), children)
        stop_all(store, children)
    finally:
        server.release()
        kill_all(children)
    assert_paid_once(server, ids)
    assert not spooled(*spools), "a committed result stayed in the spool"
    for s in spools:
        assert said(s, "database_unavailable") and said(s, "database_reachable_again")
        assert {e["verdict"] for e in said(s, "paid_result_committed")} == {"committed"}
    store.engine.dispose()


def test_kill_9_while_a_result_waits_in_the_spool_commits_it_at_the_next_start(
    tmp_path: Path, own_pg: tuple[str, Path], server: FakeOpenAI
) -> None:
    url, cluster = own_pg
    url = fresh_database(url, "kill_9")
    store = migrated(url)
    ids = enqueue(store, 1, chunks=2)
    spool = tmp_path / "spool"
    server.hold()
    first = start_child(url, spool, server.base_url, 1)
    second = None
    try:
        wait_until("the first chunk's request open", lambda: server.held == 1, [first])
        pg("stop", cluster)
        server.release()
        wait_until("the paid result spooled", lambda: len(spooled(spool)) == 1, [first])
        record = json.loads(spooled(spool)[0].read_text())
        assert record["data"]["done"].keys() == {"0"} and "sk-test" not in json.dumps(record)
        first.kill()  # SIGKILL, with the result only in the spool
        first.wait()
        assert first.returncode == -signal.SIGKILL
        pg("resume", cluster)
        second = start_child(url, spool, server.base_url, 1)
        wait_until("the input transcribed", lambda: all_done(store, 1), [second])
        stop_all(store, [second])
    finally:
        server.release()
        kill_all([first] + ([second] if second else []))
    assert_paid_once(server, ids, chunks=2)
    assert [e["verdict"] for e in said(spool, "spool_replayed")] == ["offered"]
    assert not spooled(spool)
    store.engine.dispose()


# -- SQLite ----------------------------------------------------------------------------------------------
def sqlite_run(tmp_path: Path, db: Path, server: FakeOpenAI, block: str) -> None:
    """Two inputs of two chunks on a real SQLite file; when both first replies arrive, the database is blocked
    (`lock`: another connection holds the write lock past the busy timeout; `full`: its disk is full)."""
    url = f"sqlite:///{db}"
    store = migrated(url)
    ids = enqueue(store, 2, chunks=2)
    home = tmp_path / "home"
    spool = home / "spool"
    server.hold()
    child = start_child(url, spool, server.base_url, 2, "--busy-ms", "300")
    try:
        wait_until("both requests open", lambda: server.held == 2, [child])
        unblock = _block(db, block)
        server.release()
        wait_until("both paid results spooled", lambda: len(spooled(spool)) == 2, [child])
        if block == "lock":  # the database can be read: status says what the daemon cannot do
            shown = status_line(home, url)
            assert "database unreachable from traxd" in shown.stdout and "2 paid result(s)" in shown.stdout, shown
        unblock()
        wait_until("both inputs transcribed", lambda: all_done(store, 2), [child])
        stop_all(store, [child])
    finally:
        server.release()
        kill_all([child])
    assert_paid_once(server, ids, chunks=2)
    assert not spooled(spool)
    store.engine.dispose()


def _block(db: Path, how: str) -> Callable[[], object]:
    """Block the database's writes now; returns what lifts the block."""
    if how == "full":
        try:
            fill(db.parent)
        except OSError as exc:  # not even a filler file fits: the disk is full already
            assert exc.errno == errno.ENOSPC
        fillers = [db.parent / "filler.bin", db.parent / "filler-tail.bin"]
        return lambda: [f.unlink(missing_ok=True) for f in fillers]
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held until the test lets go
    return holder.close


def test_sqlite_write_lock_held_past_the_busy_timeout_pays_nothing_twice(tmp_path: Path, server: FakeOpenAI) -> None:
    sqlite_run(tmp_path, tmp_path / "trax.db", server, "lock")


def test_sqlite_disk_full_when_the_paid_result_arrives_pays_nothing_twice(tmp_path: Path, server: FakeOpenAI) -> None:
    disk = tmp_path / "disk"
    mount_small_fs(disk, "4m")
    try:
        sqlite_run(tmp_path, disk / "trax.db", server, "full")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# -- every paid stage, in a real `traxd run` ---------------------------------------------------------------
PAID_STAGES = {"transcribe", "enhance", "translate", "summarize"}


def test_every_paid_stage_of_a_real_daemon_spools_when_the_database_disk_is_full(
    tmp_path: Path,
) -> None:
    """Each paid reply arrives while the database's disk is full; the daemon spools it, and once space is back it
    commits it and goes on: every stage spooled at least once, and no request was ever sent twice."""
    from tests.daemon_helpers import home_env
    from tests.fakes import media

    disk, home = tmp_path / "disk", tmp_path / "home"
    mount_small_fs(disk, "8m")
    (home / "inbox").mkdir(parents=True)
    media.tones_with_gaps(home / "inbox" / "talk.mp3", [3.0, 3.0], 0.6)  # two chunks, then the LLM stages
    spool, log = home / "spool", home / "logs" / "traxd.log"
    try:
        with FakeOpenAI(transcribe=media.media_transcription) as fake:
            env = home_env(home, handlers=None, OPENAI_API_KEY="sk-test-outage", OPENAI_BASE_URL=fake.base_url,
                           DEEPSEEK_API_KEY="sk-test-outage", DEEPSEEK_BASE_URL=fake.base_url, TRAX_ENHANCE="1",
                           TRAX_ENHANCE_CHUNK_CHARS="60", TRAX_TRANSLATE_TO="fr", TRAX_SUMMARIZE="1",
                           TRAX_WORKERS="1", TRAX_CHUNK_SIZE="4", TRAX_DATABASE_URL=f"sqlite:///{disk / 'trax.db'}")
            fake.hold()
            daemon = subprocess.Popen([sys.executable, "-m", "traxd.cli.traxd_cmd", "run", "--drain"], cwd=ROOT,
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
            try:
                _each_reply_on_a_full_disk(fake, daemon, disk, spool)
                assert daemon.wait(timeout=300) == 0, daemon.stderr.read() if daemon.stderr else ""
            finally:
                fake.release()
                kill_all([daemon])
            paid = [c for c in fake.calls() if c.status == 200]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    bodies = collections.Counter(c.file_bytes or json.dumps(c.json_body, sort_keys=True).encode() for c in paid)
    assert max(bodies.values()) == 1, "a paid request was sent twice"
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    stages = {e.get("type") for e in events if e.get("event") == "paid_result_spooled"}
    assert stages == PAID_STAGES, f"stages that met the full disk with a paid result: {stages}"
    assert not spooled(spool)
    made = {p.name for p in (home / "outbox").iterdir()}
    assert {"talk.txt", "talk.enhanced.txt", "talk.fr.txt", "talk.summary.md"} <= made


def _each_reply_on_a_full_disk(fake: FakeOpenAI, daemon: subprocess.Popen[str], disk: Path, spool: Path) -> None:
    """For every paid request the daemon makes: fill the database's disk, answer it, wait until the result is in
    the spool (or the daemon went on without it: a commit that found room), free the disk, wait until it landed."""
    while daemon.poll() is None:
        sent = len(fake.calls())
        if not _until(lambda: fake.held == 1 or daemon.poll() is not None):
            pytest.fail("the daemon neither asked the API nor finished")
        if daemon.poll() is not None:
            return
        free = _block(disk / "trax.db", "full")
        fake.let_one()
        _until(lambda n=sent + 1: bool(spooled(spool)) or len(fake.calls()) > n or daemon.poll() is not None, 60)
        free()
        _until(lambda: not spooled(spool) or daemon.poll() is not None, 120)


def _until(predicate: Callable[[], bool], timeout: float = 240) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
