"""Kubernetes Events on Applications, so ``kubectl describe application`` tells the story.

Argo CD's application controller records Events on the Application for what it
does and sees (``OperationStarted``, ``OperationCompleted``, ``ResourceUpdated``,
``SyncStatusChanged``/``HealthStatusChanged``…); gitmoor's callers pass the same
reasons. An Event is a core/v1 ``Event`` in the app's namespace whose
``involvedObject`` is the Application.

Three rules shape this module:

- **Never raise.** An Event is a side channel; a reconcile that fails because the
  API refused an Event (quota, RBAC, a namespace being deleted) would be worse
  than a missing Event. Failures are logged and dropped, and each ``record`` is
  bounded by a timeout so a slow API server delays a reconcile only so much.
- **Aggregate repeats.** The same (app, type, reason, message) seen again within
  10 minutes PATCHes the existing Event's ``count`` and ``lastTimestamp``
  instead of creating another one, like client-go's ``EventCorrelator`` (its
  aggregation window is 10 minutes, its cache 4096 keys). A controller that
  refreshes every three minutes would otherwise write an Event per app per
  refresh. When the Event is gone (the API server's ``--event-ttl``, one hour
  by default, removed it) a new one is created.
- **Only what the caller says, scrubbed.** The message is the caller's; nothing
  from the Application or the live objects is added. Callers pass text that
  may echo the API server or a tool (a condition's message, an apply error
  quoting a field), so every message goes through the one redaction policy
  (:func:`gitmoor.engine.scrub_message`: each Secret value, and each value of a
  ``redactions`` field, that the app's Redactors have seen, plain or base64;
  never another app's, which would make Events an oracle for other apps'
  values) before it is aggregated or written. Argo CD writes such messages as
  they are; issue 13 wants no plaintext in any Event.

The Event carries both the legacy fields (``source.component``, ``count``,
``first/lastTimestamp``) that ``kubectl get events`` shows and the
events.k8s.io ones (``eventTime``, ``reportingComponent``,
``reportingInstance``, ``action``); with ``eventTime`` set, the API server
requires the latter, and limits ``reason``/``action`` to 128 and ``message``
to 1024 bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gitmoor.engine import scrub_message
from gitmoor.kube import NotFoundError
from gitmoor.model import GitmoorError, ObjectRef
from gitmoor.model.application import API_VERSION, KIND

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application

log = logging.getLogger("gitmoor.controller.events")

EventType = Literal["Normal", "Warning"]

#: client-go's defaultAggregateIntervalInSeconds.
AGGREGATE_WINDOW = 600.0
#: client-go's maxLruCacheEntries.
CACHE_ENTRIES = 4096
# Limits of the API server's Event validation (pkg/apis/core/validation/events.go).
_REASON_LIMIT = 128
_ACTION_LIMIT = 128
_MESSAGE_LIMIT = 1024
_INSTANCE_LIMIT = 128
_NAME_LIMIT = 253

_Key = tuple[str, str, str, str, str, str]


@dataclass(slots=True)
class _Seen:
    name: str
    count: int
    last: float  # the recorder's clock, not wall time


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes (the API server counts bytes), never mid-character."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


class _KeyLocks:
    """One lock per key, dropped when nobody holds or waits for it.

    Two workers recording the same event at once must not both create it;
    unrelated events must not wait for each other.
    """

    def __init__(self) -> None:
        self._locks: dict[_Key, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: _Key) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class EventRecorder:
    """Records Events on Applications; one per controller process.

    ``instance`` (``reportingInstance``) defaults to ``<component>-<hostname>``,
    the pod name in a cluster, so that Events of several replicas can be told
    apart. ``clock`` is the monotonic clock of the aggregation window.
    """

    def __init__(
        self,
        kube: KubeClient,
        component: str = "gitmoor-controller",
        *,
        instance: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.component = component
        self.instance = _truncate(
            instance or f"{component}-{socket.gethostname()}", _INSTANCE_LIMIT
        )
        self.timeout = timeout
        self._clock = clock
        self._seen: OrderedDict[_Key, _Seen] = OrderedDict()
        self._locks = _KeyLocks()

    async def record(
        self,
        app: Application,
        reason: str,
        message: str,
        *,
        type: EventType = "Normal",
        action: str = "",
    ) -> None:
        """Record an Event on ``app``; ``action`` (events.k8s.io) defaults to ``reason``.

        Never raises (cancellation aside): an Event must never break reconciliation.
        """
        try:
            # Scrubbed before the aggregation key is made, so a repeat aggregates
            # with the Event already written, whose message was scrubbed too.
            message = scrub_message(app, message)
            await asyncio.wait_for(
                self._record(app, reason, message, type, action or reason), self.timeout
            )
        except Exception as e:
            detail = str(e) if isinstance(e, GitmoorError) else _type_name(e)
            log.warning(
                "event=event_record_failed app=%s/%s reason=%s type=%s error=%s",
                app.namespace,
                app.name,
                reason,
                type,
                detail,
            )

    async def _record(
        self, app: Application, reason: str, message: str, type_: EventType, action: str
    ) -> None:
        reason = _truncate(reason, _REASON_LIMIT)
        message = _truncate(message, _MESSAGE_LIMIT)
        key: _Key = (app.namespace, app.name, app.uid, type_, reason, message)
        async with self._locks.hold(key):
            now = self._clock()
            seen = self._seen.get(key)
            if seen is not None and now - seen.last <= AGGREGATE_WINDOW:
                try:
                    await self.kube.merge_patch(
                        self._ref(app.namespace, seen.name),
                        {"count": seen.count + 1, "lastTimestamp": _timestamp()},
                    )
                except NotFoundError:
                    pass  # expired (--event-ttl) or deleted: start a new Event below
                else:
                    seen.count += 1
                    seen.last = now
                    self._seen.move_to_end(key)
                    return
            event = self._event(app, reason, message, type_, _truncate(action, _ACTION_LIMIT))
            created = await self.kube.create(event)
            self._seen[key] = _Seen(created["metadata"]["name"], 1, now)
            self._seen.move_to_end(key)
            while len(self._seen) > CACHE_ENTRIES:
                self._seen.popitem(last=False)

    @staticmethod
    def _ref(namespace: str, name: str) -> ObjectRef:
        return ObjectRef("", "v1", "Event", namespace, name)

    def _event(
        self, app: Application, reason: str, message: str, type_: EventType, action: str
    ) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        involved: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": app.name,
            "namespace": app.namespace,
        }
        if app.uid:
            involved["uid"] = app.uid
        if app.resource_version:
            involved["resourceVersion"] = app.resource_version
        # client-go names Events "<object>.<unix nanoseconds in hex>".
        suffix = f".{time.time_ns():x}"
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": app.name[: _NAME_LIMIT - len(suffix)] + suffix,
                "namespace": app.namespace,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "action": action,
        }


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _type_name(e: BaseException) -> str:
    """An exception as a log value: its class, not its text (which may quote a payload)."""
    return type(e).__name__


__all__ = ["AGGREGATE_WINDOW", "EventRecorder", "EventType"]
