"""`gitmoor controller`: keeps every Application moored to Git.

How an app gets processed (one worker at a time per app, see ``queue``):

- on a change of its spec or its requested ``operation`` (both bump
  ``metadata.generation``; status writes do not, so the controller never wakes
  itself up), seen through a watch of Applications;
- on its own interval (``spec.syncPolicy.refreshInterval``, default 3 minutes,
  with 10 % jitter; at least 1 s: a smaller one, like a retry backoff under
  100 ms, is refused by ``parse_application`` and shown on the app's status
  as an ``InvalidSpecError`` condition, as Argo CD names a spec it cannot use);
- at once on a Git push (webhook) that touches its repository and revision;
- within a second of a change to any object it manages, seen through the
  watch cache of each destination cluster (``kube.cache``).

Processing: run a requested operation; refresh (compare with the watch cache
and the dry-run cache, so an unchanged app costs no API request); then the
automation of Argo CD's ``syncPolicy.automated``:

- a new commit is synced at once (prune and allowEmpty as the policy says);
- drift at the commit last synced is reverted only with ``selfHeal``, and only
  ``self_heal_debounce`` seconds (5 s, Argo CD's default) after the previous sync;
- a sync that failed at a commit is retried only under ``syncPolicy.retry``
  (limit, backoff duration × factor^n up to maxDuration), never in a loop.

Automated syncs take the fields they declare from other field managers
(server-side apply with force), as Flux does: otherwise ``kubectl scale``
would make the drift it creates impossible to heal.

State lives in the Application: an interrupted operation (its ``operation``
still set) runs again after a restart; an automated sync that was cut off is
found OutOfSync and synced again. Nothing is deleted that Git declares, and
prune acts only on objects with the app's tracking id (``engine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gitmoor.controller.queue import WorkQueue
from gitmoor.engine import store
from gitmoor.engine.app import Engine
from gitmoor.engine.compare import DryRunCache
from gitmoor.engine.repos import credentials_from_secrets
from gitmoor.engine.sync import Phase, SyncOptions, SyncResult
from gitmoor.kube import ApiUnavailableError
from gitmoor.kube.cache import ClusterCache, Key
from gitmoor.model import GitmoorError, JSONDict, ObjectRef, UserInputError
from gitmoor.model.application import (
    GROUP,
    KIND,
    REPO_SECRET_LABEL,
    TRACKING_ANNOTATION,
    VERSION,
    Application,
    parse_application,
)
from gitmoor.model.project import AppProject, parse_appproject
from gitmoor.settings import get_project, project_ref

if TYPE_CHECKING:
    from gitmoor.controller.shard import Shards
    from gitmoor.engine.app import ClusterResolver
    from gitmoor.engine.compare import Comparison
    from gitmoor.kube import KubeClient
    from gitmoor.source import RepoCredentials

log = logging.getLogger("gitmoor.controller")

DEFAULT_INTERVAL = 180.0
#: a Running operation whose heartbeat is older than this was cut off (the
#: engine renews it every 10 s while a sync runs)
STALE_RUNNING = 45.0
SELF_HEAL_DEBOUNCE = 5.0


class Hooks(Protocol):
    """What the controller tells observers (metrics, events, notifications)."""

    def reconciled(self, app: Application, seconds: float, outcome: str) -> None: ...
    def sync_started(self, app: Application, revision: str, reason: str) -> None: ...
    def sync_finished(self, app: Application, result: SyncResult) -> None: ...
    def status_changed(self, before: Application, after: Application) -> None: ...


class _NoHooks:
    def reconciled(self, app: Application, seconds: float, outcome: str) -> None:
        return None

    def sync_started(self, app: Application, revision: str, reason: str) -> None:
        return None

    def sync_finished(self, app: Application, result: SyncResult) -> None:
        return None

    def status_changed(self, before: Application, after: Application) -> None:
        return None


@dataclass
class _AppState:
    """What the controller remembers of an app between passes (not persisted)."""

    generation: int = -1
    last_sync_at: float = 0.0


def _running_silence(app: Application) -> float | None:
    """Seconds since a Running operation last reported, or None when none runs."""
    op_state = app.status.get("operationState") or {}
    if op_state.get("phase") != Phase.RUNNING.value:
        return None
    stamp = op_state.get("heartbeatAt") or op_state.get("startedAt")
    if not stamp:
        return STALE_RUNNING
    try:
        at = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return STALE_RUNNING
    return max(0.0, (dt.datetime.now(dt.UTC) - at).total_seconds())


def _sync_options(app: Application, op: dict[str, Any]) -> SyncOptions:
    sync = op.get("sync") or {}
    auto = app.spec.sync_policy.automated
    only = None
    if sync.get("resources"):
        only = frozenset((r.get("group", ""), r["kind"], r["name"]) for r in sync["resources"])
    return SyncOptions.for_app(
        app,
        prune=bool(sync.get("prune", auto.prune if auto else False)),
        dry_run=bool(sync.get("dryRun", False)),
        # Absent: the app's choice (take the fields unless ForceConflicts=false).
        force_conflicts=(
            bool(sync["forceConflicts"]) if sync.get("forceConflicts") is not None else None
        ),
        only=only,
    )


@dataclass
class Controller:
    kube: KubeClient
    namespace: str
    interval: float = DEFAULT_INTERVAL
    workers: int = 4
    self_heal_debounce: float = SELF_HEAL_DEBOUNCE
    clusters: ClusterResolver | None = None
    shards: Shards | None = None
    hooks: Hooks = field(default_factory=_NoHooks)
    watch_cache: bool = True

    def __post_init__(self) -> None:
        self.queue = WorkQueue(base_delay=2.0, max_delay=300.0)
        self.engine = Engine(
            self.kube, namespace=self.namespace, clusters=self.clusters, dry_runs=DryRunCache()
        )
        # Repository credentials from a watch of their Secrets: no request per refresh.
        self.secrets = ClusterCache(
            self.kube, label_selector=f"{REPO_SECRET_LABEL}=repository", namespace=self.namespace
        )
        self.engine.credentials = self._credentials
        # AppProjects too: every refresh checks its app's project, without a GET.
        self.projects = ClusterCache(
            self.kube, label_selector="", namespace=self.namespace, on_change=self._project_changed
        )
        self.engine.projects = self._project
        self.apps: dict[str, JSONDict] = {}
        self.state: dict[str, _AppState] = {}
        self.caches: dict[str, ClusterCache] = self.engine.caches
        self.synced_apps = asyncio.Event()

    async def _credentials(self) -> list[RepoCredentials]:
        await self.secrets.ensure(ObjectRef("", "v1", "Secret", self.namespace, "-"))
        return credentials_from_secrets(self.secrets.items("", "Secret"))

    async def _project(self, name: str) -> AppProject | None:
        """The project from the watch cache; a GET where the kind cannot be watched
        (the CRD not installed yet, or no RBAC to list it)."""
        ref = project_ref(name, self.namespace)
        if await self.projects.ensure(ref):
            for obj in self.projects.items(ref.group, ref.kind):
                if (obj.get("metadata") or {}).get("name") == name:
                    return parse_appproject(obj)
            return None
        return await get_project(self.kube, name, self.namespace)

    def _project_changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        """A project changed: its apps are checked against it again now, so that a
        narrowed project stops its apps at once rather than at their next interval."""
        name = key[3]
        for app_name, app in self.apps.items():
            if ((app.get("spec") or {}).get("project") or "default") == name:
                self.queue.add(app_name)

    # ------------------------------------------------------------------ inputs

    def app_changed(self, obj: JSONDict, deleted: bool = False) -> None:
        name = obj.get("metadata", {}).get("name", "")
        if deleted:
            self.apps.pop(name, None)
            self.state.pop(name, None)
            return
        self.apps[name] = obj
        st = self.state.setdefault(name, _AppState())
        generation = int(obj.get("metadata", {}).get("generation") or 0)
        # Writing `operation` bumps the generation too; status writes do not.
        if generation != st.generation:
            st.generation = generation
            self.queue.add(name)

    def object_changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        """A managed object changed in a destination cluster: its app looks again."""
        ann = (obj.get("metadata") or {}).get("annotations") or {}
        tracking = ann.get(TRACKING_ANNOTATION, "")
        prefix = f"{self.namespace}_"
        if not tracking.startswith(prefix):
            return
        name = tracking[len(prefix) :].split(":", 1)[0]
        if name in self.apps:
            self.queue.add(name)

    def refresh_apps(self, names: list[str], *, first: list[str] | None = None) -> int:
        """Refresh these apps now (a webhook); ``first`` ahead of everything
        queued. The number queued."""
        n = 0
        for name in first or []:
            if name in self.apps:
                self.queue.add(name, first=True)
                n += 1
        for name in names:
            if name in self.apps and name not in (first or []):
                self.queue.add(name)
                n += 1
        return n

    def membership_changed(self) -> None:
        for name in self.apps:
            self.queue.add(name)

    # ------------------------------------------------------------------ processing

    def _owns(self, name: str) -> bool:
        return self.shards is None or self.shards.owns(name)

    async def _ensure_cache(self, app: Application) -> None:
        if not self.watch_cache:
            return
        cluster = app.spec.destination.name
        key = "" if cluster in ("", "in-cluster") else cluster
        dest = await self.engine.dest(app)
        current = self.caches.get(key)
        if current is not None and current.kube is not dest:
            # The cluster's credentials rotated (a new client): the old cache's
            # watches run on a closed client and would serve frozen objects.
            await self.caches.pop(key).aclose()
            current = None
        if current is None:
            self.caches[key] = ClusterCache(dest, on_change=self.object_changed)

    async def process(self, name: str) -> None:
        if name not in self.apps or not self._owns(name):
            return
        started = time.monotonic()
        try:
            app = parse_application(self.apps[name])
        except UserInputError as e:
            # Nothing to refresh until the spec changes (which bumps the
            # generation and queues the app again); the user reads why on status.
            await self._report_invalid_spec(self.apps[name], e)
            return
        with contextlib.suppress(GitmoorError):
            # An unknown destination cluster is reported by refresh as a condition.
            await self._ensure_cache(app)
        interval = app.spec.sync_policy.refresh_interval or self.interval
        outcome = "ok"
        try:
            op = app.operation
            running_for = _running_silence(app)
            if op:
                app = await self._run_operation(app, op)
            elif running_for is not None and running_for >= STALE_RUNNING:
                # A Running sync whose heartbeat stopped: cut off by a crash, a kill
                # or an outage (nothing runs it here: one worker per app).
                await self._resume_interrupted(app)
                app = parse_application(self.apps.get(name, app.raw))
            elif running_for is not None:
                # A sync in progress elsewhere (the CLI, another replica): leave it,
                # and look again once it should have reported.
                self.queue.add_after(name, STALE_RUNNING - running_for + 1)
                return
            before = app
            app, comparison = await self.engine.refresh(app)
            self.hooks.status_changed(before, app)
            if comparison is None:
                outcome = "comparison_error"
                self.queue.add_after(name, self.queue.backoff(name))
                return
            self.queue.forget(name)
            await self._automate(app, comparison)
        except ApiUnavailableError as e:
            outcome = "api_unavailable"
            # Capped low: when the API server is back, apps must follow within seconds.
            delay = max(e.retry_after, min(self.queue.backoff(name), 10.0))
            log.warning("event=api_unavailable app=%s error=%s retry_in=%.0f", name, e, delay)
            self.queue.add_after(name, delay)
            return
        finally:
            self.hooks.reconciled(app, time.monotonic() - started, outcome)
        self.queue.add_after(name, interval * random.uniform(0.9, 1.1))  # noqa: S311 - jitter

    async def _report_invalid_spec(self, obj: JSONDict, error: UserInputError) -> None:
        """An ``InvalidSpecError`` condition (Argo CD's name for it) with the sentence,
        written once: the status alone, since the spec cannot be parsed."""
        meta = obj.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or self.namespace)
        message = str(error)
        status = obj.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        if any(
            c.get("type") == "InvalidSpecError" and c.get("message") == message for c in conditions
        ):
            return
        log.warning("event=invalid_spec app=%s/%s error=%s", namespace, name, message)
        patch = {
            "status": {
                "sync": {"status": "Unknown"},
                "conditions": [
                    {
                        "type": "InvalidSpecError",
                        "message": message,
                        "lastTransitionTime": store.now_iso(),
                    }
                ],
                "reconciledAt": store.now_iso(),
            }
        }
        try:
            written = await self.kube.merge_patch(
                store.app_ref(name, namespace), patch, subresource="status"
            )
        except GitmoorError as e:
            log.warning("event=status_write_failed app=%s/%s error=%s", namespace, name, e)
            return
        if name in self.apps:
            self.apps[name] = written

    async def _run_operation(self, app: Application, op: dict[str, Any]) -> Application:
        who = (op.get("initiatedBy") or {}).get("username", "controller")
        try:
            if "rollback" in op:
                self.hooks.sync_started(app, str(op["rollback"].get("id")), "rollback")
                result = await self.engine.rollback(
                    app, int(op["rollback"]["id"]), initiated_by=who
                )
            else:
                revision = (op.get("sync") or {}).get("revision") or None
                self.hooks.sync_started(
                    app, revision or app.spec.source.target_revision, "operation"
                )
                result = await self.engine.sync(
                    app, _sync_options(app, op), revision=revision, initiated_by=who
                )
        except ApiUnavailableError:
            raise  # the operation stays requested and runs again when the API is back
        except (GitmoorError, ValueError, KeyError, TypeError) as e:
            # A malformed operation or one that failed before it could start: record
            # it and clear it, never leave it requested (that would loop).
            message = f"operation failed: {e}"
            result = SyncResult("", Phase.FAILED, message)
            fresh = await store.get_app(self.kube, app.name, app.namespace)
            await store.patch_status(
                self.kube,
                fresh,
                {
                    "operationState": {
                        "phase": Phase.FAILED.value,
                        "message": message,
                        "finishedAt": store.now_iso(),
                    }
                },
            )
        self.hooks.sync_finished(app, result)
        self.state.setdefault(app.name, _AppState()).last_sync_at = time.monotonic()
        fresh = await store.get_app(self.kube, app.name, app.namespace)
        cleared = await store.set_operation(self.kube, fresh, None)
        self.apps[app.name] = cleared.raw  # not the stale copy that still has the operation
        return cleared

    async def _resume_interrupted(self, app: Application) -> None:
        """Finish what a dead controller left Running: an automated app syncs again
        (writing nothing that is already in place, and recording the outcome);
        a manual sync is marked failed, for its user to run again."""
        auto = app.spec.sync_policy.automated
        log.info("event=operation_interrupted app=%s automated=%s", app.name, auto is not None)
        if auto is not None and not app.spec.sync_policy.suspended:
            commit = await self.engine.resolve(app)
            await self._auto_sync(app, commit, "resume-interrupted")
            return
        op_state = dict(app.status.get("operationState") or {})
        op_state.update(
            phase=Phase.ERROR.value,
            message="interrupted: the controller stopped during this sync; run it again",
            finishedAt=store.now_iso(),
        )
        await store.patch_status(self.kube, app, {"operationState": op_state})

    async def _automate(self, app: Application, comparison: Comparison) -> None:
        auto = app.spec.sync_policy.automated
        if auto is None or app.spec.sync_policy.suspended or comparison.sync.value != "OutOfSync":
            return
        commit = comparison.revision
        op_state = app.status.get("operationState") or {}
        last_rev = ((op_state.get("syncResult") or {}).get("revision")) or ""
        history = app.status.get("history") or []
        deployed = str(history[-1].get("revision", "")) if history else ""

        out_of_sync = [r for r in comparison.resources if r.sync.value == "OutOfSync"]
        if not auto.prune and out_of_sync and all(r.requires_pruning for r in out_of_sync):
            # Argo CD: "need to prune extra resources only but automated prune is
            # disabled" - syncing would change nothing and only fill the history.
            return
        if last_rev == commit and op_state.get("phase") == Phase.ERROR.value:
            # An outage (git, API server) cut it off: not the manifest's fault, so it
            # is retried with the app's backoff whatever syncPolicy.retry says.
            since = time.monotonic() - self.state.setdefault(app.name, _AppState()).last_sync_at
            wait = min(self.queue.backoff(app.name), 60.0) - since
            if wait > 0:
                self.queue.add_after(app.name, wait)
                return
            await self._auto_sync(app, commit, "retry-after-error")
            return
        if last_rev == commit and op_state.get("phase") == Phase.FAILED.value:
            policy = app.spec.sync_policy.retry
            attempts = int(op_state.get("retryCount") or 0)
            if attempts >= policy.limit:
                log.info(
                    "event=auto_sync_skipped app=%s reason=failed_at_commit revision=%s "
                    "attempts=%d",
                    app.name,
                    commit[:12],
                    attempts,
                )
                return
            since = time.monotonic() - self.state.setdefault(app.name, _AppState()).last_sync_at
            wait = policy.delay(attempts) - since
            if wait > 0:
                self.queue.add_after(app.name, wait)
                return
            await self._auto_sync(app, commit, "retry", retry_count=attempts + 1)
            return

        if commit == deployed:
            if not auto.self_heal:
                return  # drift is only reported: Argo CD's behaviour without selfHeal
            since = time.monotonic() - self.state.setdefault(app.name, _AppState()).last_sync_at
            if since < self.self_heal_debounce:
                self.queue.add_after(app.name, self.self_heal_debounce - since)
                return
            await self._auto_sync(app, commit, "self-heal")
            return
        await self._auto_sync(app, commit, "new-commit")

    async def _auto_sync(
        self, app: Application, commit: str, reason: str, *, retry_count: int = 0
    ) -> None:
        auto = app.spec.sync_policy.automated
        assert auto is not None
        # Fields other managers took are taken back (self-heal means "equal to
        # Git"), unless the app's sync options say ForceConflicts=false.
        options = SyncOptions.for_app(app)
        log.info("event=auto_sync app=%s revision=%s reason=%s", app.name, commit[:12], reason)
        self.hooks.sync_started(app, commit, reason)
        result = await self.engine.sync(app, options, revision=commit, initiated_by="automated")
        self.state.setdefault(app.name, _AppState()).last_sync_at = time.monotonic()
        self.hooks.sync_finished(app, result)
        if not result.ok:
            fresh = await store.get_app(self.kube, app.name, app.namespace)
            op_state = dict(fresh.status.get("operationState") or {})
            op_state["retryCount"] = retry_count
            await store.patch_status(self.kube, fresh, {"operationState": op_state})
            policy = app.spec.sync_policy.retry
            if retry_count < policy.limit:
                self.queue.add_after(app.name, policy.delay(retry_count))

    async def worker(self) -> None:
        while True:
            name = await self.queue.get()
            try:
                await self.process(name)
            except GitmoorError as e:
                delay = self.queue.backoff(name)
                log.warning("event=process_failed app=%s error=%s retry_in=%.0f", name, e, delay)
                self.queue.add_after(name, delay)
            except Exception:
                delay = self.queue.backoff(name)
                log.exception("event=process_crashed app=%s retry_in=%.0f", name, delay)
                self.queue.add_after(name, delay)
            finally:
                self.queue.done(name)

    # ------------------------------------------------------------------ watching apps

    async def watch_apps(self) -> None:
        ar = await self.kube.resource(GROUP, VERSION, KIND)
        delay = 1.0
        while True:
            try:
                listed = await self.kube.list(ar, self.namespace)
                seen = set()
                for obj in listed.items:
                    seen.add(obj["metadata"]["name"])
                    self.app_changed(obj)
                for gone in set(self.apps) - seen:
                    self.app_changed({"metadata": {"name": gone}}, deleted=True)
                self.synced_apps.set()
                rv = listed.resource_version
                while True:
                    ended_with_error = False
                    async for ev in self.kube.watch(ar, self.namespace, resource_version=rv):
                        if ev.type == "ERROR":
                            ended_with_error = True
                            break
                        rv = ev.object.get("metadata", {}).get("resourceVersion", rv)
                        if ev.type in ("ADDED", "MODIFIED"):
                            self.app_changed(ev.object)
                        elif ev.type == "DELETED":
                            self.app_changed(ev.object, deleted=True)
                    delay = 1.0
                    if ended_with_error:
                        break  # 410 Gone: relist
            except GitmoorError as e:
                log.warning(
                    "event=watch_failed resource=applications error=%s retry_in=%.0f", e, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event | None = None) -> None:
        log.info(
            "event=controller_started namespace=%s interval=%.0f workers=%d identity=%s",
            self.namespace,
            self.interval,
            self.workers,
            self.shards.identity if self.shards else "-",
        )
        tasks = [asyncio.create_task(self.watch_apps(), name="watch applications")]
        if self.shards is not None:
            self.shards.on_change = self.membership_changed
            tasks.append(asyncio.create_task(self.shards.run(), name="shard lease"))
            # No worker starts before this replica holds its Lease; a stop request
            # (or a Lease that cannot be written, logged by Shards) must not hang here.
            waiters = [asyncio.create_task(self.shards.ready.wait())]
            if stop is not None:
                waiters.append(asyncio.create_task(stop.wait()))
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
        tasks += [
            asyncio.create_task(self.worker(), name=f"worker {i}") for i in range(self.workers)
        ]
        try:
            if stop is None:
                await asyncio.gather(*tasks)
            else:
                await stop.wait()
        finally:
            self.queue.close()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for cache in [*self.caches.values(), self.secrets, self.projects]:
                await cache.aclose()
            if self.shards is not None:
                await self.shards.release()


async def run_controller(
    kube: KubeClient,
    namespace: str,
    *,
    interval: float = DEFAULT_INTERVAL,
    workers: int = 4,
    stop: asyncio.Event | None = None,
) -> None:
    await Controller(kube, namespace, interval=interval, workers=workers).run(stop)
