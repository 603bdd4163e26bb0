"""The pool's slot threads: every handed task runs, never more at once than there are slots, and a stop drops
what has not started (the pool has released those leases by then) without running it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.daemon_helpers import wait_until
from traxd.daemon import slots as slots_module
from traxd.daemon.slots import Slots


def test_as_many_tasks_run_at_once_as_there_are_slots() -> None:
    together = threading.Barrier(3, timeout=30)  # breaks (and fails the test) unless three run at the same time
    done: list[int] = []
    all_done = threading.Semaphore(0)
    slots: Slots[int] = Slots(3, lambda i: (together.wait(), done.append(i), all_done.release()))
    slots.hand([1, 2, 3])
    for _ in range(3):
        assert all_done.acquire(timeout=30)
    assert slots.close() == []
    for thread in slots._threads:
        thread.join(30)
    assert sorted(done) == [1, 2, 3]


def test_never_more_at_once_than_slots_and_every_handed_task_runs() -> None:
    lock, running, peak, done = threading.Lock(), [0], [0], []
    gate = threading.Event()

    def work(i: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(30)
        with lock:
            running[0] -= 1
            done.append(i)

    def settled(check: Callable[[], bool]) -> bool:
        for _ in range(3000):  # 30 s at most
            with lock:
                if check():
                    return True
            time.sleep(0.01)
        return False

    slots: Slots[int] = Slots(2, work)
    slots.hand(range(5))
    slots.hand([5, 6])
    assert settled(lambda: running[0] == 2)  # two start while five wait behind the closed gate
    time.sleep(0.2)  # room for a third to start, were there a third thread (none must)
    assert peak[0] == 2
    gate.set()
    assert settled(lambda: len(done) == 7)
    assert peak[0] == 2 and sorted(done) == list(range(7))
    assert slots.close() == []


def test_close_returns_the_tasks_not_started_and_runs_none_of_them() -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def work(name: str) -> None:
        ran.append(name)
        started.set()
        release.wait(30)

    slots: Slots[str] = Slots(1, work)
    slots.hand(["first", "second", "third"])
    assert started.wait(30)
    assert slots.close() == ["second", "third"]
    release.set()
    for thread in slots._threads:
        thread.join(30)
        assert not thread.is_alive()
    assert ran == ["first"]


def test_a_thread_used_to_short_tasks_leaves_the_next_one_waiting_until_a_nudge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a short task a thread takes the next one without waking another thread (the wake-ups cost more than
    # short tasks), so a long one taken that way holds up the ones behind it until the pool's wait nudges: then
    # every waiting task gets a thread at once.
    monkeypatch.setattr(slots_module, "QUICK_SECONDS", 60.0)  # the first two count as short on a loaded machine too
    both = threading.Barrier(2, timeout=30)
    long_runs, other_runs, release = threading.Event(), threading.Event(), threading.Event()

    def work(item: str) -> None:
        if item.startswith("short"):
            both.wait()  # both threads run a short task first (so both are used to short ones now)
        elif item == "long":
            long_runs.set()
            release.wait(30)
        else:
            other_runs.set()

    slots: Slots[str] = Slots(2, work)
    slots.hand(["short-1", "short-2"])
    wait_until(lambda: len(slots._ready._waiters) == 2, 30, "both threads asleep again")  # type: ignore[attr-defined]
    slots.hand(["long", "other"])
    assert long_runs.wait(30)
    assert not other_runs.wait(0.3)  # the second thread sleeps: no one woke it
    slots.nudge()
    assert other_runs.wait(30)
    release.set()
    assert slots.close() == []

