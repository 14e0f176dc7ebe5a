"""A work queue with the guarantees of client-go's workqueue.

- An app waiting in the queue is not added twice (de-duplication).
- An app is never processed by two workers at once; added while it is being
  processed, it is queued again once the worker is done ("dirty").
- ``add_after`` delays an add (debounce, periodic refresh, retry); the earliest
  pending deadline wins.
- ``backoff`` gives per-app exponential delays with a cap, reset by ``forget``,
  so a failing app (down git server, broken render) is retried ever more
  slowly instead of in a hot loop.
- Fairness: FIFO order over apps, so one app that changes often cannot starve
  the others (it only ever holds one place in the queue).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class WorkQueue:
    def __init__(self, *, base_delay: float = 1.0, max_delay: float = 300.0) -> None:
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._closed = False
        self.base_delay, self.max_delay = base_delay, max_delay

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def add(self, key: str, *, first: bool = False) -> None:
        """Queue ``key``; ``first`` puts it at the front (or moves it there):
        an app whose files a push just changed goes before a routine refresh."""
        if self._closed:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            if first:
                self._queue.remove(key)
                self._queue.appendleft(key)
            return
        self._queued.add(key)
        if first:
            self._queue.appendleft(key)
        else:
            self._queue.append(key)
        self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds (at once when ``delay <= 0``)."""
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= due:
                return
            existing[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def backoff(self, key: str) -> float:
        """Record a failure of ``key``; the delay before its next try (doubling, capped)."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return float(min(self.base_delay * 2.0**n, self.max_delay))

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        """A success: the next failure starts from the base delay again."""
        self._failures.pop(key, None)

    async def get(self) -> str:
        while not self._queue:
            if self._closed:
                raise asyncio.CancelledError
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._ready.set()

    def pending_timers(self) -> int:
        return len(self._timers)
