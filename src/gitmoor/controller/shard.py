"""Sharing apps between controller replicas, with one Lease per replica.

Each replica holds a ``coordination.k8s.io/v1`` Lease named
``gitmoor-controller-<id>`` in the apps namespace and renews it every
``renew`` seconds. The live replicas are those whose lease has not expired;
each app belongs to the live replica with the highest rendezvous hash of
(app, replica), so adding or losing a replica moves only the apps it gains or
held, and a killed replica's apps are taken over within the lease duration
(Argo CD shards clusters by a hash in the same spirit; client-go's leader
election uses the same Lease object and fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from typing import TYPE_CHECKING

from gitmoor.kube import ConflictError, NotFoundError
from gitmoor.model import GitmoorError, ObjectRef

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.controller.shard")

LEASE_PREFIX = "gitmoor-controller-"


def owner_of(app: str, replicas: list[str]) -> str | None:
    """The replica that owns ``app``: highest rendezvous hash, stable under membership changes."""
    if not replicas:
        return None
    return max(replicas, key=lambda r: hashlib.sha256(f"{app}\0{r}".encode()).digest())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


class Shards:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        identity: str,
        *,
        lease_seconds: int = 15,
        renew: float = 5.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.kube, self.namespace, self.identity = kube, namespace, identity
        self.lease_seconds, self.renew = lease_seconds, renew
        #: told when the live replicas change: the Application loop and the
        #: ApplicationSet loop each re-check what they own
        self._listeners: list[Callable[[], None]] = [on_change] if on_change is not None else []
        self.replicas: list[str] = [identity]
        self.ready = asyncio.Event()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever the live replicas change."""
        self._listeners.append(listener)

    @property
    def lease_name(self) -> str:
        return LEASE_PREFIX + self.identity

    def owns(self, app: str) -> bool:
        return owner_of(app, self.replicas) == self.identity

    async def _renew_own(self) -> None:
        ref = ObjectRef("coordination.k8s.io", "v1", "Lease", self.namespace, self.lease_name)
        now = _micro(_now())
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.lease_name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/component": "gitmoor-controller"},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "renewTime": now,
            },
        }
        await self.kube.apply(body, ref=ref, force=True, field_manager="gitmoor-shard")

    async def _live(self) -> list[str]:
        ar = await self.kube.resource("coordination.k8s.io", "v1", "Lease")
        leases = await self.kube.list(
            ar, self.namespace, label_selector="app.kubernetes.io/component=gitmoor-controller"
        )
        now = _now()
        live = []
        for lease in leases.items:
            spec = lease.get("spec") or {}
            holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
            if not holder or not renewed:
                continue
            expires = _parse(renewed) + dt.timedelta(
                seconds=int(spec.get("leaseDurationSeconds") or 15)
            )
            if expires > now:
                live.append(str(holder))
        if self.identity not in live:
            live.append(self.identity)
        return sorted(live)

    async def step(self) -> None:
        await self._renew_own()
        live = await self._live()
        if live != self.replicas:
            log.info("event=shard_membership replicas=%s me=%s", ",".join(live), self.identity)
            self.replicas = live
            for listener in self._listeners:
                listener()
        self.ready.set()

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except (GitmoorError, ConflictError) as e:
                log.warning("event=lease_renew_failed error=%s", e)
            await asyncio.sleep(self.renew)

    async def release(self) -> None:
        """Give up the lease at shutdown, so the others take over at once."""
        ref = ObjectRef("coordination.k8s.io", "v1", "Lease", self.namespace, self.lease_name)
        with contextlib.suppress(GitmoorError, NotFoundError):
            await self.kube.delete(ref)
