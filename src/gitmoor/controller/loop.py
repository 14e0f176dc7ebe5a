"""`gitmoor controller`: executes requested operations and keeps status current.

Applications are listed, then watched; every app is enqueued on a change of
its spec or of its requested ``operation`` (both bump ``metadata.generation``;
status writes do not, so the controller never wakes itself up), and all of
them on every ``interval``. A queue with per-app de-duplication feeds a fixed
number of workers, so one app is never processed twice at once.

An operation stays in ``operation`` until it has run, so one interrupted by a
crash runs again after the restart (Argo CD's contract as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

from gitmoor.engine import store
from gitmoor.engine.app import Engine
from gitmoor.engine.sync import SyncOptions
from gitmoor.kube import ApiUnavailableError
from gitmoor.model import GitmoorError
from gitmoor.model.application import GROUP, KIND, VERSION, Application, parse_application

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.controller")


class _Queue:
    """A FIFO of app names where a name waiting already is not added twice."""

    def __init__(self) -> None:
        self._q: asyncio.Queue[str] = asyncio.Queue()
        self._waiting: set[str] = set()

    def add(self, name: str) -> None:
        if name not in self._waiting:
            self._waiting.add(name)
            self._q.put_nowait(name)

    async def get(self) -> str:
        name = await self._q.get()
        self._waiting.discard(name)
        return name

    def __len__(self) -> int:
        return self._q.qsize()


def _sync_options(app: Application, op: dict[str, Any]) -> SyncOptions:
    sync = op.get("sync") or {}
    auto = app.spec.sync_policy.automated
    only = None
    if sync.get("resources"):
        only = frozenset((r.get("group", ""), r["kind"], r["name"]) for r in sync["resources"])
    return SyncOptions(
        prune=bool(sync.get("prune", auto.prune if auto else False)),
        dry_run=bool(sync.get("dryRun", False)),
        force_conflicts=bool(sync.get("forceConflicts", False)),
        only=only,
        allow_empty=bool(auto and auto.allow_empty),
        create_namespace=app.spec.sync_policy.option("CreateNamespace"),
    )


class Controller:
    def __init__(self, kube: KubeClient, namespace: str, *, interval: float, workers: int) -> None:
        self.kube, self.namespace, self.interval, self.workers = kube, namespace, interval, workers
        self.engine = Engine(kube, namespace=namespace)
        self.queue = _Queue()
        self.generations: dict[str, int] = {}

    async def process(self, name: str) -> None:
        try:
            app = await store.get_app(self.kube, name, self.namespace)
        except GitmoorError:
            return  # deleted meanwhile
        op = app.operation
        if op:
            who = (op.get("initiatedBy") or {}).get("username", "controller")
            if "rollback" in op:
                await self.engine.rollback(app, int(op["rollback"]["id"]), initiated_by=who)
            else:
                await self.engine.sync(
                    app,
                    _sync_options(app, op),
                    revision=(op.get("sync") or {}).get("revision") or None,
                    initiated_by=who,
                )
            app = await store.get_app(self.kube, name, self.namespace)
            await store.set_operation(self.kube, app, None)
            app = await store.get_app(self.kube, name, self.namespace)
        await self.engine.refresh(app)

    async def worker(self) -> None:
        while True:
            name = await self.queue.get()
            try:
                await self.process(name)
            except ApiUnavailableError as e:
                log.warning(
                    "event=api_unavailable app=%s error=%s retry_in=%.0f", name, e, e.retry_after
                )
                asyncio.get_running_loop().call_later(e.retry_after, self.queue.add, name)
            except GitmoorError as e:
                log.warning("event=process_failed app=%s error=%s", name, e)
            except Exception:
                log.exception("event=process_crashed app=%s", name)

    def observe(self, obj: dict[str, Any]) -> None:
        app = parse_application(obj)
        if self.generations.get(app.name) != app.generation or app.operation:
            self.generations[app.name] = app.generation
            self.queue.add(app.name)

    async def watch(self) -> None:
        ar = await self.kube.resource(GROUP, VERSION, KIND)
        delay = 1.0
        while True:
            try:
                listed = await self.kube.list(ar, self.namespace)
                for obj in listed.items:
                    self.observe(obj)
                rv = listed.resource_version
                while True:
                    async for ev in self.kube.watch(ar, self.namespace, resource_version=rv):
                        if ev.type == "ERROR":
                            raise _Relist
                        rv = ev.object.get("metadata", {}).get("resourceVersion", rv)
                        if ev.type in ("ADDED", "MODIFIED"):
                            self.observe(ev.object)
                        elif ev.type == "DELETED":
                            self.generations.pop(ev.object["metadata"]["name"], None)
                    delay = 1.0
            except _Relist:
                continue
            except GitmoorError as e:
                log.warning("event=watch_failed error=%s retry_in=%.0f", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.1))  # noqa: S311 - jitter
            for name in list(self.generations):
                self.queue.add(name)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        log.info(
            "event=controller_started namespace=%s interval=%.0f workers=%d",
            self.namespace,
            self.interval,
            self.workers,
        )
        tasks = [asyncio.create_task(self.watch()), asyncio.create_task(self.tick())]
        tasks += [asyncio.create_task(self.worker()) for _ in range(self.workers)]
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


class _Relist(Exception):
    """The watch ended with an ERROR event (410 Gone): list again."""


async def run_controller(
    kube: KubeClient,
    namespace: str,
    *,
    interval: float = 180.0,
    workers: int = 4,
    stop: asyncio.Event | None = None,
) -> None:
    await Controller(kube, namespace, interval=interval, workers=workers).run(stop)
