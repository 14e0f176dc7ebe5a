"""The controller's work queue: de-duplication, one worker per app, delays, backoff."""

from __future__ import annotations

import asyncio

from gitmoor.controller.queue import WorkQueue


async def test_an_app_waiting_is_queued_once_and_order_is_fifo() -> None:
    q = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_added_while_processing_comes_back_after_done_not_before() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # a change arrives while a worker handles "a"
    assert len(q) == 0, "a second worker must not get the same app"
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"


async def test_add_after_fires_once_at_the_earliest_deadline() -> None:
    q = WorkQueue()
    q.add_after("a", 0.05)
    q.add_after("a", 10)  # a later deadline does not postpone the earlier one
    assert q.pending_timers() == 1
    got = await asyncio.wait_for(q.get(), timeout=2)
    assert got == "a"
    assert q.pending_timers() == 0


async def test_backoff_doubles_up_to_the_cap_and_forget_resets() -> None:
    q = WorkQueue(base_delay=1, max_delay=5)
    assert [q.backoff("a") for _ in range(5)] == [1, 2, 4, 5, 5]
    assert q.backoff("b") == 1, "backoff is per app"
    q.forget("a")
    assert q.backoff("a") == 1


async def test_close_wakes_waiting_workers() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.close()
    try:
        await asyncio.wait_for(waiter, timeout=2)
    except asyncio.CancelledError:
        return
    raise AssertionError("get() returned after close")


async def test_first_goes_before_everything_queued() -> None:
    q = WorkQueue()
    for key in ["a", "b", "c"]:
        q.add(key)
    q.add("c", first=True)  # already queued: moved to the front
    q.add("d", first=True)
    assert [await q.get() for _ in range(4)] == ["d", "c", "a", "b"]
