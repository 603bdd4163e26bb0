"""The pool's slot threads: a fixed set of threads that run whatever the dispatcher hands them.

A thread pool executor wakes one sleeping thread per submitted task, from the dispatcher's thread, while it holds
the GIL: measured, that wake-up was a fifth of the dispatcher's time with short tasks. Here the dispatcher hands
over a whole claim at once and wakes one thread; a thread that takes a task wakes the next only while more wait,
and a thread that finishes takes the next waiting task without sleeping. So the wake-ups run beside the
dispatcher instead of inside it, and short tasks need fewer of them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

Work = TypeVar("Work")


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

    def close(self) -> list[Work]:
        """Stop: threads finish what they run and exit; items not yet started are returned, never run."""
        with self._ready:
            self._closed = True
            dropped = list(self._waiting)
            self._waiting.clear()
            self._ready.notify_all()
        return dropped

    def _serve(self) -> None:
        while (work := self._next()) is not None:
            self._run(work[0])

    def _next(self) -> tuple[Work] | None:
        with self._ready:
            while not self._waiting:
                if self._closed:
                    return None
                self._ready.wait()
            work = self._waiting.popleft()
            if self._waiting:
                self._ready.notify()  # the next waiting item wakes the next thread
            return (work,)
