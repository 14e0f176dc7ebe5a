"""A watch-based cache of the live objects gitmoor manages in one cluster.

Each resource type is listed once and then watched (with bookmarks, resuming
from the last resourceVersion; a 410 Gone relists), cluster-wide, filtered to
objects that carry gitmoor's instance label, so comparing an unchanged app
costs no API request and a change to a managed object is seen within a
second (the design of Argo CD's cluster cache and of client-go informers).

Objects without the label (not yet adopted) are not cached; a miss is
answered by the caller with a GET, which is the rare case at steady state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitmoor.kube.errors import ApiError
from gitmoor.model import GitmoorError, JSONDict, ObjectRef

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube.client import APIResource, KubeClient

log = logging.getLogger("gitmoor.kube.cache")

#: (group, kind, namespace, name): one object whatever the version it is read at
Key = tuple[str, str, str, str]


def key_of(ref: ObjectRef) -> Key:
    return ref.key


@dataclass
class _Informer:
    resource: APIResource
    objects: dict[Key, JSONDict]
    synced: asyncio.Event
    task: asyncio.Task[None] | None = None
    resource_version: str = ""
    #: the list was refused (403): callers read this kind with GETs instead
    forbidden: bool = False
    #: the watch broke: until a relist, what is held may be old
    stale: bool = False


class ClusterCache:
    def __init__(
        self,
        kube: KubeClient,
        *,
        label_selector: str = "app.kubernetes.io/instance",
        on_change: Callable[[Key, JSONDict, bool], None] | None = None,
        watch_timeout: int = 300,
        namespace: str = "",
        on_synced: Callable[[tuple[str, str]], None] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.label_selector = label_selector
        self.on_change = on_change
        #: called with (group, kind) each time a list of that kind is in (the first
        #: and every relist), after ``on_change`` has been told what the relist
        #: changed: a consumer that mirrors the cache reconciles its copy with
        #: ``items()`` here, as a client-go informer's ``HasSynced`` lets it
        self.on_synced = on_synced
        self.watch_timeout = watch_timeout
        self._informers: dict[tuple[str, str], _Informer] = {}
        self._lock = asyncio.Lock()
        self.relists = 0

    # ------------------------------------------------------------------ reads

    def size(self) -> int:
        return sum(len(i.objects) for i in self._informers.values())

    def watched(self) -> list[tuple[str, str]]:
        return sorted(self._informers)

    def synced(self, group: str, kind: str) -> bool:
        inf = self._informers.get((group, kind))
        return inf is not None and inf.synced.is_set()

    def watching(self, group: str, kind: str) -> bool:
        """Are changes of this kind seen as they happen (listed, watched, allowed)?"""
        inf = self._informers.get((group, kind))
        return inf is not None and inf.synced.is_set() and not inf.stale and not inf.forbidden

    def items(self, group: str, kind: str) -> list[JSONDict]:
        inf = self._informers.get((group, kind))
        return list(inf.objects.values()) if inf is not None else []

    def get(self, ref: ObjectRef) -> tuple[bool, JSONDict | None]:
        """(known, object): ``known`` is False when the type is not (yet) cached,
        or the object is not in the cache — which may mean it lacks gitmoor's label."""
        inf = self._informers.get((ref.group, ref.kind))
        if inf is None or not inf.synced.is_set() or inf.stale or inf.forbidden:
            return False, None
        obj = inf.objects.get(key_of(ref))
        return obj is not None, obj

    def last_known(self, ref: ObjectRef) -> JSONDict | None:
        """The object as last listed or watched, even while the watch is broken (a
        reader that would rather show a second-old state than nothing: the API
        server's settings and app pages). None: not seen, or deleted."""
        inf = self._informers.get((ref.group, ref.kind))
        return inf.objects.get(key_of(ref)) if inf is not None else None

    # ------------------------------------------------------------------ watching

    async def ensure(self, ref: ObjectRef, *, wait: float = 30.0) -> bool:
        """Start caching the type of ``ref`` if needed; True once its first list is in."""
        gk = (ref.group, ref.kind)
        async with self._lock:
            inf = self._informers.get(gk)
            if inf is None:
                try:
                    ar = await self.kube.resource_for(ref)
                except GitmoorError:
                    return False
                if "watch" not in ar.verbs or "list" not in ar.verbs:
                    return False
                inf = _Informer(ar, {}, asyncio.Event())
                self._informers[gk] = inf
                inf.task = asyncio.create_task(self._run(inf), name=f"watch {ar.plural}")
        if inf.forbidden:
            return False
        try:
            await asyncio.wait_for(inf.synced.wait(), timeout=wait)
        except TimeoutError:
            return False
        return not inf.forbidden

    async def _relist(self, inf: _Informer) -> None:
        listed = await self.kube.list(
            inf.resource, self.namespace, label_selector=self.label_selector
        )
        fresh: dict[Key, JSONDict] = {}
        for obj in listed.items:
            fresh[self._key(inf, obj)] = obj
        old = inf.objects
        inf.objects = fresh
        inf.resource_version = listed.resource_version
        inf.stale = False
        self.relists += 1
        if self.on_change is not None and inf.synced.is_set():
            for k in old.keys() - fresh.keys():
                self.on_change(k, old[k], True)
            for k, obj in fresh.items():
                prev = old.get(k)
                if prev is None or _rv(prev) != _rv(obj):
                    self.on_change(k, obj, False)
        inf.synced.set()
        if self.on_synced is not None:
            self.on_synced((inf.resource.group, inf.resource.kind))

    @staticmethod
    def _key(inf: _Informer, obj: JSONDict) -> Key:
        meta = obj.get("metadata") or {}
        return (
            inf.resource.group,
            inf.resource.kind,
            meta.get("namespace", ""),
            meta.get("name", ""),
        )

    async def _run(self, inf: _Informer) -> None:
        delay = 1.0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist(inf)
                    need_list = False
                async for ev in self.kube.watch(
                    inf.resource,
                    self.namespace,
                    resource_version=inf.resource_version,
                    label_selector=self.label_selector,
                    timeout_seconds=self.watch_timeout,
                ):
                    if ev.type == "ERROR":
                        # 410 Gone: our resourceVersion is too old; start over.
                        need_list = True
                        break
                    rv = _rv(ev.object)
                    if rv:
                        inf.resource_version = rv
                    if ev.type == "BOOKMARK":
                        continue
                    k = self._key(inf, ev.object)
                    ev.object.setdefault("apiVersion", inf.resource.api_version)
                    ev.object.setdefault("kind", inf.resource.kind)
                    deleted = ev.type == "DELETED"
                    if deleted:
                        inf.objects.pop(k, None)
                    else:
                        inf.objects[k] = ev.object
                    if self.on_change is not None:
                        # The object goes along even when deleted: its tracking id
                        # says which app lost it.
                        self.on_change(k, ev.object, deleted)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except GitmoorError as e:
                if isinstance(e, ApiError) and e.code == 403:
                    # Namespaced RBAC cannot allow a cluster-wide list: stop waiting
                    # for it, let callers GET what they need, look again much later.
                    log.warning(
                        "event=watch_forbidden resource=%s retry_in=600 error=%s",
                        inf.resource.plural,
                        e,
                    )
                    inf.forbidden = True
                    inf.objects = {}
                    inf.synced.set()
                    await asyncio.sleep(600)
                    inf.forbidden = False
                    inf.synced.clear()
                    need_list = True
                    continue
                # Serve nothing from memory until a relist: callers GET meanwhile.
                inf.stale = True
                need_list = True
                log.warning(
                    "event=watch_error resource=%s error=%s retry_in=%.0f",
                    inf.resource.plural,
                    e,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except Exception:
                inf.stale = True
                log.exception("event=watch_crashed resource=%s", inf.resource.plural)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                need_list = True

    async def aclose(self) -> None:
        for inf in self._informers.values():
            if inf.task is not None:
                inf.task.cancel()
        for inf in self._informers.values():
            if inf.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await inf.task


def _rv(obj: JSONDict) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("resourceVersion", ""))
