"""The lifecycle both controller loops share: wait for the shard Lease, run the
tasks until a stop request, then cancel them."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_ready(ready: asyncio.Event, stop: asyncio.Event | None) -> None:
    """Return once ``ready`` is set, or at once on a stop request: a Lease that
    cannot be written (logged by ``Shards``) must not hang a stopping controller."""
    waiters = [asyncio.create_task(ready.wait())]
    if stop is not None:
        waiters.append(asyncio.create_task(stop.wait()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()


async def run_until_stopped(tasks: list[asyncio.Task[None]], stop: asyncio.Event | None) -> None:
    """Run ``tasks`` until ``stop`` is set (for ever without one), then cancel
    them and wait for each to end."""
    try:
        if stop is None:
            await asyncio.gather(*tasks)
        else:
            await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
