"""A controller in the test's event loop, for tests that need one running."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from gitmoor.controller import Controller

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient


@contextlib.asynccontextmanager
async def running_controller(
    kube: KubeClient, namespace: str, *, interval: float
) -> AsyncIterator[Controller]:
    """The controller over ``namespace``'s Applications, stopped (and awaited) on
    leaving: what runs the syncs, rollbacks and refreshes a test asks for."""
    stop = asyncio.Event()
    ctrl = Controller(kube, namespace, interval=interval, workers=2)
    task = asyncio.create_task(ctrl.run(stop))
    try:
        yield ctrl
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
