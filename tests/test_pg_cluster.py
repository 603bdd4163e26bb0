"""Several daemons, one PostgreSQL: real pool processes share one queue, survive a SIGKILLed neighbour and a
server restart, and never rescue another machine's live task by pid.

The multi-process tests are PostgreSQL-only (`pg_url`, or a throwaway server of their own for the restart);
the owner-identity test runs on both backends.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy.exc import DBAPIError

from tests.store_checks import integrity_ok
from traxd.clock import FakeClock
from traxd.daemon.owner import Owner
from traxd.daemon.pool import Pool, PoolConfig, PoolWiring
from traxd.db.engine import open_engine
from traxd.db.migrate import upgrade
from traxd.handlers.registry import Registry
from traxd.queue.store import Store
from traxd.types import GLOBAL_SCOPE, ControlState, NewTask, TaskType

ROOT = Path(__file__).resolve().parent.parent
PG_SH = ROOT / ".ci" / "pg.sh"
SLOTS = 8
POOLS = 3
DONE = {"queued": 0, "running": 0, "failed": 0, "cancelled": 0}


# -- helpers -----------------------------------------------------------------------------------------
def start_pool(url: str, log: Path, *options: str) -> subprocess.Popen[str]:
    """One daemon-like pool process in serve mode (it stops when the control table says so)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers.pool_child", url, str(log), str(SLOTS), "serve", "--no-migrate",
         *options],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def runs_of(log: Path) -> list[tuple[int, int, int]]:
    """(task id, attempt, pid) per run of the handler, in order."""
    if not log.exists():
        return []
    return [tuple(int(x) for x in line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


def wait_until(what: str, predicate: Callable[[], bool], children: list[subprocess.Popen[str]],
               timeout: float = 300.0) -> None:  # fmt: skip
    """Poll until predicate() holds; fail early (with its stderr) when a pool process dies on its own."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except DBAPIError:
            pass  # the server is restarting: ask again
        for child in children:
            if child.poll() is not None:
                _, err = child.communicate()
                pytest.fail(f"pool process {child.pid} exited ({child.returncode}) while waiting for {what}:\n"
                            f"{err[-4000:]}")  # fmt: skip
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def finished(store: Store, total: int) -> Callable[[], bool]:
    return lambda: store.counts().get("succeeded", 0) == total


def stop_all(store: Store, children: list[subprocess.Popen[str]]) -> None:
    """Stop the pools through the control table, as traxctl would, and check they exit cleanly."""
    deadline = time.monotonic() + 120
    while True:
        try:
            store.set_control(GLOBAL_SCOPE, ControlState.STOPPING, "test done")
            break
        except DBAPIError:
            assert time.monotonic() < deadline, "could not write the control table"
            time.sleep(0.2)
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-4000:]
        assert "exited cleanly" in out


def migrated(url: str) -> Store:
    engine = open_engine(url)
    upgrade(engine)
    return Store(engine)


def start_pools(store: Store, url: str, log: Path, *options: str) -> list[subprocess.Popen[str]]:
    """Start POOLS processes and wait until each has written its heartbeat (so all of them see the work)."""
    children = [start_pool(url, log, *options) for _ in range(POOLS)]
    wait_until("every pool's heartbeat", lambda: len(store.workers()) == POOLS, children, timeout=120)
    return children


def kill_all(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()
            child.communicate()


# -- three pools, one queue --------------------------------------------------------------------------
def test_three_pools_run_3000_tasks_exactly_once(tmp_path: Path, pg_url: str) -> None:
    total = 3000
    store = migrated(pg_url)
    log = tmp_path / "runs.log"
    children = start_pools(store, pg_url, log, "--max-sleep", "0.002")
    try:
        store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}, priority=i % 5) for i in range(total)])
        wait_until("all tasks to succeed", finished(store, total), children)
        stop_all(store, children)
    finally:
        kill_all(children)
    runs = runs_of(log)
    per_task = collections.Counter(task for task, _, _ in runs)
    assert len(per_task) == total, "a task never ran"
    assert set(per_task.values()) == {1}, "a task ran twice"
    assert {attempt for _, attempt, _ in runs} == {1}
    assert len({pid for _, _, pid in runs}) == POOLS, "the three pools did not share the work"
    assert store.counts() == {**DONE, "succeeded": total}
    assert store.workers() == [], "a stopped pool left its heartbeat row"
    assert integrity_ok(store)
    store.engine.dispose()


def test_sigkilled_pool_tasks_are_rescued_by_its_neighbours_at_once(tmp_path: Path, pg_url: str) -> None:
    total = 3000
    store = migrated(pg_url)
    # Every 50th task takes 2 s, so the victim is certainly holding some when it dies. Leases last 600 s:
    # only the same-host dead-owner check (host:pid:start) can bring its tasks back.
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"sleep": 2.0} if i % 50 == 0 else {"i": i})
                        for i in range(total)])  # fmt: skip
    log = tmp_path / "runs.log"
    children = start_pools(store, pg_url, log, "--lease", "600", "--rescue", "0.5", "--max-sleep", "0.01")
    victim = children[0]
    try:
        wait_until("a third of the work", lambda: len(runs_of(log)) >= total // 3, children)

        def victim_holds_a_slow_task() -> bool:
            return any(t.payload.get("sleep") == 2.0 and t.lease_owner and f":{victim.pid}:" in t.lease_owner
                       for t in store.running_leases())  # fmt: skip

        wait_until("the victim to run a slow task", victim_holds_a_slow_task, children)
        held = [t for t in store.running_leases() if f":{victim.pid}:" in (t.lease_owner or "")]
        in_flight = {t.id for t in held}
        slow = {t.id for t in held if t.payload.get("sleep") == 2.0}  # still running when the kill lands
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert victim.returncode == -signal.SIGKILL, "the victim had already finished"
        survivors = children[1:]
        wait_until("all tasks to succeed", finished(store, total), survivors)
        stop_all(store, survivors)
    finally:
        kill_all(children)
    runs = runs_of(log)
    per_task = collections.Counter(task for task, _, _ in runs)
    assert len(per_task) == total, "a task was lost"
    twice = {task for task, n in per_task.items() if n > 1}
    assert max(per_task.values()) <= 2
    assert len(twice) <= SLOTS, f"{len(twice)} tasks ran twice; the victim had at most {SLOTS} in flight"
    assert twice <= in_flight | {t for t, _, pid in runs if pid == victim.pid}
    tasks = {t.id: t for t in store.list_tasks(limit=total)}
    assert slow and all(tasks[t].attempts == 2 for t in slow), "the victim's tasks were not rescued and rerun"
    assert all("died" in str(tasks[t].errors) for t in slow), "rescued for another reason than a dead owner"
    assert not any(f":{victim.pid}:" in (t.lease_owner or "") for t in store.running_leases())
    assert store.counts() == {**DONE, "succeeded": total}
    assert integrity_ok(store)
    store.engine.dispose()


# -- PostgreSQL restarted under running pools --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_server(message: str) -> None:
    if os.environ.get("TRAX_REQUIRE_PG") == "1":
        pytest.fail(f"TRAX_REQUIRE_PG=1 but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def own_pg() -> Iterator[tuple[str, Path]]:
    """A throwaway PostgreSQL cluster of our own (we restart it; never the shared one): (URL, cluster dir)."""
    if not os.environ.get("TRAX_TEST_PG_URL") and os.environ.get("TRAX_REQUIRE_PG") != "1":
        pytest.skip("PostgreSQL tests need TRAX_TEST_PG_URL (.ci/run starts a server and sets it)")
    top = Path(tempfile.mkdtemp(prefix="trax-pg-restart-"))
    top.chmod(0o755)  # the postgres user must reach its data directory
    cluster = top / "pg"
    try:
        started = subprocess.run(["bash", str(PG_SH), "start", str(cluster), str(_free_port())],
                                 check=False, capture_output=True, text=True, timeout=180)  # fmt: skip
        if started.returncode != 0:
            _no_server(f"a throwaway PostgreSQL did not start:\n{started.stderr[-2000:]}")
        yield started.stdout.strip(), cluster
    finally:
        subprocess.run(["bash", str(PG_SH), "stop", str(cluster)], check=False, capture_output=True, timeout=180)
        shutil.rmtree(top, ignore_errors=True)


def test_pools_survive_a_postgresql_restart_and_finish(tmp_path: Path, own_pg: tuple[str, Path]) -> None:
    url, cluster = own_pg
    total = 1500
    store = migrated(url)
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}) for i in range(total)])
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    # Every run waits for the gate file: all slots are busy (leases held, results not yet settled) when the
    # server goes away, and everything else necessarily runs after it is back. Short leases: whether a pool
    # keeps its leases across the outage or loses them, the work comes back.
    options = ("--lease", "10", "--rescue", "1", "--max-sleep", "0.005", "--gate", str(gate))
    children = start_pools(store, url, log, *options)
    try:
        wait_until("every slot to be busy", lambda: len(runs_of(log)) >= POOLS * SLOTS, children)
        restart = ["bash", str(PG_SH), "restart", str(cluster)]
        restarted = subprocess.run(restart, check=False, capture_output=True, text=True, timeout=180)
        assert restarted.returncode == 0, restarted.stderr
        gate.touch()
        wait_until("all tasks to succeed", finished(store, total), children)
        stop_all(store, children)
    finally:
        kill_all(children)
    per_task = collections.Counter(task for task, _, _ in runs_of(log))
    assert len(per_task) == total, "a task was lost"
    twice = [task for task, n in per_task.items() if n > 1]
    assert len(twice) <= POOLS * SLOTS, f"{len(twice)} ran twice; at most {POOLS * SLOTS} were in flight"
    assert max(per_task.values()) <= 2
    assert store.counts() == {**DONE, "succeeded": total}
    assert integrity_ok(store)
    store.engine.dispose()


# -- owner identity: the host is part of it ----------------------------------------------------------
def _claim_as(store: Store, owner: str) -> int:
    (task,) = store.claim(owner, 1, 30, [TaskType.TRANSCRIBE])
    return task.id


def test_another_hosts_lease_is_rescued_only_when_it_expires(store: Store, clock: FakeClock) -> None:
    store.enqueue_many([NewTask(TaskType.TRANSCRIBE, {"i": i}) for i in range(4)])
    me = Owner("host-a", os.getpid(), psutil.Process().create_time())
    pool = Pool(store, Registry({}), PoolConfig(lease_seconds=30), PoolWiring(owner=me))
    no_such_pid = 99_999_999  # above any Linux pid_max: dead wherever it is looked up
    foreign_dead_pid = _claim_as(store, str(Owner("host-b", no_such_pid, 1.0)))
    foreign_live_pid = _claim_as(store, str(Owner("host-b.example.org", me.pid, me.started)))
    local_dead = _claim_as(store, str(Owner("host-a", no_such_pid, 1.0)))
    local_reused_pid = _claim_as(store, str(Owner("host-a", me.pid, me.started - 100)))

    # Same host: a gone process, or a pid now used by another process, is dead at once.
    assert pool.maintenance.rescue() == 2
    after: dict[int, Any] = {t.id: t for t in store.list_tasks(limit=10)}
    assert {after[local_dead].state.value, after[local_reused_pid].state.value} == {"queued"}
    assert "died" in (after[local_dead].error_message or "")
    # Another host's owner is never judged by pid here, whatever that pid is on this machine.
    assert after[foreign_dead_pid].state.value == after[foreign_live_pid].state.value == "running"

    clock.advance(29)
    assert pool.maintenance.rescue() == 0, "rescued another host's task before its lease ran out"
    clock.advance(2)
    assert pool.maintenance.rescue() == 2
    after = {t.id: t for t in store.list_tasks(limit=10)}
    for task_id in (foreign_dead_pid, foreign_live_pid):
        assert after[task_id].state.value == "queued"
        assert "expired" in (after[task_id].error_message or "")


def test_owner_ids_carry_the_host_and_parse_back() -> None:
    me = Owner.current()
    assert str(me).startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert Owner.parse(str(me)) == Owner(me.host, me.pid, float(f"{me.started:.2f}"))
    # Hosts with colons (an IPv6 literal) still parse: pid and start time are the last two fields.
    assert Owner.parse("fe80::1:42:1700000000.50") == Owner("fe80::1", 42, 1700000000.5)
    assert Owner.parse("not-an-owner") is None
