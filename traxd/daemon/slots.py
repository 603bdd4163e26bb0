"""The pool's slot threads: a fixed set of threads that run whatever the dispatcher hands them.

A thread pool executor wakes one sleeping thread per submitted task, from the dispatcher's thread, while it holds
the GIL: measured, that wake-up was a fifth of the dispatcher's time with short tasks. Here the dispatcher hands
over a whole claim at once and wakes one thread; a thread that takes a task wakes the next only while more wait,
and a thread that finishes takes the next waiting task without sleeping. So the wake-ups run beside the
dispatcher instead of inside it, and short tasks need fewer of them.

A thread whose last task was short (under QUICK_SECONDS) wakes no one: it runs the next waiting task itself once
done. Every wake-up hands the GIL to a thread that may sit on the other core, which cost more than the short tasks
themselves (measured before: 10,000 no-op tasks ran 1.6 times as fast pinned to one core as on two). Should that
next task turn out long, the ones behind it wait for the dispatcher's nudge, at most 50 ms.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

Work = TypeVar("Work")
QUICK_SECONDS = 0.001  # a task this short is not worth waking another thread for the next one


class Slots(Generic[Work]):
    """`count` threads calling `run(work)` for each handed-over item; at most `count` run at once."""

    def __init__(self, count: int, run: Callable[[Work], None], name: str = "trax-slot") -> None:
        self._run = run
        self._waiting: deque[Work] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        self._threads = [threading.Thread(target=self._serve, name=f"{name}_{i}") for i in range(count)]
        for thread in self._threads:
            thread.start()

    def hand(self, work: Iterable[Work]) -> None:
        """Queue these items for the next free threads."""
        with self._ready:
            self._waiting.extend(work)
            if self._waiting:
                self._ready.notify()

    def nudge(self) -> None:
        """Wake a thread for every item still waiting (a thread that ran short tasks took one that is not)."""
        with self._ready:
            if self._waiting:
                self._ready.notify(len(self._waiting))

    def close(self) -> list[Work]:
        """Stop: threads finish what they run and exit; items not yet started are returned, never run."""
        with self._ready:
            self._closed = True
            dropped = list(self._waiting)
            self._waiting.clear()
            self._ready.notify_all()
        return dropped

    def _serve(self) -> None:
        quick = False
        while (work := self._next(quick)) is not None:
            started = time.monotonic()
            self._run(work[0])
            quick = time.monotonic() - started < QUICK_SECONDS

    def _next(self, quick: bool) -> tuple[Work] | None:
        with self._ready:
            while not self._waiting:
                if self._closed:
                    return None
                self._ready.wait()
            work = self._waiting.popleft()
            if self._waiting and not quick:
                self._ready.notify()  # the next waiting item wakes the next thread
            return (work,)
