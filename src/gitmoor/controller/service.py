"""The controller process: the reconcile loop plus what surrounds it.

- destination clusters through the registry of cluster Secrets;
- Kubernetes Events on Applications, Prometheus metrics and notifications,
  fed from the loop's hooks (none of them can block or break reconciliation:
  events and notifications are sent from background tasks);
- an HTTP server (``--listen``) with ``POST /api/webhook`` (Git push events),
  ``GET /metrics`` and ``GET /healthz``;
- optional sharding between replicas (``--replica-id``), one Lease each;
- the ApplicationSet controller (``appsets``), sharded the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI

from gitmoor import __version__
from gitmoor.controller.appsets import AppSetController
from gitmoor.controller.events import EventRecorder
from gitmoor.controller.loop import Controller
from gitmoor.controller.metrics import Metrics
from gitmoor.controller.notify import Notification, Notifier
from gitmoor.controller.shard import Shards
from gitmoor.controller.webhook import (
    PushEvent,
    WebhookSecrets,
    load_secrets_from_secret,
    path_changed,
    touches,
    webhook_router,
)
from gitmoor.engine import app_identity
from gitmoor.model import GitmoorError, ObjectRef
from gitmoor.model.application import Application, parse_application
from gitmoor.rollouts.controller import run_rollouts
from gitmoor.settings.clusters import ClusterRegistry

if TYPE_CHECKING:
    from gitmoor.controller.ratelimit import RefreshLimits
    from gitmoor.engine import SyncResult
    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.controller")

#: The Secret with webhook secrets (keys as in Argo CD's argocd-secret).
WEBHOOK_SECRET = "gitmoor-secret"


class Observers:
    """The loop's hooks: metrics at once, events and notifications in the background."""

    def __init__(
        self,
        metrics: Metrics,
        events: EventRecorder,
        notifier: Notifier,
        apps: dict[str, dict[str, Any]],
    ) -> None:
        self.metrics, self.events, self.notifier, self.apps = metrics, events, notifier, apps
        self._info: dict[str, Application] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self, trigger: str, app: Application, revision: str, message: str) -> None:
        st = app.status
        self.notifier.notify(
            Notification(
                trigger=trigger,
                app=app.name,
                namespace=app.namespace,
                revision=revision,
                message=message,
                health=str((st.get("health") or {}).get("status", "")),
                sync=str((st.get("sync") or {}).get("status", "")),
                app_key=app_identity(app),
            )
        )

    def reconciled(self, app: Application, seconds: float, outcome: str) -> None:
        self.metrics.observe_reconcile(app.name, app.namespace, seconds, outcome)

    def sync_started(self, app: Application, revision: str, reason: str) -> None:
        self._spawn(
            self.events.record(
                app, "OperationStarted", f"sync of {revision[:12]} started ({reason})"
            )
        )

    def sync_finished(self, app: Application, result: SyncResult) -> None:
        self.metrics.observe_sync(app.name, app.namespace, result.phase.value)
        ok = result.ok
        self._spawn(
            self.events.record(
                app,
                "OperationCompleted",
                # A sync that failed before it resolved a commit (the render was
                # refused) has no revision to name.
                f"sync {result.phase.value}"
                + (f" at {result.revision[:12]}" if result.revision else "")
                + f": {result.message}",
                type="Normal" if ok else "Warning",
            )
        )
        self._notify(
            "sync-succeeded" if ok else "sync-failed", app, result.revision, result.message
        )

    def status_changed(self, before: Application, after: Application) -> None:
        old_h = (before.status.get("health") or {}).get("status")
        new = after.status.get("health") or {}
        if new.get("status") and new.get("status") != old_h:
            kind: Literal["Normal", "Warning"] = (
                "Warning" if new["status"] == "Degraded" else "Normal"
            )
            msg = f"health {old_h or 'Unknown'} -> {new['status']}" + (
                f": {new['message']}" if new.get("message") else ""
            )
            self._spawn(self.events.record(after, "HealthStatusChanged", msg, type=kind))
            if new["status"] == "Degraded":
                rev = str((after.status.get("sync") or {}).get("revision", ""))
                self._notify("health-degraded", after, rev, str(new.get("message", "")))
        old_s = (before.status.get("sync") or {}).get("status")
        new_s = (after.status.get("sync") or {}).get("status")
        if new_s and new_s != old_s:
            self._spawn(
                self.events.record(
                    after, "SyncStatusChanged", f"sync {old_s or 'Unknown'} -> {new_s}"
                )
            )
        conds = {c.get("type"): c.get("message") for c in after.status.get("conditions") or []}
        old_conds = {c.get("type"): c.get("message") for c in before.status.get("conditions") or []}
        # InvalidSpecError: the app's project refuses it (gitmoor.engine.projects).
        for ctype in ("ComparisonError", "InvalidSpecError"):
            if ctype in conds and conds != old_conds:
                self._spawn(self.events.record(after, ctype, str(conds[ctype]), type="Warning"))
        # Only the app that changed is parsed: parsing every app on every reconcile
        # made a round of refreshes quadratic (7 ms per reconcile at 200 apps).
        self._info[after.name] = after
        for gone in set(self._info) - set(self.apps):  # deleted apps leave the gauge
            del self._info[gone]
        self.metrics.set_app_info(self._info.values())

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)


def _parsed(apps: dict[str, dict[str, Any]]) -> list[Application]:
    out = []
    for obj in apps.values():
        with contextlib.suppress(GitmoorError):
            out.append(parse_application(obj))
    return out


def refresh_plan(apps: list[Application], event: PushEvent) -> tuple[list[str], list[str]]:
    """The apps a push refreshes, and those of them that go first (the priority lane).

    Apps whose files the push changed go first: the change a user waits for is
    applied before the routine refresh of every other app on the branch. Only
    a verified push may say which files changed: a forged payload listing
    chosen paths could otherwise hold chosen apps at the head of the queue.
    """
    touched = [a for a in apps if touches(a, event)]
    first = [a.name for a in touched if path_changed(a, event)] if event.verified else []
    return [a.name for a in touched], first


def build_http(
    controller: Controller,
    metrics: Metrics,
    kube: KubeClient,
    *,
    webhook_allow_unsigned: bool = False,
    webhook_limits: RefreshLimits | None = None,
) -> FastAPI:
    api = FastAPI(
        title="gitmoor controller",
        version=__version__,
        description="Git push webhooks, Prometheus metrics and a health check.",
    )

    async def on_push(event: PushEvent) -> int:
        names, hot = refresh_plan(_parsed(controller.apps), event)
        n = controller.refresh_apps(names, first=hot)
        log.info(
            "event=webhook_push provider=%s ref=%s apps=%d first=%d verified=%s",
            event.provider,
            event.ref,
            n,
            len(hot),
            event.verified,
        )
        return n

    async def secrets() -> WebhookSecrets:
        ref = ObjectRef("", "v1", "Secret", controller.namespace, WEBHOOK_SECRET)
        # A missing Secret (None) means "no secrets configured"; an error reading it
        # must not (fail closed: the router answers 503).
        obj = await kube.get(ref)
        data = (obj or {}).get("data") or {}
        return load_secrets_from_secret(
            {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        )

    api.include_router(
        webhook_router(
            on_push, secrets, allow_unsigned=webhook_allow_unsigned, limits=webhook_limits
        )
    )
    api.include_router(metrics.router())

    @api.get("/healthz", summary="Liveness: the controller's event loop answers.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api


async def serve_controller(
    kube: KubeClient,
    namespace: str,
    *,
    interval: float,
    workers: int,
    listen: str = "",
    replica_id: str = "",
    lease_seconds: int = 15,
    self_heal_debounce: float = 5.0,
    webhook_allow_unsigned: bool = False,
    webhook_limits: RefreshLimits | None = None,
    stop: asyncio.Event | None = None,
    rollouts: bool = True,
    rollouts_takeover: bool = False,
) -> None:
    """Run the controller until ``stop`` is set (or forever). ``rollouts`` also runs
    the Rollout and AnalysisRun controllers (``gitmoor.rollouts``, issue 16);
    ``rollouts_takeover`` runs them even over Argo Rollouts' own CRDs."""
    import uvicorn

    clusters = ClusterRegistry(kube, namespace=namespace)
    metrics = Metrics()
    metrics.track_kube_client("in-cluster", kube)
    events = EventRecorder(kube, instance=replica_id or None)
    notifier = Notifier()
    try:
        await notifier.load(kube, namespace)
    except GitmoorError as e:
        log.warning("event=notifications_disabled error=%s", e)
    shards = None
    if replica_id:
        shards = Shards(
            kube, namespace, replica_id, lease_seconds=lease_seconds, renew=lease_seconds / 3
        )
    ctrl = Controller(
        kube,
        namespace,
        interval=interval,
        workers=workers,
        self_heal_debounce=self_heal_debounce,
        clusters=clusters,
        shards=shards,
    )
    # ApplicationSets in the same process, through the same engine (credentials from
    # its watch cache, the same git cache) and the same shards.
    appsets = AppSetController(kube, namespace, ctrl.engine, interval=interval, shards=shards)
    observers = Observers(metrics, events, notifier, ctrl.apps)
    ctrl.engine.on_git = lambda repo, request, seconds, failed: metrics.observe_git(
        repo, seconds, failed, request=request
    )
    ctrl.hooks = observers
    metrics.set_queue_depth_source(lambda: len(ctrl.queue))
    metrics.set_cache_size_source(
        lambda: {k or "in-cluster": c.size() for k, c in ctrl.caches.items()}
    )

    background = [asyncio.create_task(notifier.run(), name="notifier")]
    server = None
    if listen:
        host, _, port = listen.rpartition(":")
        config = uvicorn.Config(
            build_http(
                ctrl,
                metrics,
                kube,
                webhook_allow_unsigned=webhook_allow_unsigned,
                webhook_limits=webhook_limits,
            ),
            host=host or "127.0.0.1",
            port=int(port),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        # The controller owns SIGTERM/SIGINT (below): uvicorn must not take them
        # and re-raise them, which killed the process before its cleanup ran.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        background.append(asyncio.create_task(server.serve(), name="http"))
        log.info("event=http_listening address=%s routes=/api/webhook,/metrics,/healthz", listen)
    if stop is None:
        # SIGTERM (a pod's shutdown) and Ctrl-C end the loop gracefully: the Lease is
        # released (the other replicas take over at once), Events and queued
        # notifications are drained, watches closed.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    try:
        loops = [ctrl.run(stop), appsets.run(stop)]
        if rollouts:
            # Rollouts (blueGreen, canary) and their AnalysisRuns, in the same process;
            # a refusal (foreign CRDs) leaves the Application controller running.
            loops.append(run_rollouts(kube, stop, takeover=rollouts_takeover))
        await asyncio.gather(*loops)
        log.info("event=controller_stopped")
    finally:
        if server is not None:
            server.should_exit = True
        await observers.drain()
        with contextlib.suppress(Exception):
            await notifier.drain(5)
        for t in background:
            t.cancel()
        for t in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await clusters.aclose()


def default_replica_id() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()
