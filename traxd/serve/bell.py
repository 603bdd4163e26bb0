"""A bell the daemon's pool rings (from its own thread) each time runs settle: requests waiting in the server's event
loop read their job at once instead of at their next poll. Without a bell (`traxctl serve`) they poll."""

from __future__ import annotations

import asyncio
import threading


class Bell:
    """ring() from any thread; `await wait(seconds)` in an event loop returns at the next ring or after `seconds`."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def ring(self, *_: object) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed: the server is stopping
                pass

    async def wait(self, seconds: float) -> None:
        me = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(me)
        try:
            await asyncio.wait_for(me[1].wait(), seconds)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(me)
