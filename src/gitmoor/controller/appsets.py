"""The ApplicationSet controller: keeps each ApplicationSet's Applications as its
generators and template say (the rules live in ``gitmoor.engine``'s
``reconcile_appset``; this module decides when to run it).

When an ApplicationSet is reconciled (generate, render, write):

- on a change of its spec (``metadata.generation``; status writes do not bump
  it, so the controller never wakes itself up), seen through a watch of
  ApplicationSets in the apps namespace;
- every ``requeueAfterSeconds`` (the smallest a generator names; otherwise the
  controller's interval, Argo CD's default being 180 s), so that a commit that
  adds or removes a directory is seen without a webhook;
- when an Application it owns is deleted (it is created again, as Argo CD's
  controller does);
- after an error, with a per-ApplicationSet exponential backoff.

When an Application it owns changes (its sync or health), only its status is
brought up to date: ``status.resources`` from the watch cache, no git request,
and no write when nothing changed.

Deletion: the controller keeps the finalizer ``gitmoor.io/appset-cleanup`` on
every ApplicationSet it manages; when one is deleted it deletes its Applications
(with their objects unless ``preserveResourcesOnDeletion``) and then removes the
finalizer (see ``gitmoor.engine.appset.reconcile``).

With several replicas (``--replica-id``) each ApplicationSet is reconciled by
one of them only: the replica that owns its name by the shard hash, the rule the
Applications follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitmoor.controller.queue import WorkQueue
from gitmoor.controller.tasks import run_until_stopped, wait_ready
from gitmoor.engine import (
    APPSET_FINALIZER,
    GeneratorContext,
    appset_for_deletion,
    appset_invalid_spec_status,
    appset_owns,
    appset_resources,
    finalize_appset,
    reconcile_appset,
    set_appset_finalizer,
    write_appset_status,
)
from gitmoor.kube import ApiUnavailableError, ConflictError
from gitmoor.kube.cache import ClusterCache, Key
from gitmoor.model import GitmoorError, JSONDict, ObjectRef, UserInputError
from gitmoor.model.application import GROUP, KIND, VERSION
from gitmoor.model.appset import (
    APPSET_GROUP,
    APPSET_KIND,
    APPSET_LABEL,
    APPSET_VERSION,
    ApplicationSet,
    parse_appset,
)

if TYPE_CHECKING:
    from gitmoor.controller.shard import Shards
    from gitmoor.engine import Engine
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.controller.appsets")

#: Argo CD's default requeue of an ApplicationSet (``requeueAfterSeconds``)
DEFAULT_REQUEUE = 180.0
#: the shortest requeue a generator may ask for: Argo CD's ``requeueAfterSeconds``
#: is a whole number of seconds, and a fraction here would make one ApplicationSet
#: keep the controller (and its git server) busy with back-to-back passes
MIN_REQUEUE = 1.0


def requeue_after(appset: ApplicationSet, default: float) -> float:
    """The smallest ``requeueAfterSeconds`` any generator (or one nested in a
    matrix or merge) names, at least ``MIN_REQUEUE``; ``default`` when none does."""
    found: list[float] = []

    def walk(gen: Any) -> None:
        if not isinstance(gen, dict):
            return
        for body in gen.values():
            if not isinstance(body, dict):
                continue
            value = body.get("requeueAfterSeconds")
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                found.append(max(float(value), MIN_REQUEUE))
            for nested in body.get("generators") or []:
                walk(nested)

    for g in appset.generators:
        walk(g)
    return min(found) if found else default


@dataclass
class AppSetController:
    kube: KubeClient
    namespace: str
    engine: Engine
    interval: float = DEFAULT_REQUEUE
    shards: Shards | None = None
    workers: int = 1
    appsets: dict[str, JSONDict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(base_delay=2.0, max_delay=300.0)
        self.appset_cache = ClusterCache(
            self.kube,
            label_selector="",
            namespace=self.namespace,
            on_change=self._appset_changed,
            on_synced=self._appsets_listed,
        )
        # Only the Applications some ApplicationSet labelled: their changes update
        # its status, their deletion makes it look again.
        self.app_cache = ClusterCache(
            self.kube,
            label_selector=APPSET_LABEL,
            namespace=self.namespace,
            on_change=self._app_changed,
        )
        self._generation: dict[str, int] = {}
        #: names whose next pass is a whole reconcile (not only their status)
        self._full: set[str] = set()
        self._next_full: dict[str, float] = {}
        self.synced = asyncio.Event()
        #: whole passes run, in all and by ApplicationSet (what tests and metrics read)
        self.passes = 0
        self.passes_by: dict[str, int] = {}

    # ------------------------------------------------------------------ inputs

    def _appset_changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        name = key[3]
        if deleted:
            self.appsets.pop(name, None)
            self._generation.pop(name, None)
            self._full.discard(name)
            self._next_full.pop(name, None)
            return
        self.appsets[name] = obj
        meta = obj.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        if generation != self._generation.get(name) or meta.get("deletionTimestamp"):
            self._generation[name] = generation
            self._full.add(name)
            self.queue.add(name)

    def _appsets_listed(self, group_kind: tuple[str, str]) -> None:
        seen = set()
        for obj in self.appset_cache.items(APPSET_GROUP, APPSET_KIND):
            name = str((obj.get("metadata") or {}).get("name", ""))
            seen.add(name)
            self._appset_changed((APPSET_GROUP, APPSET_KIND, self.namespace, name), obj, False)
        for gone in set(self.appsets) - seen:
            self._appset_changed((APPSET_GROUP, APPSET_KIND, self.namespace, gone), {}, True)
        self.synced.set()

    def _app_changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        owner = str(((obj.get("metadata") or {}).get("labels") or {}).get(APPSET_LABEL, ""))
        if owner not in self.appsets:
            return
        if deleted:
            # Deleted by someone else: the next pass makes it again (or, when this
            # controller deleted it, finds nothing to do).
            self._full.add(owner)
        self.queue.add(owner)

    def membership_changed(self) -> None:
        for name in self.appsets:
            self._full.add(name)
            self.queue.add(name)

    # ------------------------------------------------------------------ processing

    def _owns(self, name: str) -> bool:
        return self.shards is None or self.shards.owns(name)

    def _context(self) -> GeneratorContext:
        return GeneratorContext(
            self.kube,
            self.namespace,
            self.engine.git_cache_dir,
            credentials=self.engine.credentials,
        )

    async def process(self, name: str) -> None:
        obj = self.appsets.get(name)
        if obj is None or not self._owns(name):
            return
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            if APPSET_FINALIZER in (meta.get("finalizers") or []):
                await finalize_appset(self.engine, appset_for_deletion(obj))
            return
        try:
            appset = parse_appset(obj)
        except UserInputError as e:
            # Nothing to do until the spec changes (which queues it again).
            log.warning("event=appset_invalid appset=%s error=%s", name, e)
            await self._write(obj, appset_invalid_spec_status(str(e)))
            return
        written = await set_appset_finalizer(self.kube, obj, present=True)
        if written is not None:
            obj = self.appsets[name] = written
            appset = parse_appset(obj)
        now = time.monotonic()
        if name in self._full or now >= self._next_full.get(name, 0.0):
            await self._reconcile(name, obj, appset)
        else:
            await self._refresh_status(obj, appset)

    async def _reconcile(self, name: str, obj: JSONDict, appset: ApplicationSet) -> None:
        self._full.discard(name)
        started = time.monotonic()
        outcome = await reconcile_appset(appset, self._context(), self.engine)
        self.passes += 1
        self.passes_by[name] = self.passes_by.get(name, 0) + 1
        await self._write(obj, outcome.status)
        every = requeue_after(appset, self.interval)
        log.info(
            "event=appset_reconciled appset=%s created=%d updated=%d deleted=%d "
            "unchanged=%d kept=%d foreign=%d failed=%d error=%s seconds=%.2f",
            name,
            len(outcome.created),
            len(outcome.updated),
            len(outcome.deleted),
            len(outcome.unchanged),
            len(outcome.kept),
            len(outcome.foreign),
            len(outcome.failed),
            outcome.reason or "-",
            time.monotonic() - started,
        )
        if outcome.error or outcome.failed:
            # A generator that cannot reach git, a refused write: again, ever more slowly;
            # and at the latest at the next requeue.
            self._full.add(name)
            self.queue.add_after(name, min(self.queue.backoff(name), every))
            return
        self.queue.forget(name)
        self._next_full[name] = time.monotonic() + every
        self.queue.add_after(name, every)

    async def _refresh_status(self, obj: JSONDict, appset: ApplicationSet) -> None:
        """An owned Application changed: ``status.resources`` from the watch cache."""
        if not self.app_cache.watching(GROUP, KIND):
            # Not listed yet (or the watch broke): a whole pass lists them instead.
            self._full.add(appset.name)
            self.queue.add_after(appset.name, 1.0)
            return
        apps = [o for o in self.app_cache.items(GROUP, KIND) if appset_owns(appset, o)]
        resources = appset_resources(appset, apps)
        await self._write(obj, {"resources": resources, "resourcesCount": len(resources)})

    async def _write(self, obj: JSONDict, status: JSONDict) -> None:
        name = str((obj.get("metadata") or {}).get("name", ""))
        try:
            written = await write_appset_status(self.kube, obj, status)
        except ConflictError:
            self.queue.add(name)
            return
        if written is not None and name in self.appsets:
            self.appsets[name] = written

    async def worker(self) -> None:
        while True:
            name = await self.queue.get()
            try:
                await self.process(name)
            except ApiUnavailableError as e:
                delay = max(e.retry_after, min(self.queue.backoff(name), 10.0))
                log.warning("event=api_unavailable appset=%s retry_in=%.0f", name, delay)
                self._full.add(name)
                self.queue.add_after(name, delay)
            except GitmoorError as e:
                delay = self.queue.backoff(name)
                log.warning(
                    "event=appset_process_failed appset=%s error=%s retry_in=%.0f", name, e, delay
                )
                self._full.add(name)
                self.queue.add_after(name, delay)
            except Exception:
                delay = self.queue.backoff(name)
                log.exception("event=appset_process_crashed appset=%s retry_in=%.0f", name, delay)
                self._full.add(name)
                self.queue.add_after(name, delay)
            finally:
                self.queue.done(name)

    # ------------------------------------------------------------------ lifecycle

    async def watch(self) -> None:
        """Watch the ApplicationSets and their Applications. Until the
        ApplicationSet kind can be listed (its CRD not installed, no RBAC for it)
        it tries again, at most a minute apart, and says so once: a controller
        without ApplicationSets runs as before."""
        ref = ObjectRef(APPSET_GROUP, APPSET_VERSION, APPSET_KIND, self.namespace, "-")
        delay, warned = 1.0, False
        while not await self.appset_cache.ensure(ref):
            if not warned:
                log.warning(
                    "event=watch_failed resource=applicationsets retry_in=%.0f "
                    "hint=install_the_ApplicationSet_CRD",
                    delay,
                )
                warned = True
            self.kube.invalidate_discovery()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        app_ref = ObjectRef(GROUP, VERSION, KIND, self.namespace, "-")
        while not await self.app_cache.ensure(app_ref):
            log.warning("event=watch_failed resource=applications retry_in=5")
            await asyncio.sleep(5.0)
        # Status refreshes need the owned apps listed: look at every appset again.
        for name in self.appsets:
            self.queue.add(name)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        tasks = [asyncio.create_task(self.watch(), name="watch applicationsets")]
        if self.shards is not None:
            # No pass before this replica holds its Lease (the Application loop takes
            # it): until then it would think it owns every ApplicationSet.
            self.shards.subscribe(self.membership_changed)
            await wait_ready(self.shards.ready, stop)
        tasks += [
            asyncio.create_task(self.worker(), name=f"appset worker {i}")
            for i in range(self.workers)
        ]
        try:
            await run_until_stopped(tasks, stop)
        finally:
            self.queue.close()
            await self.appset_cache.aclose()
            await self.app_cache.aclose()
