"""The work queue both rollout controllers (Rollouts, AnalysisRuns) reconcile from.

The semantics are client-go's workqueue, which Argo Rollouts' controllers use:

- a key is in the queue at most once, however often it is added;
- a key is never handled by two workers at once: added while a worker has it,
  it is queued again when that worker is done, so the change is not lost;
- a key can be added later, at a time (a pause deadline, a measurement due),
  with one timer per key.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

K = TypeVar("K")


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._busy: set[K] = set()
        self._again: set[K] = set()
        self.timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K) -> None:
        if key in self._busy:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float, *, keep_earlier: bool = False) -> None:
        """Add ``key`` in ``delay`` seconds. The key's earlier timer is replaced, or,
        with ``keep_earlier``, kept when it fires first (one wake-up serves both)."""
        loop = asyncio.get_running_loop()
        old = self.timers.get(key)
        if old is not None:
            if keep_earlier and old.when() <= loop.time() + delay:
                return
            old.cancel()
        self.timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self.timers.pop(key, None)
        self.add(key)

    def cancel(self, key: K) -> None:
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    async def work(self, handle: Callable[[K], Awaitable[None]]) -> None:
        """A worker: take keys one at a time and ``handle`` each, for ever.
        ``handle`` deals with its own errors; one that escapes ends the worker."""
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._busy.add(key)
            try:
                await handle(key)
            finally:
                self._busy.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self.add(key)

    async def run_until(
        self,
        stop: asyncio.Event,
        handle: Callable[[K], Awaitable[None]],
        *,
        workers: int,
        name: str,
        also: dict[str, Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """``workers`` workers (and the ``also`` tasks, by name: a watch, a resync
        loop) until ``stop`` is set; then every task is cancelled and awaited and
        every timer cancelled, so nothing of the controller outlives it."""
        tasks = [
            asyncio.create_task(self.work(handle), name=f"{name} worker {i}")
            for i in range(workers)
        ]
        tasks += [asyncio.create_task(c, name=n) for n, c in (also or {}).items()]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.cancel_all()
