"""The engine's front door: refresh, sync, rollback and delete one Application.

The CLI, the controller and the API server are thin drivers over these
functions. Each step is a neighbour's typed function: source (resolve,
checkout), render (cached by commit), prepare (namespaces, tracking), compare
(dry-run diff, health), sync (waves, hooks, prune); the results are written
to the Application's status, the only place gitmoor keeps state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gitmoor.engine import projects, store
from gitmoor.engine.compare import Comparison, DryRunCache, compare_app, is_hook
from gitmoor.engine.plan import annotation_warnings, directives
from gitmoor.engine.prepare import PrepareOptions, owned_by, prepare
from gitmoor.engine.repos import credentials_for, load_credentials
from gitmoor.engine.sync import Phase, SyncEvent, SyncOptions, SyncResult, run_sync
from gitmoor.kube import ConflictError
from gitmoor.model import GitmoorError, Manifest, ObjectRef, RetryableError, UserInputError
from gitmoor.model.application import DEFAULT_NAMESPACE, Application, parse_application
from gitmoor.model.project import IN_CLUSTER_SERVER, AppProject, ProjectViolation
from gitmoor.render import RenderCache, RenderOptions
from gitmoor.settings import get_project
from gitmoor.source import checkout_async, resolve_tagged_async

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from gitmoor.kube.cache import ClusterCache
    from gitmoor.source import RepoCredentials

log = logging.getLogger("gitmoor.engine")
#: how often a running sync renews operationState.heartbeatAt
HEARTBEAT_SECONDS = 10.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Desired:
    revision: str
    manifests: tuple[Manifest, ...]
    warnings: tuple[str, ...] = ()
    #: the tag, when the target revision is a tag or a semver range (the tag it
    #: chose): what objects written record as ``gitmoor.io/version``
    tag: str | None = None
    #: the app's project, as checked: the sync impersonates what it names
    project: AppProject | None = None


class ClusterResolver(Protocol):
    async def client_for(self, name: str) -> KubeClient: ...


@dataclass
class Engine:
    """Shared caches for every app: one git cache, one render cache.

    ``kube`` is the home cluster, where Applications and credentials live;
    ``clusters`` resolves ``spec.destination.name`` to the cluster an app
    deploys to (the home cluster when it is empty). ``caches`` (watch caches by
    cluster name, "" for home) and ``dry_runs`` are given by the controller so
    that comparing an unchanged app costs no API request.
    """

    kube: KubeClient
    git_cache_dir: Path | None = None
    render_cache: RenderCache = field(default_factory=RenderCache)
    namespace: str = DEFAULT_NAMESPACE
    clusters: ClusterResolver | None = None
    caches: dict[str, ClusterCache] = field(default_factory=dict)
    dry_runs: DryRunCache | None = None
    #: who runs syncs here, written into operationState.runner
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: called with (repo URL, "ls-remote" | "fetch", seconds, failed) after each git request
    on_git: Callable[[str, str, float, bool], None] | None = None
    #: repository credentials; the controller sets one backed by its watch cache
    credentials: Callable[[], Awaitable[list[RepoCredentials]]] | None = None
    #: looks an AppProject up by name (None: absent); default a GET in ``namespace``,
    #: the controller sets one backed by its watch cache
    projects: Callable[[str], Awaitable[AppProject | None]] | None = None
    #: (repo URL, target revision) → (commit, tag) of the last resolve, so a sync
    #: by commit (the controller resolves, then syncs that commit) still knows the
    #: tag the commit was chosen by, without another ls-remote
    _tags: dict[tuple[str, str], tuple[str, str | None]] = field(
        default_factory=dict, init=False, repr=False
    )

    async def _git(self, request: str, repo: str, call: Awaitable[T]) -> T:
        """Time a git request for ``on_git`` (the controller's metrics)."""
        started = time.monotonic()
        try:
            result = await call
        except GitmoorError:
            if self.on_git is not None:
                self.on_git(repo, request, time.monotonic() - started, True)
            raise
        if self.on_git is not None:
            self.on_git(repo, request, time.monotonic() - started, False)
        return result

    async def _credentials(self) -> list[RepoCredentials]:
        if self.credentials is not None:
            return await self.credentials()
        return await load_credentials(self.kube, self.namespace)

    async def _creds_for(self, app: Application) -> RepoCredentials | None:
        """The app's repository credentials: its project's first, then unscoped ones."""
        return credentials_for(
            app.spec.source.repo_url, await self._credentials(), app.spec.project
        )

    async def _lookup_project(self, name: str) -> AppProject | None:
        if self.projects is not None:
            return await self.projects(name)
        return await get_project(self.kube, name, self.namespace)

    async def _server(self, app: Application) -> str:
        """The API server URL projects match ``server`` against: Argo CD's name for
        the home cluster, else the registered cluster's."""
        if app.spec.destination.name in ("", "in-cluster"):
            return IN_CLUSTER_SERVER
        return (await self.dest(app)).config.server

    async def admit(self, app: Application) -> tuple[AppProject, str]:
        """The app's project and destination server, once the project permits the
        app's repository and destination. Called before any git request: a
        refused app fetches nothing (:mod:`gitmoor.engine.projects`)."""
        project = await projects.load_project(self._lookup_project, app)
        projects.check_source(project, app)
        server = await self._server(app)
        projects.check_destination(project, app, server)
        return project, server

    async def dest(self, app: Application) -> KubeClient:
        """The client of the cluster the app deploys to."""
        name = app.spec.destination.name
        if not name or name == "in-cluster":
            return self.kube
        if self.clusters is None:
            raise UserInputError(
                f"application {app.name} deploys to cluster {name!r}, but no cluster registry is set up"
            )
        return await self.clusters.client_for(name)

    def cache_for(self, app: Application) -> ClusterCache | None:
        name = app.spec.destination.name
        return self.caches.get("" if name in ("", "in-cluster") else name)

    # ------------------------------------------------------------ desired state

    async def resolve(self, app: Application, revision: str | None = None) -> str:
        await self.admit(app)
        creds = await self._creds_for(app)
        return (await self._resolve(app, revision, creds))[0]

    async def _resolve(
        self, app: Application, revision: str | None, creds: RepoCredentials | None
    ) -> tuple[str, str | None]:
        """The commit ``revision`` (default: the target) names, and its tag.

        A sync by commit (the controller's, after it resolved the target) gets
        the tag the target chose for that same commit, remembered from that
        resolve; a commit the target no longer names has no tag."""
        src = app.spec.source
        wanted = revision or src.target_revision
        commit, tag = await resolve_tagged_async(
            src.repo_url, wanted, creds, cache_dir=self.git_cache_dir
        )
        key = (src.repo_url, src.target_revision)
        if wanted == src.target_revision:
            self._tags[key] = (commit, tag)
        elif tag is None:
            known = self._tags.get(key)
            if known is not None and known[0] == commit:
                tag = known[1]
        return commit, tag

    async def desired(self, app: Application, revision: str | None = None) -> Desired:
        """Resolve, fetch, render and prepare the app at ``revision`` (default: its target),
        within what its project permits."""
        src = app.spec.source
        project, server = await self.admit(app)
        creds = await self._creds_for(app)
        commit, tag = await self._git(
            "ls-remote", src.repo_url, self._resolve(app, revision, creds)
        )
        root = await self._git(
            "fetch",
            src.repo_url,
            checkout_async(src.repo_url, commit, creds, cache_dir=self.git_cache_dir),
        )
        options = RenderOptions(
            release_name=src.helm.release_name or app.name,
            namespace=app.spec.destination.namespace,
            value_files=src.helm.value_files,
            values=src.helm.values,
        )
        rendered = await asyncio.to_thread(
            self.render_cache.get_or_render, root, src.path, commit, options
        )
        manifests = await prepare(
            app,
            rendered.manifests,
            await self.dest(app),
            PrepareOptions(
                namespace_allowed=projects.namespace_check(project, app, server),
                project=project.name,
            ),
        )
        projects.check_resources(project, manifests)
        # Annotation warnings (an Argo CD annotation overruled by gitmoor's, one
        # ignored as Argo CD ignores it) travel with the render's: shown by diff and
        # sync, and as the app's ComparisonWarning condition.
        warnings = (*rendered.warnings, *annotation_warnings(manifests))
        return Desired(commit, manifests, warnings, tag, project)

    # ------------------------------------------------------------ refresh

    async def refresh(self, app: Application) -> tuple[Application, Comparison | None]:
        """Recompute sync and health status and write them to the app's status."""
        started = time.monotonic()
        try:
            desired = await self.desired(app)
            dest = await self.dest(app)
            comparison = await compare_app(
                app,
                desired.revision,
                desired.manifests,
                dest,
                inventory(app),
                cache=self.cache_for(app),
                dry_runs=self.dry_runs,
                dry_run_as=await self._acting_client(app, desired),
            )
        except GitmoorError as e:
            log.info("event=comparison_error app=%s/%s error=%s", app.namespace, app.name, e)
            error_status: dict[str, Any] = {
                "sync": {
                    "status": "Unknown",
                    "revision": app.status.get("sync", {}).get("revision", ""),
                },
                # Argo CD's type for an app its project does not permit.
                "conditions": _conditions(
                    app,
                    "InvalidSpecError" if isinstance(e, ProjectViolation) else "ComparisonError",
                    str(e),
                ),
                "reconciledAt": store.now_iso(),
            }
            if _same_status(app.status, error_status):
                return app, None
            return await store.patch_status(self.kube, app, error_status), None
        conditions = _conditions(app, None, "")
        if not desired.manifests:
            conditions = _conditions(
                app,
                "ComparisonWarning",
                "the render produced no objects; nothing is pruned unless allowEmpty is set",
            )
        elif desired.warnings:
            conditions = _conditions(app, "ComparisonWarning", _warning_text(desired.warnings))
        status: dict[str, Any] = {
            "sync": {"status": comparison.sync.value, "revision": desired.revision},
            "health": {
                "status": comparison.health.status.value,
                "message": comparison.health.message,
            },
            "resources": [r.to_dict() for r in comparison.resources],
            "conditions": conditions,
            "reconciledAt": store.now_iso(),
        }
        log.info(
            "event=refreshed app=%s/%s revision=%s sync=%s health=%s resources=%d seconds=%.3f",
            app.namespace,
            app.name,
            desired.revision[:12],
            comparison.sync.value,
            comparison.health.status.value,
            len(comparison.resources),
            time.monotonic() - started,
        )
        if _same_status(app.status, status):
            # Nothing but the time changed: no write, so an idle controller makes
            # no API request beyond its watches. reconciledAt is the time the
            # status last changed.
            return app, comparison
        return await store.patch_status(self.kube, app, status), comparison

    # ------------------------------------------------------------ sync

    async def sync(
        self,
        app: Application,
        options: SyncOptions | None = None,
        *,
        revision: str | None = None,
        initiated_by: str = "",
        progress: Callable[[SyncEvent], None] | None = None,
        record: bool = True,
    ) -> SyncResult:
        """Sync the app (to ``revision``, default its target) and record the outcome."""
        options = options or SyncOptions.for_app(app)
        started_at = store.now_iso()
        started = time.monotonic()
        heartbeat: asyncio.Task[None] | None = None
        if record and not options.dry_run:
            await store.patch_status(
                self.kube,
                app,
                {
                    "operationState": {
                        "phase": Phase.RUNNING.value,
                        "message": "sync in progress",
                        "startedAt": started_at,
                        "heartbeatAt": started_at,
                        "runner": self.identity,
                        "operation": {
                            "sync": {"revision": revision or app.spec.source.target_revision},
                            "initiatedBy": {"username": initiated_by},
                        },
                        # A merge patch keeps keys it does not name: clear the last run's.
                        "finishedAt": None,
                        "syncResult": None,
                    }
                },
            )
            heartbeat = asyncio.create_task(self._heartbeat(app))
        try:
            result = await self._sync_body(app, options, revision, progress)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError, GitmoorError):
                    await heartbeat
        log.info(
            "event=synced app=%s/%s revision=%s phase=%s dry_run=%s seconds=%.3f message=%r",
            app.namespace,
            app.name,
            result.revision[:12],
            result.phase.value,
            options.dry_run,
            time.monotonic() - started,
            result.message,
        )
        if record and not options.dry_run:
            await self._record(
                app, result, started_at, initiated_by, revision, full=options.only is None
            )
            # Status follows at once: a user reading `app get` after a sync sees its outcome.
            with contextlib.suppress(GitmoorError):
                await self.refresh(await store.get_app(self.kube, app.name, app.namespace))
        return result

    async def _sync_body(
        self,
        app: Application,
        options: SyncOptions,
        revision: str | None,
        progress: Callable[[SyncEvent], None] | None,
    ) -> SyncResult:
        try:
            desired = await self.desired(app, revision)
            kube = await self._acting_client(app, desired)
        except RetryableError as e:
            return SyncResult(revision or "", Phase.ERROR, str(e))
        except GitmoorError as e:
            return SyncResult(revision or "", Phase.FAILED, str(e))
        else:
            return await run_sync(
                app,
                desired.revision,
                desired.manifests,
                kube,
                inventory=inventory(app),
                options=options,
                progress=progress,
                cache=self.cache_for(app),
                dry_runs=self.dry_runs,
                claims=self.still_declares,
                version=desired.tag,
            )

    async def _acting_client(self, app: Application, desired: Desired) -> KubeClient:
        """The client the app's writes go out on: the destination's, impersonating the
        ServiceAccount the project names for it (``destinationServiceAccounts``), so
        that Kubernetes RBAC refuses what that account may not do.

        Every request of a sync (apply, prune, hooks) uses it, and so do a refresh's
        server-side dry-runs, which RBAC judges as the PATCH they simulate (Argo CD
        diffs on the client side, so only its syncs impersonate). Reads for a
        comparison (GETs, the watch cache) stay on the engine's own identity."""
        dest = await self.dest(app)
        if desired.project is None:
            return dest
        account = projects.sync_identity(desired.project, app, await self._server(app))
        if account is None:
            return dest
        log.info(
            "event=sync_impersonates app=%s/%s project=%s user=%s",
            app.namespace,
            app.name,
            desired.project.name,
            account.username,
        )
        # No Impersonate-Group: the API server adds a ServiceAccount's groups itself.
        return dest.impersonating(account.username)

    async def still_declares(self, owner: str, ref: ObjectRef) -> bool:
        """Does the app ``<apps-namespace>_<name>`` declare ``ref`` at its target now?

        Asked only when a sync meets an object another app owns: a moved object is
        taken over, a shared one is refused. When it cannot be told (the owner's
        repository is down), the answer is yes: refusing is the safe side.
        """
        namespace, _, name = owner.partition("_")
        try:
            other = await store.get_app(self.kube, name, namespace)
        except UserInputError:
            return False  # the owner app is gone: the object is an orphan
        try:
            theirs = await self.desired(other)
        except GitmoorError:
            return True
        key = (ref.group, ref.kind, ref.namespace, ref.name)
        return any(
            (m.ref.group, m.ref.kind, m.ref.namespace, m.ref.name) == key for m in theirs.manifests
        )

    async def _heartbeat(self, app: Application) -> None:
        """Renew operationState.heartbeatAt while a sync runs, so the controller can
        tell a sync in progress (here, in the CLI or in another replica) from one
        cut off by a crash."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(GitmoorError):
                await store.patch_status(
                    self.kube, app, {"operationState": {"heartbeatAt": store.now_iso()}}
                )

    async def _record(
        self,
        app: Application,
        result: SyncResult,
        started_at: str,
        initiated_by: str,
        revision: str | None,
        *,
        full: bool = True,
    ) -> None:
        fresh = await store.get_app(self.kube, app.name, app.namespace)
        status: dict[str, Any] = {
            "operationState": {
                "phase": result.phase.value,
                "message": result.message,
                "startedAt": started_at,
                "finishedAt": store.now_iso(),
                "operation": {
                    "sync": {"revision": revision or app.spec.source.target_revision},
                    "initiatedBy": {"username": initiated_by},
                },
                "syncResult": result.to_dict(),
            }
        }
        if result.ok and full:
            # Only a full sync deploys a revision (Argo CD records the same way): a
            # selective sync in history would pass for a complete deploy of it.
            history = list(fresh.status.get("history") or [])
            next_id = max((int(h.get("id", 0)) for h in history), default=0) + 1
            history.append(
                {
                    "id": next_id,
                    "revision": result.revision,
                    "deployedAt": store.now_iso(),
                    "deployStartedAt": started_at,
                    "initiatedBy": initiated_by,
                    "source": app.spec.source.to_dict(),
                }
            )
            status["history"] = history[-app.spec.history_limit :]
            # What was applied is the inventory for the next prune, until a refresh rewrites it.
            applied = [
                r.to_dict()
                for r in result.resources
                if r.action.value not in ("pruned",) and not r.hook
            ]
            known = {(r["group"], r["kind"], r["namespace"], r["name"]) for r in applied}
            for r in fresh.status.get("resources") or []:
                if (
                    r.get("group", ""),
                    r.get("kind"),
                    r.get("namespace", ""),
                    r.get("name"),
                ) not in known and not any(
                    (p.ref.group, p.ref.kind, p.ref.namespace, p.ref.name)
                    == (r.get("group", ""), r.get("kind"), r.get("namespace", ""), r.get("name"))
                    and p.action.value == "pruned"
                    for p in result.resources
                ):
                    applied.append(r)
            status["resources"] = applied
        await store.patch_status(self.kube, fresh, status)

    async def rollback(
        self,
        app: Application,
        history_id: int,
        *,
        initiated_by: str = "",
        progress: Callable[[SyncEvent], None] | None = None,
        options: SyncOptions | None = None,
    ) -> SyncResult:
        """Sync the revision of history entry ``history_id`` and switch automated sync off,
        so the controller does not roll forward again (Argo CD refuses a rollback of an
        automated app instead; here it is one step)."""
        entry = next(
            (h for h in app.status.get("history") or [] if int(h.get("id", -1)) == history_id), None
        )
        if entry is None:
            ids = [h.get("id") for h in app.status.get("history") or []]
            raise UserInputError(
                f"application {app.name} has no history entry {history_id} (has {ids})"
            )
        if app.spec.sync_policy.automated is not None:
            app = await store.patch_spec(self.kube, app, {"syncPolicy": {"automated": None}})
        # The entry's own source (path, repo, Helm values at that time), as Argo CD's
        # rollback uses the history's source: the current spec may have moved on.
        recorded = entry.get("source")
        if isinstance(recorded, dict) and recorded.get("repoURL"):
            spec = app.raw.get("spec") or {}
            app = parse_application({**app.raw, "spec": {**spec, "source": recorded}})
        return await self.sync(
            app,
            options,
            revision=str(entry["revision"]),
            initiated_by=initiated_by,
            progress=progress,
        )

    # ------------------------------------------------------------ delete

    async def delete(self, app: Application, *, cascade: bool = True) -> list[ObjectRef]:
        """Delete the app; with ``cascade`` first the objects it owns (and only those)."""
        deleted: list[ObjectRef] = []
        if cascade:
            # Automation off first, so the controller does not re-create (self-heal)
            # what is being deleted. Argo CD uses a finalizer for the same reason.
            app = await store.patch_spec(
                self.kube, app, {"syncPolicy": {"automated": None, "suspended": True}}
            )
            dest = await self.dest(app)
            refs = inventory(app)
            for ref in reversed(refs):
                try:
                    live = await dest.get(ref)
                except GitmoorError:
                    continue
                if live is None or not owned_by(app, live):
                    continue
                if not _deletes_with_app(app, live):
                    continue  # Delete=false: kept, as Argo CD's finalizer keeps it
                meta = live.get("metadata", {})
                try:
                    gone = await dest.delete(
                        ref,
                        propagation="Foreground",
                        uid=meta.get("uid"),
                        resource_version=meta.get("resourceVersion"),
                    )
                except ConflictError:
                    continue  # changed since it was judged ours: leave it
                if gone:
                    deleted.append(ref)
        await self.kube.delete(store.app_ref(app.name, app.namespace))
        return deleted


def _deletes_with_app(app: Application, live: dict[str, Any]) -> bool:
    """False for an object whose sync options (gitmoor's or Argo CD's) say
    ``Delete=false``; when the object names no Delete option, the app's sync options
    decide (Argo CD: the object's option overrides the app's)."""
    if any(o.replace(" ", "").startswith("Delete=") for o in _object_options(live)):
        try:
            return directives(live).options.delete
        except GitmoorError:
            return True  # a malformed annotation on a live object: the cascade decides
    return "Delete=false" not in app.spec.sync_policy.sync_options


def _object_options(live: dict[str, Any]) -> list[str]:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return [
        item.strip()
        for key in ("gitmoor.io/sync-options", "argocd.argoproj.io/sync-options")
        for item in str(annotations.get(key) or "").split(",")
    ]


def _warning_text(warnings: tuple[str, ...], limit: int = 5) -> str:
    """Warnings as one condition message, the first ``limit`` of them spelt out."""
    shown = "; ".join(warnings[:limit])
    more = len(warnings) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


def _same_status(current: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in new.items() if k != "reconciledAt")


def inventory(app: Application) -> list[ObjectRef]:
    """What the app applied before: its status resources (Argo CD keeps the same list)."""
    out = []
    for r in app.status.get("resources") or []:
        try:
            out.append(
                ObjectRef(
                    r.get("group", ""), r["version"], r["kind"], r.get("namespace", ""), r["name"]
                )
            )
        except KeyError:
            continue
    return out


def _conditions(app: Application, ctype: str | None, message: str) -> list[dict[str, str]]:
    """The app's conditions after this comparison: at most one error or warning,
    keeping lastTransitionTime when the same condition stands."""
    if ctype is None:
        return []
    for c in app.status.get("conditions") or []:
        if c.get("type") == ctype and c.get("message") == message:
            return [c]
    return [{"type": ctype, "message": message, "lastTransitionTime": store.now_iso()}]


__all__ = ["Desired", "Engine", "inventory", "is_hook"]
