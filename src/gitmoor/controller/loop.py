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
  watch cache of each destination cluster (``kube.cache``);
- when a child Application it created (app of apps) changes health or sync
  status, appears or goes, so the parent's health follows its children's.

An app being deleted is neither refreshed nor synced; when it carries the
cascade finalizer (``resources-finalizer.gitmoor.io`` or Argo CD's), its objects
are deleted and then the finalizer removed (``Engine.finalize``).

Processing: run a requested operation; refresh (compare with the watch cache
and the dry-run cache, so an unchanged app costs no API request); then the
automation of Argo CD's ``syncPolicy.automated``:

- a new commit is synced at once (prune and allowEmpty as the policy says);
- drift at the commit last synced is reverted only with ``selfHeal``, and only
  ``self_heal_debounce`` seconds (5 s, Argo CD's default) after the previous sync;
- a sync that failed at a commit is retried only under ``syncPolicy.retry``
  (limit, backoff duration × factor^n up to maxDuration), never in a loop.
- issue 15 (the rules in ``gitmoor.engine.automation``): an app whose
  ``spec.dependsOn`` apps are not Synced and Healthy waits, with a
  ``SyncWaiting`` condition, and is queued the moment one of them changes (the
  Application watch); a cycle gets a ``DependencyError`` condition on each
  member; a project sync window that forbids automated syncs holds them until
  it says, and the app is queued again then; ``rollbackOnDegraded`` pins the
  app to its last Healthy revision and syncs it, once per failed commit
  (``status.automation`` keeps what that rule needs between passes).

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
import dataclasses
import logging
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from gitmoor.controller.queue import WorkQueue
from gitmoor.controller.tasks import run_until_stopped, wait_ready
from gitmoor.engine import (
    STALE_RUNNING,
    ComparisonSummary,
    DryRunCache,
    Engine,
    Gates,
    LastSync,
    Move,
    Phase,
    Reason,
    SyncOptions,
    SyncResult,
    automation_conditions,
    being_deleted,
    decide,
    dependency_state,
    depends_on,
    observe_health,
    parent_of,
    rollback_state,
    running_silence,
    status_of,
    store,
)
from gitmoor.kube import ApiUnavailableError
from gitmoor.kube.cache import ClusterCache, Key
from gitmoor.model import GitmoorError, HealthStatus, JSONDict, ObjectRef, UserInputError
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
from gitmoor.model.status import AutomationStatus, HistoryEntry, SyncOperation
from gitmoor.settings import get_project, project_ref
from gitmoor.settings.repos import credentials_from_secrets

if TYPE_CHECKING:
    from gitmoor.controller.shard import Shards
    from gitmoor.engine import ClusterResolver, Comparison
    from gitmoor.kube import KubeClient
    from gitmoor.source import RepoCredentials

log = logging.getLogger("gitmoor.controller")

DEFAULT_INTERVAL = 180.0
#: seconds between steps of an operation that waits (a wave's health, a hook):
#: the backstop, since the watch cache queues the app when what it waits for changes
OPERATION_POLL = 2.0
#: seconds between looks at an app on its way to health that no watch reports
PROGRESSING_POLL = 3.0
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
    #: ``dependency_state`` as last seen: its change queues the app's dependents
    readiness: str | None = None


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
        # Stable across restarts: a controller that comes back takes the next step
        # of the operations it was running at once, not after they go stale.
        self.engine.identity = "controller/" + (
            self.shards.identity if self.shards is not None else socket.gethostname()
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
        # The Applications themselves, through the same list/watch/relist (a relist
        # after a 410 Gone or an error) as every other kind the controller reads.
        self.app_cache = ClusterCache(
            self.kube,
            label_selector="",
            namespace=self.namespace,
            on_change=lambda _key, obj, deleted: self.app_changed(obj, deleted),
            on_synced=self._apps_listed,
        )
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
        previous = self.apps.get(name)
        if deleted:
            self.apps.pop(name, None)
            self.state.pop(name, None)
            self._child_moved(previous or obj)
            return
        self.apps[name] = obj
        if previous is None or _health_and_sync(previous) != _health_and_sync(obj):
            self._child_moved(obj)
        st = self.state.setdefault(name, _AppState())
        readiness = dependency_state(obj)
        if readiness != st.readiness:
            # A dependency became ready (or stopped being): the apps that wait for
            # it look again now, not at their next interval (spec.dependsOn).
            st.readiness = readiness
            for other, other_obj in self.apps.items():
                if name in depends_on(other_obj):
                    self.queue.add(other)
        generation = int(obj.get("metadata", {}).get("generation") or 0)
        # Writing `operation` bumps the generation too; status writes do not. A
        # refresh request (the annotation the server and CLI set) does not either.
        # A deletion does bump it; being_deleted covers an app seen first that way.
        if generation != st.generation or store.refresh_requested(obj) or being_deleted(obj):
            st.generation = generation
            self.queue.add(name)

    def _child_moved(self, obj: JSONDict) -> None:
        """An app of apps follows its children: when a child Application (created
        by a parent, whose tracking id it carries) changes health or sync status,
        appears or goes, the parent is queued, so its health rolls up within the
        watch's delay, not at its next interval. Status writes do not bump the
        child's generation, so nothing else would wake the parent."""
        parent = parent_of(obj, self.namespace)
        if parent and parent in self.apps:
            self.queue.add(parent)

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
            if being_deleted(self.apps[name]):
                # Going anyway: its cascade finalizer needs only the inventory and
                # the destination, so a spec that no longer parses must not hold
                # the app in deletion for ever.
                await self._finalize_unparsed(name, e)
                return
            # Nothing to refresh until the spec changes (which bumps the
            # generation and queues the app again); the user reads why on status.
            await self._report_invalid_spec(self.apps[name], e)
            return
        if being_deleted(self.apps[name]):
            # Neither refreshed nor synced while it goes (a self-heal would re-create
            # what its finalizer deletes); its cascade finalizer, if any, is run.
            await self._finalize(app)
            return
        with contextlib.suppress(GitmoorError):
            # An unknown destination cluster is reported by refresh as a condition.
            await self._ensure_cache(app)
        interval = app.spec.sync_policy.refresh_interval or self.interval
        outcome = "ok"
        next_look = interval * random.uniform(0.9, 1.1)  # noqa: S311 - jitter
        refresh = store.refresh_requested(self.apps[name])
        if refresh == "hard":
            # Argo CD's hard refresh: render again instead of reading the manifest cache.
            self.engine.render_cache.forget(app.spec.source.path)
        try:
            if app.operation:
                app = await self._start_requested(app, app.operation)
            running, app = await self._step_operation(app)
            if running is not None:
                next_look = running
            before = app
            # While an operation waits, the status still follows the live state:
            # objects applied are Synced at once, not when the operation ends.
            app, comparison = await self.engine.refresh(app)
            self.hooks.status_changed(before, app)
            if refresh:
                with contextlib.suppress(GitmoorError):  # the app was deleted meanwhile
                    await store.clear_refresh(self.kube, app)
                log.info("event=refresh_requested_done app=%s kind=%s", name, refresh)
            if comparison is None:
                outcome = "comparison_error"
                self.queue.add_after(name, min(next_look, self.queue.backoff(name)))
                return
            self.queue.forget(name)
            if running is None:
                await self._automate(app, comparison)
            if self._unwatched_progress(app, comparison):
                next_look = min(next_look, PROGRESSING_POLL)
        except ApiUnavailableError as e:
            outcome = "api_unavailable"
            # Capped low: when the API server is back, apps must follow within seconds.
            delay = max(e.retry_after, min(self.queue.backoff(name), 10.0))
            log.warning("event=api_unavailable app=%s error=%s retry_in=%.0f", name, e, delay)
            self.queue.add_after(name, delay)
            return
        finally:
            self.hooks.reconciled(app, time.monotonic() - started, outcome)
        self.queue.add_after(name, next_look)

    async def _finalize(self, app: Application) -> None:
        """Run the cascade finalizer of an app being deleted (``engine.children``):
        its objects are deleted, then the finalizer removed; tried again with the
        app's backoff while an object cannot be deleted yet."""
        if await self.engine.finalize(app):
            self.queue.forget(app.name)
            log.info("event=app_finalized app=%s", app.name)
            return
        self.queue.add_after(app.name, self.queue.backoff(app.name))

    async def _finalize_unparsed(self, name: str, error: UserInputError) -> None:
        """:meth:`_finalize` for an app whose spec does not parse
        (``engine.finalize_unparsed``); when even its destination cannot be read, the
        app's status says why its deletion waits, and a spec change queues it again."""
        done = await self.engine.finalize_unparsed(self.apps[name], str(error))
        if done:
            self.queue.forget(name)
            log.info("event=app_finalized app=%s spec_invalid=true", name)
        elif done is False:
            self.queue.add_after(name, self.queue.backoff(name))

    def _unwatched_progress(self, app: Application, comparison: Comparison) -> bool:
        """Is the app on its way to a health no watch will report? A sync ends once
        its last wave is applied; the app then turns Healthy as its objects do, which
        the watch cache reports within a second. A kind the cache cannot watch (its
        list refused under namespaced RBAC, or the cache off) is looked at again
        every few seconds instead, until the app's health settles."""
        if comparison.health.status not in (HealthStatus.PROGRESSING, HealthStatus.MISSING):
            return False
        cache = self.engine.cache_for(app)
        return cache is None or any(
            not cache.watching(r.ref.group, r.ref.kind) for r in comparison.resources
        )

    async def _step_operation(self, app: Application) -> tuple[float | None, Application]:
        """Take the next step of the app's running operation, if this controller may:
        it started it, or its runner stopped reporting (a crash; the step resumes
        where the status says it stood). Returns when to look again while it runs
        (None: no operation runs any more) and the app as it is now."""
        silence = running_silence(app)
        if silence is None:
            return None, app
        state = status_of(app).operation_state
        assert state is not None
        if state.runner != self.engine.identity and silence < STALE_RUNNING:
            # A sync in progress elsewhere (the CLI, another replica): leave it,
            # and look again once it should have reported.
            return STALE_RUNNING - silence + 1, app
        if state.runner != self.engine.identity:
            log.info(
                "event=operation_resumed app=%s runner=%s silent_for=%.0f",
                app.name,
                state.runner,
                silence,
            )
        outcome = await self.engine.step(app)
        fresh = await self._fresh(app)
        if outcome is None:
            return None, fresh
        if outcome.result is None:
            # Waiting on a gate: no worker is held. The watch cache queues the app
            # as soon as an object it waits for changes; this is the backstop.
            return OPERATION_POLL, fresh
        self._finished(fresh, outcome.result, state.operation.automated, state.retry_count)
        return None, fresh

    async def _fresh(self, app: Application) -> Application:
        fresh = await store.get_app(self.kube, app.name, app.namespace)
        self.apps[app.name] = fresh.raw
        return fresh

    def _finished(
        self, app: Application, result: SyncResult, automated: bool, retry_count: int
    ) -> None:
        self.hooks.sync_finished(app, result)
        self.state.setdefault(app.name, _AppState()).last_sync_at = time.monotonic()
        if automated and not result.ok:
            policy = app.spec.sync_policy.retry
            if retry_count < policy.limit:
                self.queue.add_after(app.name, policy.delay(retry_count))

    async def _report_invalid_spec(self, obj: JSONDict, error: UserInputError) -> None:
        """An ``InvalidSpecError`` condition (Argo CD's name for it) with the sentence,
        written once: the status alone, since the spec cannot be parsed."""
        meta = obj.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or self.namespace)
        status = obj.get("status") or {}
        try:
            written = await self.engine.report_invalid_spec(
                name, namespace, status if isinstance(status, dict) else {}, str(error)
            )
        except GitmoorError as e:
            log.warning("event=status_write_failed app=%s/%s error=%s", namespace, name, e)
            return
        if written is None:
            return
        log.warning("event=invalid_spec app=%s/%s error=%s", namespace, name, error)
        if name in self.apps:
            self.apps[name] = written

    async def _start_requested(self, app: Application, requested: dict[str, Any]) -> Application:
        """Start the operation a user requested (Argo CD's ``operation`` field) and
        clear the request: from here on the operation state carries it."""
        try:
            op = SyncOperation.from_dict(requested)
            if op.rollback_id is not None:
                entry, app = await self.engine.prepare_rollback(
                    app, op.rollback_id, pin=op.rollback_pin
                )
                source = entry.source if entry.source and entry.source.get("repoURL") else None
                op = dataclasses.replace(op, revision=entry.revision, source=source)
            running = running_silence(app)
            if running is not None and running < STALE_RUNNING:
                log.warning(
                    "event=operation_refused app=%s reason=another_operation_running", app.name
                )
            else:
                self.hooks.sync_started(
                    app, op.revision or app.spec.source.target_revision, "operation"
                )
                app = await self.engine.start_sync(app, op)
        except ApiUnavailableError:
            raise  # the operation stays requested and runs again when the API is back
        except GitmoorError as e:
            # A malformed request, or one that failed before it could start: record it
            # and clear it, never leave it requested (that would loop).
            message = f"operation failed: {e}"
            self.hooks.sync_finished(app, SyncResult("", Phase.FAILED, message))
            await self.engine.refuse_request(app, message)
        cleared = await store.set_operation(self.kube, app, None)
        self.apps[app.name] = cleared.raw  # not the stale copy that still has the operation
        return cleared

    async def _automate(self, app: Application, comparison: Comparison) -> None:
        """Carry out what ``decide`` says of the app (the rules live there, with their
        golden cases): sync now, look again after a delay, or leave it."""
        st = self.state.setdefault(app.name, _AppState())
        last = LastSync.from_status(app.status, at=st.last_sync_at)
        summary = ComparisonSummary.of(comparison)
        status = status_of(app)
        wall = datetime.now(UTC)
        automation = observe_health(
            status.automation, summary, status.history[-1] if status.history else None, wall
        )
        gates = await self._gates(app)
        decision = decide(
            app,
            summary,
            last,
            time.monotonic(),
            self_heal_debounce=self.self_heal_debounce,
            error_backoff=self._peek_backoff(app.name),
            gates=gates,
            rollback=rollback_state(automation, wall),
        )
        if decision.action is Move.ROLLBACK:
            # Remembered before the rollback starts: a crash in between must not
            # bring a second rollback of the same commit.
            automation = dataclasses.replace(
                automation,
                rolled_back_from=(*automation.rolled_back_from[-9:], summary.revision),
            )
        app = await self.engine.record_automation(
            app, automation, automation_conditions(decision, gates)
        )
        self.apps[app.name] = app.raw
        if decision.reason in (Reason.WAITING_FOR_DEPENDENCIES, Reason.SYNC_WINDOW):
            log.info(
                "event=auto_sync_held app=%s reason=%s why=%r",
                app.name,
                decision.reason.value,
                gates.dependencies or gates.window,
            )
        if decision.action is Move.ROLLBACK:
            await self._rollback_on_degraded(app, summary.revision, decision.target, automation)
            return
        if decision.reason is Reason.RETRY_AFTER_ERROR:
            # As it always was: the retry counts as one failure in the app's backoff
            # (reset by the next refresh that completes).
            self.queue.backoff(app.name)
        if decision.action is Move.SYNC:
            await self._auto_sync(
                app, comparison.revision, decision.reason.value, retry_count=decision.retry_count
            )
        elif decision.action is Move.WAIT:
            self.queue.add_after(app.name, decision.delay)
        elif decision.reason is Reason.RETRIES_EXHAUSTED:
            # The one skip worth a line at info: the app stays OutOfSync until a push
            # or a manual sync; the others repeat at every refresh.
            log.info(
                "event=auto_sync_skipped app=%s reason=%s revision=%s attempts=%d",
                app.name,
                decision.reason.value,
                comparison.revision[:12],
                last.retry_count,
            )

    async def _gates(self, app: Application) -> Gates:
        """The dependency gate (from the watched Applications) and the project's
        sync windows; a window that cannot be read holds nothing back (the
        refresh reports a project it cannot load)."""
        gates = await self.engine.dependency_gates(app, self.apps)
        if app.spec.sync_policy.automated is None:
            return gates
        try:
            window = await self.engine.window_gate(app)
        except GitmoorError as e:
            log.info("event=window_unreadable app=%s error=%s", app.name, e)
            return gates
        return dataclasses.replace(
            gates,
            window=window.window,
            window_wait=window.window_wait,
            window_until=window.window_until,
        )

    async def _rollback_on_degraded(
        self, app: Application, failed: str, target: str, automation: AutomationStatus
    ) -> None:
        """``rollbackOnDegraded``: pin the app to the last Healthy revision (with the
        source it was deployed from) and sync it, recording why in the history."""
        auto = app.spec.sync_policy.automated
        assert auto is not None and auto.rollback_on_degraded_after is not None
        reason = (
            f"rollback-on-degraded: {failed[:12]} was Degraded for more than "
            f"{auto.rollback_on_degraded_after:g}s; back to {target[:12]}, the last Healthy revision"
        )
        log.warning(
            "event=rollback_on_degraded app=%s failed=%s target=%s",
            app.name,
            failed[:12],
            target[:12],
        )
        entry = HistoryEntry(
            automation.last_healthy_id, target, source=automation.last_healthy_source
        )
        app = await self.engine.pin(app, entry, reason=reason)
        options = SyncOptions.for_app(app)
        self.hooks.sync_started(app, target, "rollback-on-degraded")
        op = SyncOperation(
            revision=target,
            prune=options.prune,
            initiated_by="automated-rollback",
            automated=True,
            source=entry.source if entry.source and entry.source.get("repoURL") else None,
            reason=reason,
        )
        app = await self.engine.start_sync(app, op, options=options)
        self.apps[app.name] = app.raw
        running, _ = await self._step_operation(app)
        if running is not None:
            self.queue.add_after(app.name, running)

    def _peek_backoff(self, name: str) -> float:
        """The app's next backoff delay, without counting a failure (``decide`` may
        not use it)."""
        q = self.queue
        return float(min(q.base_delay * 2.0 ** q.failures(name), q.max_delay))

    async def _auto_sync(
        self, app: Application, commit: str, reason: str, *, retry_count: int = 0
    ) -> None:
        """Start an automated sync of ``commit`` and take its first step at once: an
        app whose objects need no wait is synced within this pass."""
        auto = app.spec.sync_policy.automated
        assert auto is not None
        # Fields other managers took are taken back (self-heal means "equal to
        # Git"), unless the app's sync options say ForceConflicts=false.
        options = SyncOptions.for_app(app)
        log.info("event=auto_sync app=%s revision=%s reason=%s", app.name, commit[:12], reason)
        self.hooks.sync_started(app, commit, reason)
        pin = app.spec.sync_policy.pin
        op = SyncOperation(
            revision=commit,
            prune=options.prune,
            initiated_by="automated",
            automated=True,
            # A pinned app heals to its pin, from the source recorded with it.
            source=pin.source if pin is not None else None,
        )
        app = await self.engine.start_sync(app, op, options=options, retry_count=retry_count)
        self.apps[app.name] = app.raw
        running, _ = await self._step_operation(app)
        if running is not None:
            self.queue.add_after(app.name, running)

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
        """Start watching the Applications (``app_cache``, which feeds ``app_changed``)
        and return once their first list is in. Until the kind can be listed (the CRD
        not installed yet, the API server down, no RBAC for it) it tries again, at
        most 10 s apart; from then on the cache's own task watches and relists."""
        ref = ObjectRef(GROUP, VERSION, KIND, self.namespace, "-")
        delay = 1.0
        while not await self.app_cache.ensure(ref):
            log.warning("event=watch_failed resource=applications retry_in=%.0f", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _apps_listed(self, group_kind: tuple[str, str]) -> None:
        """A list of the Applications is in (the first, or a relist): every app in it
        is looked at, and an app missing from it (deleted while the watch was down)
        is forgotten."""
        listed = self.app_cache.items(GROUP, KIND)
        seen = set()
        for obj in listed:
            seen.add((obj.get("metadata") or {}).get("name", ""))
            self.app_changed(obj)
        for gone in set(self.apps) - seen:
            self.app_changed({"metadata": {"name": gone}}, deleted=True)
        self.synced_apps.set()

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
            self.shards.subscribe(self.membership_changed)
            tasks.append(asyncio.create_task(self.shards.run(), name="shard lease"))
            # No worker starts before this replica holds its Lease.
            await wait_ready(self.shards.ready, stop)
        tasks += [
            asyncio.create_task(self.worker(), name=f"worker {i}") for i in range(self.workers)
        ]
        try:
            await run_until_stopped(tasks, stop)
        finally:
            self.queue.close()
            for cache in [*self.caches.values(), self.secrets, self.projects, self.app_cache]:
                await cache.aclose()
            if self.shards is not None:
                await self.shards.release()


def _health_and_sync(obj: JSONDict) -> tuple[object, object]:
    status = obj.get("status")
    if not isinstance(status, dict):
        return None, None
    health, sync = status.get("health"), status.get("sync")
    return (
        health.get("status") if isinstance(health, dict) else None,
        sync.get("status") if isinstance(sync, dict) else None,
    )


async def run_controller(
    kube: KubeClient,
    namespace: str,
    *,
    interval: float = DEFAULT_INTERVAL,
    workers: int = 4,
    stop: asyncio.Event | None = None,
) -> None:
    await Controller(kube, namespace, interval=interval, workers=workers).run(stop)
