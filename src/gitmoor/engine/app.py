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
import dataclasses
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gitmoor.engine import children, operation, projects, store
from gitmoor.engine import inventory as inventory_store
from gitmoor.engine.automation import Gates, dependency_gates
from gitmoor.engine.compare import (
    Comparison,
    DryRunCache,
    compare_app,
    ignore_rules,
    is_hook,
    verdict_salt,
)
from gitmoor.engine.normalize import ResourceDiff
from gitmoor.engine.plan import annotation_warnings, directives
from gitmoor.engine.prepare import PrepareOptions, prepare
from gitmoor.engine.prune import Deletion, delete_owned
from gitmoor.engine.redaction import redactor_for, scrub_message
from gitmoor.engine.sync import (
    Phase,
    StepOutcome,
    SyncContext,
    SyncEvent,
    SyncOptions,
    SyncResult,
    parse_time,
)
from gitmoor.engine.why import explain
from gitmoor.model import (
    GitmoorError,
    JSONDict,
    Manifest,
    ObjectRef,
    RetryableError,
    UserInputError,
)
from gitmoor.model.application import (
    DEFAULT_NAMESPACE,
    GROUP,
    KIND,
    VERSION,
    Application,
    Pin,
    parse_application,
)
from gitmoor.model.project import IN_CLUSTER_SERVER, AppProject, ProjectViolation
from gitmoor.model.status import (
    STATUS_RESOURCE_BOUND,
    AutomationStatus,
    HistoryEntry,
    OperationState,
    Progress,
    ResultEntry,
    SyncOperation,
    SyncResultSummary,
    bounded,
    ref_of,
    summary_of,
)
from gitmoor.render import RenderCache, RenderOptions, render_app
from gitmoor.settings import get_project
from gitmoor.settings.clusters import ClusterNotRegisteredError
from gitmoor.settings.decryption import load_decryption_keys
from gitmoor.settings.repos import credentials_for, load_credentials
from gitmoor.source import checkout_async, count_commits_async, resolve_tagged_async

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from gitmoor.kube.cache import ClusterCache
    from gitmoor.source import RepoCredentials

log = logging.getLogger("gitmoor.engine")
#: how often a running sync renews operationState.heartbeatAt
HEARTBEAT_SECONDS = 10.0
#: a Running operation whose heartbeat is older than this was cut off (a step
#: renews it every 10 s, and a waiting operation is stepped every few seconds)
STALE_RUNNING = 45.0
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
    #: values that were encrypted in Git (``RenderResult.secret_values``): masked in
    #: every output whatever their kind. Memory only, never written or shown.
    secret_values: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


#: the revision a desired state rendered from a working tree carries (no commit)
LOCAL_REVISION = "working-tree"


@dataclass(frozen=True, slots=True)
class LocalTree:
    """A working tree to render instead of a commit: ``path`` (the app's directory,
    relative) inside ``root`` (the repository's root, where the render's path
    checks stop, so an overlay's ``../../base`` resolves as in the commit)."""

    root: Path
    path: str


class ClusterResolver(Protocol):
    async def client_for(self, name: str) -> KubeClient: ...


@dataclass(frozen=True, slots=True)
class AppDeletion:
    """What deleting an app did to its objects (``Engine.delete``)."""

    #: the objects deleted with the app (cascade)
    deleted: tuple[ObjectRef, ...] = ()
    #: the objects left in place because their cluster is no longer registered
    left: tuple[ObjectRef, ...] = ()
    #: that cluster's name; "" when the destination was reached
    unreachable_cluster: str = ""

    @property
    def note(self) -> str:
        """One sentence on the objects left behind; "" when none were."""
        if not self.unreachable_cluster:
            return ""
        return f"left {len(self.left)} objects on unreachable cluster {self.unreachable_cluster}"


class DeleteIncompleteError(GitmoorError):
    """Some of an app's objects could not be deleted (an API error, or an object
    that kept changing), so the app was kept: deleting it would orphan them
    silently. Argo CD's resources finalizer likewise keeps the Application until
    its objects are gone. ``failed``: each object with why."""

    def __init__(self, app: str, failed: list[tuple[ObjectRef, str]]) -> None:
        shown = "; ".join(f"{ref}: {why}" for ref, why in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        super().__init__(
            f"application {app} was not deleted: {len(failed)} of its objects could not be "
            f"deleted ({shown}{more}); its automation is off; delete it again once the "
            "cause is fixed",
            concerns=f"application {app}",
        )
        self.app = app
        self.failed = tuple(failed)


@dataclass
class _Cascade:
    """What one cascade pass did: the deleted objects, the ones that failed (with
    why), and, when the destination cluster is no longer registered, its name and
    every object of the inventory, left where they are."""

    deleted: list[ObjectRef] = field(default_factory=list)
    failed: list[tuple[ObjectRef, str]] = field(default_factory=list)
    left: list[ObjectRef] = field(default_factory=list)
    gone_cluster: str = ""


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
    #: verdicts of dry-runs and applies by (object, live resourceVersion, content):
    #: the refresh after a sync needs no dry-run of what the sync wrote
    dry_runs: DryRunCache | None = field(default_factory=DryRunCache)
    #: called with (step name, seconds) after each part of an operation: the
    #: benchmark's timings ("prepare", "step", "finish")
    on_step: Callable[[str, float], None] | None = None
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
    #: operations stepped in this process, by (namespace, app, startedAt): their
    #: contexts keep the results so far; another process rebuilds one from status
    _contexts: dict[tuple[str, str, str], tuple[SyncContext, Desired]] = field(
        default_factory=dict, init=False, repr=False
    )
    #: the options a caller of ``sync`` gave (timeouts, waits) for its operation
    _options: dict[tuple[str, str, str], SyncOptions] = field(
        default_factory=dict, init=False, repr=False
    )
    #: (namespace, app, digest) of the kept verdicts loaded into ``dry_runs``
    _seeded: set[tuple[str, str, str]] = field(default_factory=set, init=False, repr=False)
    #: a desired state computed while the operation's start was written
    _prefetched: dict[tuple[str, str, str], asyncio.Task[Desired]] = field(
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

    async def desired(
        self, app: Application, revision: str | None = None, *, local: LocalTree | None = None
    ) -> Desired:
        """Resolve, fetch, render and prepare the app at ``revision`` (default: its target),
        within what its project permits.

        ``local``: render that working tree instead of a commit (``gitmoor diff
        --local``, Argo CD's ``argocd app diff --local``). No git request is made;
        the project's checks, the app's decryption keys and ``prepare`` apply as
        for a commit, so what the diff shows is what a sync of it would do. A
        working tree is not a commit, so its render is not cached."""
        pin = app.spec.sync_policy.pin
        if pin is not None and revision is None and local is None:
            # A pinned app's target is its pin (``gitmoor app rollback --pin``): the
            # comparison, a diff and a sync without a revision all use it, with the
            # source recorded for that deploy.
            app = _with_source(app, pin.source)
            revision = pin.revision
        src = app.spec.source
        project, server = await self.admit(app)
        if local is not None:
            log.info(
                "event=render_working_tree app=%s/%s root=%s path=%s",
                app.namespace,
                app.name,
                local.root,
                local.path,
            )
            return await self._prepared(
                app, project, server, local.root, local.path, LOCAL_REVISION, None, cached=False
            )
        creds = await self._creds_for(app)
        commit, tag = await self._git(
            "ls-remote", src.repo_url, self._resolve(app, revision, creds)
        )
        root = await self._git(
            "fetch",
            src.repo_url,
            checkout_async(src.repo_url, commit, creds, cache_dir=self.git_cache_dir),
        )
        return await self._prepared(app, project, server, root, src.path, commit, tag, cached=True)

    async def _prepared(
        self,
        app: Application,
        project: AppProject,
        server: str,
        root: Path,
        path: str,
        revision: str,
        tag: str | None,
        *,
        cached: bool,
    ) -> Desired:
        """Render ``path`` of the tree ``root`` and prepare it: the one way from a tree
        to a desired state, for a commit and for a working tree alike."""
        src = app.spec.source
        decryption = src.decryption or project.decryption
        options = RenderOptions(
            release_name=src.helm.release_name or app.name,
            namespace=app.spec.destination.namespace,
            value_files=src.helm.value_files,
            values=src.helm.values,
            decryption=None
            if decryption is None
            else await load_decryption_keys(self.kube, app.namespace, decryption),
            require_encrypted_secrets=project.require_encrypted_secrets,
        )
        if cached:
            rendered = await asyncio.to_thread(
                self.render_cache.get_or_render, root, path, revision, options
            )
        else:
            rendered = await asyncio.to_thread(render_app, root, path, revision, options)
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
        children.check_children(project, app, manifests)
        await children.check_child_apps(self.kube, app, manifests)
        projects.check_lint_rules(
            project, manifests, decrypted=rendered.secret_values, app_path=path
        )
        # Annotation warnings (an Argo CD annotation overruled by gitmoor's, one
        # ignored as Argo CD ignores it) travel with the render's: shown by diff and
        # sync, and as the app's ComparisonWarning condition.
        warnings = (*rendered.warnings, *annotation_warnings(manifests))
        # Before any compare, diff or sync sees the objects: a value decrypted into
        # a ConfigMap or a custom resource is masked like a Secret's (issue 13).
        redactor_for(app, project).learn_secret_values(rendered.secret_values)
        return Desired(
            revision, manifests, warnings, tag, project, secret_values=rendered.secret_values
        )

    # ------------------------------------------------------------ refresh

    async def refresh(
        self, app: Application, *, desired: Desired | None = None
    ) -> tuple[Application, Comparison | None]:
        """Recompute sync and health status and write them to the app's status.

        ``desired``: the app's desired state at its target, when the caller has it
        (the sync that just ran): no second resolve, checkout or render."""
        started = time.monotonic()
        status, comparison = await self._compared(app, desired)
        if comparison is not None:
            log.info(
                "event=refreshed app=%s/%s revision=%s sync=%s health=%s resources=%d seconds=%.3f",
                app.namespace,
                app.name,
                comparison.revision[:12],
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
        return await operation.refreshed(self.kube, app, status), comparison

    async def _compared(
        self,
        app: Application,
        desired: Desired | None = None,
        known: dict[ObjectRef, JSONDict] | None = None,
    ) -> tuple[JSONDict, Comparison | None]:
        """The status a refresh writes, and its comparison (None after an error)."""
        try:
            await self._seed_verdicts(app)
            if desired is None:
                desired = await self.desired(app)
            dest = await self.dest(app)
            comparison = await compare_app(
                app,
                desired.revision,
                desired.manifests,
                dest,
                await self.inventory_refs(app),
                cache=self.cache_for(app),
                dry_runs=self.dry_runs,
                dry_run_as=await self._acting_client(app, desired),
                known=known,
                redactor=redactor_for(app, desired.project),
            )
        except GitmoorError as e:
            # A render or kube error can quote a value (a sops or kustomize message).
            text = scrub_message(app, str(e), desired.project if desired else None)
            log.info("event=comparison_error app=%s/%s error=%s", app.namespace, app.name, text)
            return {
                "sync": {
                    "status": "Unknown",
                    "revision": operation.status_of(app).sync_revision,
                },
                # Argo CD's type for an app its project does not permit.
                "conditions": operation.conditions(
                    app,
                    "InvalidSpecError" if isinstance(e, ProjectViolation) else "ComparisonError",
                    text,
                ),
                "reconciledAt": store.now_iso(),
            }, None
        conditions = operation.conditions(app, None, "")
        if not desired.manifests:
            conditions = operation.conditions(
                app,
                "ComparisonWarning",
                "the render produced no objects; nothing is pruned unless allowEmpty is set",
            )
        elif desired.warnings:
            conditions = operation.conditions(
                app,
                "ComparisonWarning",
                # A tool's warning (kustomize, helm) can quote a value.
                scrub_message(app, _warning_text(desired.warnings), desired.project),
            )
        entries = [r.to_dict() for r in comparison.resources]
        status: JSONDict = {
            "sync": {"status": comparison.sync.value, "revision": desired.revision},
            "health": {
                "status": comparison.health.status.value,
                "message": comparison.health.message,
            },
            **await self._resources_status(app, entries),
            "conditions": conditions,
            "reconciledAt": store.now_iso(),
        }
        return status, comparison

    async def _resources_status(self, app: Application, entries: list[JSONDict]) -> JSONDict:
        """``resources`` (all of them, or the worst ``STATUS_RESOURCE_BOUND`` with the
        rest in the inventory), ``summary`` and the inventory pointer."""
        typed = operation.resource_entries(entries)
        out: JSONDict = {"summary": summary_of(typed)}
        previous = operation.status_of(app).inventory_ref("resources")
        if len(entries) <= STATUS_RESOURCE_BOUND:
            out["resources"] = entries
            if previous is not None:
                await inventory_store.delete_inventory(self.kube, app.name, app.namespace)
                out["inventory"] = {"resources": None}
            return out
        out["resources"] = [e.to_dict() for e in bounded(typed)]
        pointer = await inventory_store.write_inventory(
            self.kube, app, "resources", entries, previous=previous
        )
        out["inventory"] = {"resources": pointer.to_dict()}
        return out

    async def inventory_refs(self, app: Application) -> list[ObjectRef]:
        """What the app applied before, the set a prune is computed against: its
        resources in the inventory (Argo CD keeps the same list in the status)."""
        return [r for r in (ref_of(e) for e in await self.resources(app)) if r is not None]

    async def resources(self, app: Application) -> list[JSONDict]:
        """Every object of the app as the last refresh compared it: the one way to
        read them (``app get``, the API), wherever they are kept."""
        pointer = operation.status_of(app).inventory_ref("resources")
        if pointer is None:
            return [r for r in app.status.get("resources") or [] if isinstance(r, dict)]
        return await inventory_store.read_inventory(self.kube, app.name, app.namespace, pointer)

    async def sync_results(self, app: Application) -> list[JSONDict]:
        """Every per-object result of the app's last sync."""
        state = operation.status_of(app)
        pointer = state.inventory_ref("operation")
        if pointer is not None:
            return await inventory_store.read_inventory(self.kube, app.name, app.namespace, pointer)
        op = state.operation_state
        if op is None or op.sync_result is None:
            return []
        return [r.to_dict() for r in op.sync_result.resources]

    async def diff(
        self,
        app: Application,
        *,
        revision: str | None = None,
        desired: Desired | None = None,
        local: LocalTree | None = None,
    ) -> Comparison:
        """Compare the app at ``revision`` (default: its target; or as ``desired``, or
        the working tree ``local``) with the cluster, writing nothing: ``gitmoor app
        diff`` and ``gitmoor diff --local``. Objects whose kept verdict still holds
        (same content, same resourceVersion) need no dry-run."""
        await self._seed_verdicts(app)
        if desired is None:
            desired = await self.desired(app, revision, local=local)
        return await compare_app(
            app,
            desired.revision,
            desired.manifests,
            await self.dest(app),
            await self.inventory_refs(app),
            cache=self.cache_for(app),
            dry_runs=self.dry_runs,
            dry_run_as=await self._acting_client(app, desired),
            redactor=redactor_for(app, desired.project),
        )

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
        automated: bool = False,
        retry_count: int = 0,
        poll: float = 0.5,
        _source: JSONDict | None = None,
        _rollback_id: int | None = None,
        ignore_dependencies: bool = False,
    ) -> SyncResult:
        """Sync the app (to ``revision``, default its target) and record the outcome:
        start an operation, then take its steps here until it ends, ``poll`` seconds
        apart while it waits. ``gitmoor app sync`` runs this; the controller takes
        one step per pass instead (``start_sync``, ``step``)."""
        options = options or SyncOptions.for_app(app)
        if not record or options.dry_run:
            return await self._unrecorded(app, options, revision, progress, _source, poll)
        op = SyncOperation(
            revision=revision or "",
            prune=options.prune,
            force_conflicts=options.force_conflicts,
            resources=tuple(sorted(options.only)) if options.only is not None else None,
            initiated_by=initiated_by,
            automated=automated,
            rollback_id=_rollback_id,
            source=_source,
            ignore_dependencies=ignore_dependencies,
        )
        # The Running write and the resolve, checkout and render overlap.
        desired_task = asyncio.create_task(self._desired_for(app, op, None))
        try:
            app = await self.start_sync(app, op, options=options, retry_count=retry_count)
        except BaseException:
            desired_task.cancel()
            with contextlib.suppress(BaseException):
                await desired_task
            raise
        self._prefetched[self._key(app)] = desired_task
        said = ""
        while True:
            outcome = await self.step(app, progress=progress)
            if outcome is not None and outcome.result is None and outcome.message != said:
                said = outcome.message
                if progress is not None:
                    progress(SyncEvent("wait", said))
            if outcome is None:
                state = operation.status_of(app).operation_state
                phase = state.phase if state is not None else Phase.ERROR
                return SyncResult(revision or "", phase, state.message if state else "")
            if outcome.result is not None:
                return outcome.result
            await asyncio.sleep(poll)
            app = await store.get_app(self.kube, app.name, app.namespace)

    async def _unrecorded(
        self,
        app: Application,
        options: SyncOptions,
        revision: str | None,
        progress: Callable[[SyncEvent], None] | None,
        source: JSONDict | None,
        poll: float,
    ) -> SyncResult:
        """A dry run (or a sync nobody records): stepped in memory, nothing written
        to the app's status."""
        op = SyncOperation(revision=revision or "", source=source)
        try:
            desired = await self._desired_for(app, op, None)
            ctx = await self._new_context(app, op, desired, options, progress, None)
        except RetryableError as e:
            return SyncResult(revision or "", Phase.ERROR, scrub_message(app, str(e)))
        except GitmoorError as e:
            return SyncResult(revision or "", Phase.FAILED, scrub_message(app, str(e)))
        while True:
            outcome = await ctx.step()
            if outcome.result is not None:
                return outcome.result
            await asyncio.sleep(poll)

    async def start_sync(
        self,
        app: Application,
        op: SyncOperation,
        *,
        options: SyncOptions | None = None,
        retry_count: int = 0,
    ) -> Application:
        """Start an operation: ``operationState`` Running, owned by this engine.

        Refused while another operation runs (Argo CD: "another operation is
        already in progress"), unless that one stopped reporting (its runner died)."""
        current = operation.status_of(app).operation_state
        if current is not None and current.phase in (Phase.RUNNING, Phase.TERMINATING):
            silence = running_silence(app)
            if silence is not None and silence < STALE_RUNNING:
                raise UserInputError(
                    f"application {app.name}: another operation is already in progress "
                    f"(started {current.started_at} by {current.runner or 'unknown'}); "
                    f"wait for it or stop it with `gitmoor app terminate-op {app.name}`"
                )
        if not op.automated and not op.dry_run:
            await self.check_window(app)
        if (
            app.spec.depends_on
            and not op.automated
            and op.rollback_id is None
            and not op.ignore_dependencies
        ):
            # A manual sync warns and stops (the rule); a rollback is a
            # recovery and is never held back by what other apps do.
            gates = await self.dependency_gates(app)
            if gates.cycle or gates.dependencies:
                raise UserInputError(
                    f"application {app.name}: {gates.cycle or gates.dependencies}; sync "
                    "those first, or pass --ignore-dependencies to sync anyway",
                    concerns=app.name,
                )
        app = await operation.started(self.kube, app, op, self.identity, retry_count=retry_count)
        if options is not None:
            self._options[self._key(app)] = options
        return app

    def _key(self, app: Application) -> tuple[str, str, str]:
        state = operation.status_of(app).operation_state
        return (app.namespace, app.name, state.started_at if state else "")

    async def step(
        self, app: Application, *, progress: Callable[[SyncEvent], None] | None = None
    ) -> StepOutcome | None:
        """Take the next step of the app's running operation (None: none runs).

        Everything the step needs is in the app's ``operationState``: in this
        process the context of the last step is reused (its results so far); any
        other process rebuilds it from there."""
        state = operation.status_of(app).operation_state
        if state is None or state.phase not in (Phase.RUNNING, Phase.TERMINATING):
            return None
        key = self._key(app)
        running = self._contexts.get(key)
        t0 = time.monotonic()
        if state.phase is Phase.TERMINATING:
            # Argo CD's terminate-op: the operation ends Failed between steps.
            ctx = running[0] if running is not None else None
            return await self._end(
                app,
                state,
                running,
                self._outcome(app, state, ctx, Phase.FAILED, "operation terminated"),
            )
        if running is None:
            try:
                prefetched = self._prefetched.pop(key, None)
                desired = await self._desired_for(app, state.operation, state, prefetched)
                new = await self._new_context(
                    app, state.operation, desired, self._options.get(key), progress, state
                )
                running = (new, desired)
            except RetryableError as e:
                return await self._end(
                    app, state, None, self._outcome(app, state, None, Phase.ERROR, str(e))
                )
            except GitmoorError as e:
                return await self._end(
                    app, state, None, self._outcome(app, state, None, Phase.FAILED, str(e))
                )
            self._observe("prepare", t0)
        elif progress is not None:
            running[0].runner.progress = progress
        ctx = running[0]
        t1 = time.monotonic()
        beat = asyncio.create_task(self._heartbeat(app))
        try:
            outcome = await ctx.step()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, GitmoorError):
                await beat
        self._observe("step", t1)
        if outcome.result is not None:
            return await self._end(app, state, running, outcome)
        self._contexts[key] = running
        waiting = dataclasses.replace(
            state, message=outcome.message, progress=outcome.progress, runner=self.identity
        )
        silence = running_silence(app)
        if (
            waiting.message != state.message
            or waiting.progress != state.progress
            or waiting.runner != state.runner
            or (silence is not None and silence >= HEARTBEAT_SECONDS)
        ):
            await operation.progressed(
                self.kube, app, dataclasses.replace(waiting, heartbeat_at=store.now_iso())
            )
        return outcome

    def _outcome(
        self,
        app: Application,
        state: OperationState,
        ctx: SyncContext | None,
        phase: Phase,
        message: str,
    ) -> StepOutcome:
        progress = state.progress or Progress()
        if ctx is not None:
            message = ctx.redactor.scrub(message)
        # An error before this sync masked anything (a render, a sops failure) may
        # still quote a value the app's Redactors know; never another app's (an
        # oracle: gitmoor.engine.redaction).
        message = scrub_message(app, message)
        revision = ctx.revision if ctx is not None else progress.commit
        results = ctx.results if ctx is not None else ()
        return StepOutcome(phase, message, progress, SyncResult(revision, phase, message, results))

    async def _desired_for(
        self,
        app: Application,
        op: SyncOperation,
        state: OperationState | None,
        prefetched: asyncio.Task[Desired] | None = None,
    ) -> Desired:
        """The desired state an operation syncs: its pinned commit once it has one
        (a resumed sync syncs what it started with), else its revision."""
        if prefetched is not None:
            return await prefetched
        source_app = _with_source(app, op.source)
        progress = state.progress if state is not None else None
        if progress is not None and progress.commit:
            desired = await self.desired(source_app, progress.commit)
            if progress.tag and desired.tag is None:
                desired = dataclasses.replace(desired, tag=progress.tag)
            return desired
        return await self.desired(source_app, op.revision or None)

    async def _new_context(
        self,
        app: Application,
        op: SyncOperation,
        desired: Desired,
        options: SyncOptions | None,
        progress: Callable[[SyncEvent], None] | None,
        state: OperationState | None,
    ) -> SyncContext:
        source_app = _with_source(app, op.source)
        started = parse_time(state.started_at) if state is not None else None
        await self._seed_verdicts(app)
        return SyncContext(
            source_app,
            desired.revision,
            desired.manifests,
            await self._acting_client(source_app, desired),
            inventory=await self.inventory_refs(app),
            options=options or options_for(app, op),
            progress=progress,
            cache=self.cache_for(app),
            dry_runs=self.dry_runs,
            claims=self.still_declares,
            version=desired.tag,
            started=started,
            state=state.progress if state is not None else None,
            redactor=redactor_for(source_app, desired.project),
        )

    async def _end(
        self,
        app: Application,
        state: OperationState,
        running: tuple[SyncContext, Desired] | None,
        outcome: StepOutcome,
    ) -> StepOutcome:
        """Record the operation's end, its history entry and the refreshed status,
        in one write when the sync's own desired state can serve the refresh."""
        ctx, desired = running if running is not None else (None, None)
        key = self._key(app)
        self._contexts.pop(key, None)
        self._options.pop(key, None)
        result = outcome.result
        assert result is not None
        op = state.operation
        t0 = time.monotonic()
        results = [r.to_dict() for r in result.resources]
        typed = [e for e in (ResultEntry.from_dict(r) for r in results) if e]
        summary_entries = typed
        pointer_patch: JSONDict = {}
        if len(typed) > STATUS_RESOURCE_BOUND:
            failed_first = sorted(
                range(len(typed)),
                key=lambda i: (typed[i].status not in ("failed", "hook-failed"), i),
            )[:STATUS_RESOURCE_BOUND]
            summary_entries = [typed[i] for i in sorted(failed_first)]
            pointer = await inventory_store.write_inventory(
                self.kube,
                app,
                "operation",
                results,
                previous=operation.status_of(app).inventory_ref("operation"),
            )
            pointer_patch = {"operation": pointer.to_dict()}
        elif operation.status_of(app).inventory_ref("operation") is not None:
            pointer_patch = {"operation": None}
        final = dataclasses.replace(
            state,
            phase=outcome.phase,
            message=outcome.message,
            finished_at=store.now_iso(),
            heartbeat_at=store.now_iso(),
            runner=self.identity,
            progress=outcome.progress,
            sync_result=SyncResultSummary(
                result.revision, tuple(summary_entries), len(typed), op.source
            ),
        )
        history = None
        if result.ok and op.resources is None:
            # Only a full sync deploys a revision (Argo CD records the same way): a
            # selective sync in history would pass for a complete deploy of it.
            history = operation.history_after(
                app,
                result.revision,
                state.started_at,
                op.initiated_by,
                op.source or app.spec.source.to_dict(),
                op.reason,
            )
        # The sync's desired state serves the refresh that follows when it synced
        # the target: no second resolve, checkout and render, and one status write.
        same_target = op.source is None and (
            op.automated or op.revision in ("", app.spec.source.target_revision)
        )
        refreshed: JSONDict | None = None
        comparison: Comparison | None = None
        if desired is not None and same_target:
            with contextlib.suppress(GitmoorError):
                refreshed, comparison = await self._compared(
                    app, desired, ctx.live if ctx is not None else None
                )
        wrote = any(r.action.value in ("created", "configured", "pruned") for r in result.resources)
        has_verdicts = operation.status_of(app).inventory_ref("verdicts") is not None
        if (
            desired is not None
            and comparison is not None
            and not op.dry_run
            and (wrote or not has_verdicts)
        ):
            # Kept when the sync wrote something: a sync that changed nothing
            # writes nothing, its own records included.
            with contextlib.suppress(GitmoorError):
                pointer_patch.update(await self._keep_verdicts(app, desired, comparison))
        if pointer_patch:
            refreshed = {
                **(refreshed or {}),
                "inventory": {**(refreshed or {}).get("inventory", {}), **pointer_patch},
            }
        log.info(
            "event=synced app=%s/%s revision=%s phase=%s seconds=%.3f message=%r",
            app.namespace,
            app.name,
            result.revision[:12],
            outcome.phase.value,
            time.monotonic() - t0,
            result.message,
        )
        written = await operation.finished(
            self.kube, app, final, history=history, refreshed=refreshed
        )
        if comparison is None:
            # Status follows at once: a user reading `app get` after a sync sees its outcome.
            with contextlib.suppress(GitmoorError):
                await self.refresh(written)
        self._observe("finish", t0)
        return outcome

    async def _keep_verdicts(
        self, app: Application, desired: Desired, comparison: Comparison
    ) -> JSONDict:
        """Keep the sync's verdicts (object, live resourceVersion, digest of the
        rendered content: ``DryRunCache.key``) in the app's inventory, so that a
        fresh process (a CLI re-sync or ``app diff``, a restarted controller) needs
        a dry-run only for objects whose content or resourceVersion moved since.

        Only "unchanged" verdicts are kept: a change is dry-run again anyway, to
        show its diff. Who can write ConfigMaps in the Applications' namespace can
        forge a verdict and make gitmoor skip an object's apply until it changes:
        the same people who can edit the Applications there."""
        if self.dry_runs is None:
            return {}
        redactor = redactor_for(app, desired.project)
        salt = verdict_salt(ignore_rules(app), redactor)
        entries: list[JSONDict] = []
        for m in desired.manifests:
            live = comparison.live.get(m.ref)
            if live is None or is_hook(m) or redactor.covers(m.obj):
                # Not for a Secret or a redacted kind: the key holds an unkeyed
                # digest of the rendered object, which an offline guess of a
                # value could be tested against (one dry-run more for those).
                continue
            key = DryRunCache.key(m, live, salt)
            verdict = self.dry_runs.get(key)
            if verdict is not None and not verdict.changed:
                entries.append({"key": list(key)})
        previous = operation.status_of(app).inventory_ref("verdicts")
        pointer = await inventory_store.write_inventory(
            self.kube, app, "verdicts", entries, previous=previous
        )
        return {} if pointer == previous else {"verdicts": pointer.to_dict()}

    async def _seed_verdicts(self, app: Application) -> None:
        """Load the verdicts the app's last sync kept (once per process and write)."""
        pointer = operation.status_of(app).inventory_ref("verdicts")
        if self.dry_runs is None or pointer is None:
            return
        seen = (app.namespace, app.name, pointer.digest)
        if seen in self._seeded:
            return
        self._seeded.add(seen)
        try:
            entries = await inventory_store.read_inventory(
                self.kube, app.name, app.namespace, pointer
            )
        except GitmoorError as err:
            log.info("event=verdicts_unreadable app=%s/%s error=%s", app.namespace, app.name, err)
            return
        for entry in entries:
            key = entry.get("key")
            if isinstance(key, list) and len(key) == 6 and all(isinstance(k, str) for k in key):
                g, k, ns, name, _rv, _digest = key
                self.dry_runs.put(
                    (key[0], key[1], key[2], key[3], key[4], key[5]),
                    ResourceDiff(ObjectRef(g, "", k, ns, name), None, None, "", changed=False),
                )

    async def report_invalid_spec(
        self, name: str, namespace: str, status: JSONDict, message: str
    ) -> JSONDict | None:
        """Write an ``InvalidSpecError`` condition on an app whose spec cannot be
        parsed (once); the object written, or None when it stood already."""
        return await operation.invalid_spec(self.kube, name, namespace, status, message)

    async def refuse_request(self, app: Application, message: str) -> Application:
        """Record a requested operation that could not start (a malformed request)."""
        return await operation.interrupted(self.kube, app, scrub_message(app, message))

    async def terminate(self, app: Application) -> bool:
        """Ask the app's running operation to stop between steps (``gitmoor app
        terminate-op``, Argo CD's ``terminate-op``). False when none runs."""
        state = operation.status_of(app).operation_state
        if state is None or state.phase not in (Phase.RUNNING, Phase.TERMINATING):
            return False
        await operation.terminate(self.kube, app)
        log.info("event=operation_terminating app=%s/%s", app.namespace, app.name)
        return True

    async def request_sync(self, app: Application, op: SyncOperation) -> Application:
        """Ask the controller to sync (Argo CD's ``operation`` field): it runs the
        operation at its next pass, which the request wakes (it bumps the generation).
        A manual sync that a sync window forbids is refused here, before anything is
        written, as Argo CD's API refuses it (the controller checks again at start)."""
        if not op.automated and not op.dry_run:
            await self.check_window(app)
        return await store.set_operation(self.kube, app, op.to_dict())

    async def check_window(self, app: Application, now: datetime | None = None) -> None:
        """Refuse a manual sync or rollback that the project's sync windows forbid now
        (:class:`~gitmoor.engine.windows.SyncWindowClosed`, saying when it opens).

        Argo CD checks ``CanSync(isManual=true)`` in its API's Sync and again in the
        controller before each sync; gitmoor checks where an operation is requested
        and where it starts. A dry run applies nothing and is not refused (Argo CD
        refuses it too). A project that cannot be loaded, or a destination it
        refuses, is left to the operation, which reports it with the field."""
        from gitmoor.engine.windows import SyncWindowClosed, manual_verdict

        try:
            project = await projects.load_project(self._lookup_project, app)
            if not project.sync_windows:
                return
            server = await self._server(app)
        except UserInputError:
            return
        verdict = manual_verdict(project, app, server, now or datetime.now(UTC))
        if verdict.allowed:
            return
        log.info(
            "event=sync_refused app=%s/%s reason=sync_window project=%s until=%s",
            app.namespace,
            app.name,
            project.name,
            verdict.until.isoformat() if verdict.until else "none",
        )
        raise SyncWindowClosed(
            f"cannot sync {app.name}: {verdict.message} (project {project.name})",
            concerns=app.name,
            until=verdict.until,
        )

    async def set_automation(
        self, app: Application, *, enabled: bool, prune: bool = False, self_heal: bool = False
    ) -> Application:
        automated: JSONDict | None = {"prune": prune, "selfHeal": self_heal} if enabled else None
        return await store.patch_spec(self.kube, app, {"syncPolicy": {"automated": automated}})

    async def suspend(self, app: Application, *, suspended: bool = True) -> Application:
        """Pause (or resume) the app's automation, as Flux's ``spec.suspend``."""
        return await store.patch_spec(self.kube, app, {"syncPolicy": {"suspended": suspended}})

    def _observe(self, name: str, since: float) -> None:
        if self.on_step is not None:
            self.on_step(name, time.monotonic() - since)

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
        return any(m.ref.key == ref.key for m in theirs.manifests)

    async def _heartbeat(self, app: Application) -> None:
        """Renew operationState.heartbeatAt while a step runs, so the controller can
        tell a sync in progress (here, in the CLI or in another replica) from one
        cut off by a crash."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(GitmoorError):
                await operation.heartbeat(self.kube, app)

    async def rollback(
        self,
        app: Application,
        history_id: int,
        *,
        initiated_by: str = "",
        progress: Callable[[SyncEvent], None] | None = None,
        options: SyncOptions | None = None,
        pin: bool = False,
    ) -> SyncResult:
        """Sync the revision of history entry ``history_id`` and switch automated sync off,
        so the controller does not roll forward again (Argo CD refuses a rollback of an
        automated app instead; here it is one step), and unpin a pinned app. With
        ``pin``, automation stays on and the app is pinned there instead
        (``spec.syncPolicy.pin``)."""
        entry, app = await self.prepare_rollback(app, history_id, pin=pin)
        return await self.sync(
            app,
            options,
            revision=entry.revision,
            initiated_by=initiated_by,
            progress=progress,
            _source=entry.source if entry.source and entry.source.get("repoURL") else None,
            _rollback_id=history_id,
        )

    async def prepare_rollback(
        self, app: Application, history_id: int, *, pin: bool = False
    ) -> tuple[HistoryEntry, Application]:
        """The history entry to roll back to, once automation is off (or, with
        ``pin``, once the app is pinned to it with automation left on). A rollback
        a sync window forbids is refused first, before automation is touched."""
        await self.check_window(app)
        history = operation.status_of(app).history
        entry = next((h for h in history if h.id == history_id), None)
        if entry is None:
            raise UserInputError(
                f"application {app.name} has no history entry {history_id} "
                f"(has {[h.id for h in history]})"
            )
        if pin:
            app = await self.pin(app, entry, reason=f"rollback to history entry {entry.id}")
            return entry, app
        # A plain rollback hands the app to the user: automation off, and a pin
        # (from an earlier `rollback --pin` or a health-gated rollback) removed
        # too, or status would go on comparing with the old pin instead of the
        # target while the deployed revision is another one.
        off: JSONDict = {}
        if app.spec.sync_policy.automated is not None:
            off["automated"] = None
        if app.spec.sync_policy.pin is not None:
            off["pin"] = None
            log.info(
                "event=app_unpinned app=%s/%s reason=%r",
                app.namespace,
                app.name,
                f"rollback to history entry {entry.id} without --pin",
            )
        if off:
            app = await store.patch_spec(self.kube, app, {"syncPolicy": off})
        return entry, app

    async def pin(self, app: Application, entry: HistoryEntry, *, reason: str) -> Application:
        """Pin the app to a history entry's revision and source (automation stays on)."""
        source = entry.source if entry.source and entry.source.get("repoURL") else None
        pinned = Pin(entry.revision, entry.id, source, reason)
        log.info(
            "event=app_pinned app=%s/%s revision=%s reason=%r",
            app.namespace,
            app.name,
            entry.revision[:12],
            reason,
        )
        return await store.patch_spec(self.kube, app, {"syncPolicy": {"pin": pinned.to_dict()}})

    async def unpin(self, app: Application) -> Application:
        """Follow the target again (``gitmoor app unpin``): the next refresh compares
        with the branch, and automation syncs it."""
        log.info("event=app_unpinned app=%s/%s", app.namespace, app.name)
        return await store.patch_spec(self.kube, app, {"syncPolicy": {"pin": None}})

    # ------------------------------------------------------------ automation gates

    async def dependency_gates(
        self, app: Application, apps: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Gates:
        """Whether the apps ``spec.dependsOn`` names are Synced and Healthy (and no
        cycle): from ``apps`` (raw, by name; the controller's watch) or a list."""
        if apps is None:
            listed = await self.kube.list(
                await self.kube.resource(GROUP, VERSION, KIND), app.namespace
            )
            apps = {str((o.get("metadata") or {}).get("name", "")): o for o in listed.items}
        return dependency_gates(app.name, {**apps, app.name: app.raw})

    async def window_gate(self, app: Application, now: datetime | None = None) -> Gates:
        """The project's sync windows for an automated sync of the app now: the
        window's sentence and the seconds until it allows one (``Gates``)."""
        from gitmoor.engine.windows import automated_verdict

        project, server = await self.admit(app)
        at = now or datetime.now(UTC)
        verdict = automated_verdict(project, app, server, at)
        if verdict.allowed:
            return Gates()
        wait = (verdict.until - at).total_seconds() if verdict.until is not None else None
        return Gates(window=verdict.message, window_until=verdict.until, window_wait=wait)

    async def record_automation(
        self, app: Application, automation: AutomationStatus, wanted: list[tuple[str, str]]
    ) -> Application:
        """Write ``status.automation`` and the automation's conditions, only when
        either changed (an idle controller writes nothing)."""
        status = operation.status_of(app)
        conditions = operation.automation_conditions(app, wanted)
        patch: JSONDict = {}
        if automation != status.automation:
            patch["automation"] = automation.to_dict()
        if conditions != [c.to_dict() for c in status.conditions]:
            patch["conditions"] = conditions
        if not patch:
            return app
        return await operation.automation_recorded(self.kube, app, patch)

    async def commits_ahead(self, app: Application) -> tuple[str, int | None]:
        """For a pinned app: the commit its target names now, and how many commits
        it is ahead of the pin (None when git cannot tell)."""
        pin = app.spec.sync_policy.pin
        src = app.spec.source
        creds = await self._creds_for(app)
        head = await self.resolve(app, src.target_revision)
        if pin is None or head == pin.revision:
            return head, 0
        n = await count_commits_async(
            src.repo_url, pin.revision, head, creds, cache_dir=self.git_cache_dir
        )
        return head, n

    async def why(self, app: Application) -> list[str]:
        """``gitmoor app why``: the lines of :func:`gitmoor.engine.why.explain` for
        the app now (its status, its dependencies, its project's windows, its pin)."""
        gates = Gates()
        with contextlib.suppress(GitmoorError):
            gates = await self.dependency_gates(app)
        window = Gates()
        with contextlib.suppress(GitmoorError, ImportError):
            window = await self.window_gate(app)
        ahead: tuple[str, int | None] | None = None
        if app.spec.sync_policy.pin is not None:
            with contextlib.suppress(GitmoorError):
                ahead = await self.commits_ahead(app)
        return explain(
            app,
            operation.status_of(app),
            dataclasses.replace(gates, window=window.window, window_until=window.window_until),
            ahead,
        )

    # ------------------------------------------------------------ delete

    async def delete(self, app: Application, *, cascade: bool = True) -> AppDeletion:
        """Delete the app; with ``cascade`` first the objects it owns (and only those).

        As Argo CD: when the app's destination cluster is no longer registered, the
        app is deleted and its objects, which cannot be reached, are left (named
        in the result and logged). When an object cannot be deleted for any other
        reason (an API error, a 409 again and again), the app is kept and
        DeleteIncompleteError names those objects: deleting the app would orphan
        them without a word, where Argo CD's finalizer keeps the app until its
        resources are gone. Deleting again finishes the job."""
        done = _Cascade()
        if cascade:
            # Automation off first, so the controller does not re-create (self-heal)
            # what is being deleted. Argo CD uses a finalizer for the same reason.
            app = await store.patch_spec(
                self.kube, app, {"syncPolicy": {"automated": None, "suspended": True}}
            )
            done = await self._delete_owned_objects(app, attempts=3)
            if done.failed:
                log.warning(
                    "event=app_delete_incomplete app=%s/%s deleted=%d failed=%d",
                    app.namespace,
                    app.name,
                    len(done.deleted),
                    len(done.failed),
                )
                raise DeleteIncompleteError(app.name, done.failed)
        # The cascade is done here (or not wanted): a cascade finalizer on the app
        # would only hold it until a controller repeats it, or, with
        # --cascade=false, delete what the user keeps (Argo CD's `app delete
        # --cascade=false` removes its finalizer the same way).
        for _ in range(5):  # a 409 is someone else's finalizer write: read again
            if await children.remove_cascade_finalizers(self.kube, app):
                break
        await self.kube.delete(store.app_ref(app.name, app.namespace))
        # Owner references take them with the app where a garbage collector runs;
        # deleted here too, so that nothing is left where none does.
        with contextlib.suppress(GitmoorError):
            await inventory_store.delete_inventory(self.kube, app.name, app.namespace)
        if done.gone_cluster:
            log.warning(
                "event=app_deleted_objects_left app=%s/%s cluster=%s objects_left=%d",
                app.namespace,
                app.name,
                done.gone_cluster,
                len(done.left),
            )
        return AppDeletion(tuple(done.deleted), tuple(done.left), done.gone_cluster)

    async def _delete_owned_objects(self, app: Application, *, attempts: int = 1) -> _Cascade:
        """Delete every object the app owns, last applied first: the cascade of
        ``delete`` and of the finalizer. An object that changed between the read and
        the delete (409) is read and tried again, up to ``attempts`` times; one that
        still cannot be deleted (that, or an API error) is in ``failed``: the caller
        keeps the app. Objects that say ``Delete=false`` are kept, as Argo CD's
        finalizer keeps them. A destination cluster no longer registered deletes
        nothing and names every object as left (Argo CD's finalizer: "Resource
        entries removed from undefined cluster")."""
        out = _Cascade()
        refs = list(reversed(await self.inventory_refs(app)))
        try:
            dest = await self.dest(app)
        except ClusterNotRegisteredError as e:
            log.warning(
                "event=cascade_cluster_gone app=%s/%s cluster=%s objects_left=%d",
                app.namespace,
                app.name,
                e.cluster,
                len(refs),
            )
            out.left, out.gone_cluster = refs, e.cluster
            return out
        for ref in refs:
            for attempt in range(1, attempts + 1):
                try:
                    done = await delete_owned(
                        dest, app, ref, keep=lambda live: not _deletes_with_app(app, live)
                    )
                except GitmoorError as e:
                    log.info(
                        "event=cascade_delete_failed app=%s/%s object=%s error=%s",
                        app.namespace,
                        app.name,
                        ref,
                        e,
                    )
                    out.failed.append((ref, str(e)))
                    break
                if done is Deletion.CHANGED:
                    if attempt < attempts:
                        continue
                    out.failed.append((ref, "it changed while being deleted (409 Conflict)"))
                elif done is Deletion.DELETED:
                    out.deleted.append(ref)
                break
        return out

    async def finalize(self, app: Application) -> bool:
        """Carry out the cascade finalizer of an app being deleted (``resources-
        finalizer.gitmoor.io``, or Argo CD's ``resources-finalizer.argocd.argoproj.io``):
        delete the objects it owns, then remove the finalizer so the API server
        deletes the app. True when done (also when there was nothing to do); False
        while something could not be deleted yet (the caller tries again later).

        An object whose delete was accepted counts as done: with Foreground
        propagation it stays visible until its dependents are gone, which the
        garbage collector finishes without the app (Argo CD waits for them; the
        finalizer here does not hold the app through a pod's grace period). A
        destination cluster no longer registered does not hold it either: its
        objects cannot be reached, and Argo CD then removes the finalizer too."""
        if not (children.being_deleted(app.raw) and children.cascade_finalizer(app.raw)):
            return True
        done = await self._delete_owned_objects(app)
        log.info(
            "event=finalizer_cascade app=%s/%s deleted=%d pending=%d cluster_gone=%s",
            app.namespace,
            app.name,
            len(done.deleted),
            len(done.failed),
            done.gone_cluster or "-",
        )
        if done.failed:
            return False
        return await children.remove_cascade_finalizers(self.kube, app)

    async def finalize_unparsed(self, obj: JSONDict, error: str) -> bool | None:
        """:meth:`finalize` for an app being deleted whose spec no longer parses (an
        edit the CRD schema let through, or an older gitmoor's spec a newer one
        refuses): the cascade needs only the inventory, the destination cluster and
        ``Delete=false``, read leniently (``children.deletion_view``), so the app is
        not held in deletion for ever. True when done; False to try again later;
        None when the cascade cannot run until the spec changes (which queues the
        app again): an ``InvalidSpecError`` condition then says why the deletion
        waits and how to end it, and the same is logged."""
        if not (children.being_deleted(obj) and children.cascade_finalizer(obj)):
            return True
        meta = obj.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or self.namespace)
        again: bool | None
        try:
            view = children.deletion_view(obj)
        except UserInputError as e:
            reason, again = str(e), None
        else:
            try:
                return await self.finalize(view)
            except RetryableError:
                raise
            except GitmoorError as e:
                # No cluster registry to resolve its destination, say: tried again
                # with backoff (a cluster no longer registered does not stop it).
                reason, again = str(e), False
        log.warning(
            "event=finalizer_stuck app=%s/%s reason=%s spec_error=%s",
            namespace,
            name,
            reason,
            error,
        )
        status = obj.get("status")
        await operation.invalid_spec(
            self.kube,
            name,
            namespace,
            status if isinstance(status, dict) else {},
            f"{error}. The app is being deleted, but its finalizer cannot delete its "
            f"objects: {reason}. Fix the spec to let it finish, or remove the finalizer "
            "to delete the app and keep its objects (kubectl patch applications.gitmoor.io "
            f"{name} -n {namespace} --type merge -p "
            '\'{"metadata":{"finalizers":null}}\')',
        )
        return again

    async def tree(self, name: str, *, depth: int = children.TREE_DEPTH) -> children.TreeNode:
        """The app with its child Applications and ApplicationSets, recursively
        (``gitmoor app get NAME --tree``)."""
        return await children.app_tree(
            self.kube, name, self.namespace, resources=self.resources, depth=depth
        )


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
    """The refs of the app's status resources (without the inventory objects: use
    ``Engine.inventory_refs`` for the whole set)."""
    return [r for r in (ref_of(e) for e in app.status.get("resources") or []) if r is not None]


def running_silence(app: Application) -> float | None:
    """Seconds since a Running operation last reported, or None when none runs."""
    state = operation.status_of(app).operation_state
    if state is None or state.phase not in (Phase.RUNNING, Phase.TERMINATING):
        return None
    at = parse_time(state.heartbeat_at or state.started_at)
    if at is None:
        return STALE_RUNNING
    return max(0.0, time.time() - at)


def options_for(app: Application, op: SyncOperation) -> SyncOptions:
    """The options of a requested operation: what it names, the app's policy for the rest."""
    auto = app.spec.sync_policy.automated
    return SyncOptions.for_app(
        app,
        prune=op.prune if op.prune is not None else bool(auto and auto.prune),
        dry_run=op.dry_run,
        # Absent: the app's choice (take the fields unless ForceConflicts=false).
        force_conflicts=op.force_conflicts,
        only=frozenset(op.resources) if op.resources is not None else None,
    )


def _with_source(app: Application, source: JSONDict | None) -> Application:
    """The app with another source (a rollback's recorded one, as Argo CD's rollback
    uses the history's source: the current spec may have moved on)."""
    if source is None:
        return app
    spec = app.raw.get("spec") or {}
    return parse_application({**app.raw, "spec": {**spec, "source": source}})


__all__ = [
    "STALE_RUNNING",
    "AppDeletion",
    "DeleteIncompleteError",
    "Desired",
    "Engine",
    "inventory",
    "is_hook",
    "options_for",
    "running_silence",
]
