"""Run a sync: hooks, waves, server-side apply, health waits, prune.

The order follows Argo CD's sync phases: PreSync hooks, then each sync wave
(lowest first; inside a wave the kind order of ``plan``), Sync hooks, PostSync
hooks once everything is healthy, then prune in reverse order; SyncFail hooks
run when anything fails. A wave waits for the health of its objects before the
next starts, so a database migration Job in wave -1 finishes before the app
in wave 0 rolls out.

Nothing is written for an object whose dry-run equals the live object: a
re-sync with nothing changed makes no write (the rule of Flux's ssa manager).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from gitmoor.engine.compare import (
    DryRunCache,
    ignore_rules,
    is_hook,
    prune_candidates,
    prune_disabled,
    safe_message,
    unversioned,
)
from gitmoor.engine.health import health_of
from gitmoor.engine.live import read_live
from gitmoor.engine.normalize import ResourceDiff, compare
from gitmoor.engine.plan import Hook, HookDeletePolicy, HookPhase, Plan, build_plan
from gitmoor.engine.prepare import owned_by, owner_app
from gitmoor.kube import ApiError, ConflictError
from gitmoor.model import (
    GitmoorError,
    Health,
    HealthStatus,
    JSONDict,
    Manifest,
    ObjectRef,
    RetryableError,
    UserInputError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from gitmoor.kube import KubeClient
    from gitmoor.kube.cache import ClusterCache
    from gitmoor.model.application import Application

log = logging.getLogger("gitmoor.engine.sync")


#: does the app ``<apps-namespace>_<name>`` still declare this object? (None: assume so)
Claims: TypeAlias = "Callable[[str, ObjectRef], Awaitable[bool]]"


class Action(enum.Enum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    PRUNE_SKIPPED = "prune-skipped"
    FAILED = "failed"
    HOOK_SUCCEEDED = "hook-succeeded"
    HOOK_FAILED = "hook-failed"


class Phase(enum.Enum):
    """Operation phases, with Argo CD's names."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class SyncOptions:
    prune: bool = False
    dry_run: bool = False
    force_conflicts: bool = False
    #: a selective sync: only objects whose (group, kind, name) is listed
    only: frozenset[tuple[str, str, str]] | None = None
    #: seconds to wait for the health of each wave and hook
    timeout: float = 300.0
    wait_health: bool = True
    allow_empty: bool = False
    create_namespace: bool = False

    @classmethod
    def for_app(cls, app: Application, **overrides: Any) -> SyncOptions:
        """The app's own policy (automated prune and allowEmpty, the
        CreateNamespace sync option), with what the caller sets on top."""
        auto = app.spec.sync_policy.automated
        base = cls(
            prune=bool(auto and auto.prune),
            allow_empty=bool(auto and auto.allow_empty),
            create_namespace=app.spec.sync_policy.option("CreateNamespace"),
        )
        return dataclasses.replace(base, **overrides)


@dataclass(frozen=True, slots=True)
class ResourceResult:
    ref: ObjectRef
    action: Action
    message: str = ""
    wave: int = 0
    hook: str = ""

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            **self.ref.to_dict(),
            "status": self.action.value,
            "message": self.message,
            "syncWave": self.wave,
        }
        if self.hook:
            out["hookPhase"] = self.hook
        return out


@dataclass(frozen=True, slots=True)
class SyncResult:
    revision: str
    phase: Phase
    message: str
    resources: tuple[ResourceResult, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.phase is Phase.SUCCEEDED

    def to_dict(self) -> JSONDict:
        return {"revision": self.revision, "resources": [r.to_dict() for r in self.resources]}


@dataclass(frozen=True, slots=True)
class SyncEvent:
    """Progress, for a CLI that shows each wave and resource as it goes."""

    kind: str  # "wave", "resource", "hook", "wait", "prune"
    message: str
    result: ResourceResult | None = None


class _Failed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Runner:
    def __init__(
        self,
        app: Application,
        kube: KubeClient,
        options: SyncOptions,
        progress: Callable[[SyncEvent], None] | None,
        cache: ClusterCache | None = None,
        dry_runs: DryRunCache | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.app, self.kube, self.options, self.cache = app, kube, options, cache
        self.claims = claims
        self.dry_runs = dry_runs
        self.progress = progress or (lambda _e: None)
        self.results: list[ResourceResult] = []
        self.rules = ignore_rules(app)
        self.salt = repr(self.rules)  # as compare_app salts its DryRunCache keys

    def emit(self, kind: str, message: str, result: ResourceResult | None = None) -> None:
        if result is not None:
            self.results.append(result)
        self.progress(SyncEvent(kind, message, result))

    # -------------------------------------------------------------- apply

    async def apply_one(self, m: Manifest, live: JSONDict | None, wave: int) -> JSONDict | None:
        """Apply one object unless its dry-run equals the live object."""
        opts = self.options
        other = owner_app(live) if live is not None else ""
        if (
            other
            and f"{other}:" != self.app.tracking_prefix
            and (self.claims is None or await self.claims(other, m.ref))
        ):
            # Two apps declaring one object would take it from each other at every
            # sync, and the one that stops declaring it would prune what the other
            # still declares (Argo CD reports a SharedResourceWarning). An object
            # whose owner no longer declares it (it moved between apps) is taken over.
            msg = f"owned by application {other.replace('_', '/', 1)}, which still declares it; refusing to take it over"
            self.emit(
                "resource",
                f"{m.ref} failed: {msg}",
                ResourceResult(m.ref, Action.FAILED, msg, wave),
            )
            return None
        key = None
        if live is not None and self.dry_runs is not None:
            # The same verdict cache as compare_app: an object whose live
            # resourceVersion and desired content were judged unchanged before
            # (or were written by our own apply) needs no dry-run to be unchanged.
            key = DryRunCache.key(m, live, self.salt)
            hit = self.dry_runs.get(key)
            if hit is not None and not hit.changed:
                self.emit(
                    "resource",
                    f"{m.ref} unchanged",
                    ResourceResult(m.ref, Action.UNCHANGED, "", wave),
                )
                return live
        try:
            if live is not None:
                # The dry-run takes every field (force): it writes nothing and only
                # asks "would applying change the object?". Unforced, a field that
                # another manager holds fails it before that is asked, so an app
                # whose one difference is ignored (an HPA's /spec/replicas under
                # ignoreDifferences) failed to sync while refresh, which dry-runs
                # with force too, called it Synced. The real apply below still
                # reports the conflict unless force_conflicts is set.
                predicted = await self.kube.apply(m.obj, ref=m.ref, dry_run=True, force=True)
                diff = compare(m.ref, live, predicted, self.rules)
                if key is not None and self.dry_runs is not None:
                    self.dry_runs.put(key, diff)
                if not diff.changed:
                    self.emit(
                        "resource",
                        f"{m.ref} unchanged",
                        ResourceResult(m.ref, Action.UNCHANGED, "", wave),
                    )
                    return live
                if opts.dry_run:
                    if not opts.force_conflicts:
                        # What the real apply would meet: a conflict shows here too.
                        await self.kube.apply(m.obj, ref=m.ref, dry_run=True)
                    self.emit(
                        "resource",
                        f"{m.ref} configured (dry run)",
                        ResourceResult(m.ref, Action.CONFIGURED, "dry run", wave),
                    )
                    return predicted
            elif opts.dry_run:
                self.emit(
                    "resource",
                    f"{m.ref} created (dry run)",
                    ResourceResult(m.ref, Action.CREATED, "dry run", wave),
                )
                return None
            applied = await self.kube.apply(m.obj, ref=m.ref, force=opts.force_conflicts)
            if self.dry_runs is not None:
                # The apply's answer is the live object at its new resourceVersion;
                # applying the same manifest to it again changes nothing (apply is
                # idempotent), so the refresh that follows a sync needs no dry-run.
                self.dry_runs.put(
                    DryRunCache.key(m, applied, self.salt),
                    ResourceDiff(m.ref, None, None, "", changed=False),
                )
        except ConflictError as e:
            msg = _conflict_message(e)
            self.emit(
                "resource",
                f"{m.ref} failed: {msg}",
                ResourceResult(m.ref, Action.FAILED, msg, wave),
            )
            return None
        except (ApiError, UserInputError) as e:
            msg = safe_message(m.ref, e.message)
            self.emit(
                "resource",
                f"{m.ref} failed: {msg}",
                ResourceResult(m.ref, Action.FAILED, msg, wave),
            )
            return None
        action = Action.CREATED if live is None else Action.CONFIGURED
        self.emit("resource", f"{m.ref} {action.value}", ResourceResult(m.ref, action, "", wave))
        return applied

    # -------------------------------------------------------------- health

    async def wait_healthy(
        self, objs: dict[ObjectRef, JSONDict | None], what: str, *, force: bool = False
    ) -> None:
        """Wait until every object is Healthy (or Suspended); fail on Degraded.

        ``force`` waits even with ``wait_health`` off: hooks and CRDs must finish
        before what follows them can work."""
        if self.options.dry_run or not (self.options.wait_health or force):
            return
        pending = {ref: obj for ref, obj in objs.items()}
        deadline = time.monotonic() + self.options.timeout
        announced = False
        while True:
            states: dict[ObjectRef, Health] = {}
            for ref, obj in pending.items():
                states[ref] = health_of(obj) if obj is not None else Health(HealthStatus.MISSING)
            degraded = [(r, h) for r, h in states.items() if h.status is HealthStatus.DEGRADED]
            if degraded:
                r, h = degraded[0]
                raise _Failed(f"{r} is Degraded: {h.message or 'unhealthy'}")
            pending = {
                r: pending[r]
                for r, h in states.items()
                if h.status not in (HealthStatus.HEALTHY, HealthStatus.SUSPENDED)
            }
            if not pending:
                return
            if time.monotonic() > deadline:
                r = next(iter(pending))
                msg = states[r].message or states[r].status.value
                raise _Failed(
                    f"timed out after {self.options.timeout:.0f}s waiting for {what}: {r} is {msg}"
                )
            if not announced:
                self.emit("wait", f"waiting for {len(pending)} object(s) of {what} to be healthy")
                announced = True
            await asyncio.sleep(0.5)
            fresh = await read_live(self.kube, list(pending), self.cache)
            pending = {r: fresh.get(r) for r in pending}

    async def after_crds(self, applied: dict[ObjectRef, JSONDict | None]) -> None:
        """A CRD must be Established before objects of its kind can be applied."""
        crds = {r: o for r, o in applied.items() if r.kind == "CustomResourceDefinition"}
        if crds and not self.options.dry_run:
            await self.wait_healthy(crds, "CustomResourceDefinitions", force=True)
            self.kube.invalidate_discovery()

    # -------------------------------------------------------------- hooks

    async def run_hooks(self, hooks: Sequence[Hook], phase: HookPhase) -> None:
        if not hooks:
            return
        self.emit("hook", f"{phase.value} hooks: {len(hooks)}")
        for hook in hooks:
            m, policies = hook.manifest, hook.delete_policies
            if self.options.dry_run:
                self.emit(
                    "hook",
                    f"{m.ref} would run ({phase.value})",
                    ResourceResult(m.ref, Action.CREATED, "dry run", hook.wave, phase.value),
                )
                continue
            old = await self.kube.get(m.ref)
            if old is not None and not owned_by(self.app, old):
                msg = f"{phase.value} hook {m.ref} would replace an object this app does not own"
                self.emit(
                    "hook",
                    f"{m.ref} failed: {msg}",
                    ResourceResult(m.ref, Action.HOOK_FAILED, msg, hook.wave, phase.value),
                )
                raise _Failed(msg)
            if old is not None and HookDeletePolicy.BEFORE_HOOK_CREATION in policies:
                meta = old.get("metadata") or {}
                await self.kube.delete(m.ref, propagation="Foreground", uid=meta.get("uid"))
                await self._wait_gone(m.ref)
            try:
                applied = await self.kube.apply(m.obj, ref=m.ref, force=True)
            except (ApiError, UserInputError) as e:
                self.emit(
                    "hook",
                    f"{m.ref} failed: {e.message}",
                    ResourceResult(m.ref, Action.HOOK_FAILED, e.message, hook.wave, phase.value),
                )
                raise _Failed(
                    f"{phase.value} hook {m.ref} could not be created: {e.message}"
                ) from e
            created_uid = (applied.get("metadata") or {}).get("uid")
            try:
                await self.wait_healthy(
                    {m.ref: applied}, f"{phase.value} hook {m.ref.name}", force=True
                )
            except _Failed as e:
                self.emit(
                    "hook",
                    f"{m.ref} failed: {e.message}",
                    ResourceResult(m.ref, Action.HOOK_FAILED, e.message, hook.wave, phase.value),
                )
                if HookDeletePolicy.HOOK_FAILED in policies:
                    await self.kube.delete(m.ref, propagation="Background", uid=created_uid)
                raise
            self.emit(
                "hook",
                f"{m.ref} succeeded",
                ResourceResult(m.ref, Action.HOOK_SUCCEEDED, "", hook.wave, phase.value),
            )
            if HookDeletePolicy.HOOK_SUCCEEDED in policies:
                # Only the incarnation this sync created.
                await self.kube.delete(m.ref, propagation="Background", uid=created_uid)

    async def _wait_gone(self, ref: ObjectRef) -> None:
        deadline = time.monotonic() + 60
        while await self.kube.get(ref) is not None:
            if time.monotonic() > deadline:
                raise _Failed(f"{ref} was not deleted within 60s")
            await asyncio.sleep(0.2)

    # -------------------------------------------------------------- prune

    async def prune(
        self, plan: Plan, candidates: list[ObjectRef], live: dict[ObjectRef, JSONDict]
    ) -> None:
        for ref in candidates:
            if ref not in plan.prune and prune_disabled(live[ref]):
                self.emit(
                    "prune",
                    f"{ref} kept: Prune=false",
                    ResourceResult(ref, Action.PRUNE_SKIPPED, "Prune=false"),
                )
        for ref in plan.prune:
            obj = live.get(ref)
            if obj is None:
                continue
            if not self.options.prune:
                self.emit(
                    "prune",
                    f"{ref} requires pruning (not pruned: prune is off)",
                    ResourceResult(ref, Action.PRUNE_SKIPPED, "prune is off"),
                )
                continue
            if self.options.dry_run:
                self.emit(
                    "prune",
                    f"{ref} pruned (dry run)",
                    ResourceResult(ref, Action.PRUNED, "dry run"),
                )
                continue
            try:
                # Judged at the start of the sync; waves and hooks ran since. Read it
                # again (never from a cache) and delete only that state of it, so an
                # object another app adopted meanwhile is never pruned.
                fresh = await self.kube.get(ref)
                if fresh is None:
                    continue
                if not owned_by(self.app, fresh):
                    self.emit(
                        "prune",
                        f"{ref} kept: no longer owned by this app",
                        ResourceResult(ref, Action.PRUNE_SKIPPED, "ownership changed"),
                    )
                    continue
                meta = fresh.get("metadata") or {}
                await self.kube.delete(
                    ref,
                    propagation="Foreground",
                    uid=meta.get("uid"),
                    resource_version=meta.get("resourceVersion"),
                )
            except ConflictError:
                self.emit(
                    "prune",
                    f"{ref} kept: it changed while being pruned",
                    ResourceResult(
                        ref, Action.PRUNE_SKIPPED, "changed during prune; next sync decides"
                    ),
                )
                continue
            except ApiError as e:
                self.emit(
                    "prune",
                    f"{ref} prune failed: {e.message}",
                    ResourceResult(ref, Action.FAILED, e.message),
                )
                continue
            self.emit("prune", f"{ref} pruned", ResourceResult(ref, Action.PRUNED))


def _conflict_message(e: ConflictError) -> str:
    fields = [
        c.get("field", "") + (f" ({c.get('message')})" if c.get("message") else "")
        for c in e.causes
    ]
    if fields:
        return (
            "conflict with another field manager on "
            + "; ".join(fields)
            + " (use --force-conflicts to take these fields)"
        )
    return f"{e.message} (use --force-conflicts to take these fields)"


def _selected(m: Manifest, only: frozenset[tuple[str, str, str]] | None) -> bool:
    return only is None or (m.ref.group, m.ref.kind, m.ref.name) in only


async def run_sync(
    app: Application,
    revision: str,
    desired: Sequence[Manifest],
    kube: KubeClient,
    *,
    inventory: Iterable[ObjectRef] = (),
    options: SyncOptions | None = None,
    progress: Callable[[SyncEvent], None] | None = None,
    cache: ClusterCache | None = None,
    dry_runs: DryRunCache | None = None,
    claims: Claims | None = None,
) -> SyncResult:
    """Sync ``desired`` (prepared manifests of ``revision``) into the cluster.

    With the controller's watch ``cache`` the live state is read from memory
    (the health waits too, updated by the watch within a second). With
    ``dry_runs`` an object already judged unchanged at its live resourceVersion
    is not dry-run again, and each object applied is remembered as unchanged at
    the resourceVersion its apply returned."""
    options = options or SyncOptions()
    runner = _Runner(app, kube, options, progress, cache, dry_runs, claims)
    inventory = list(inventory)
    if not any(not is_hook(m) for m in desired) and not options.allow_empty:
        return SyncResult(
            revision,
            Phase.FAILED,
            "the render produced no objects; refusing to sync (and prune everything) "
            "unless allowEmpty is set",
        )
    selected = [m for m in desired if _selected(m, options.only)]
    try:
        live = await read_live(kube, [m.ref for m in selected] + inventory, cache)
        prune = [] if options.only is not None else prune_candidates(app, desired, inventory, live)
        plan = build_plan(selected, {ref: live[ref] for ref in prune})
    except GitmoorError as e:
        return SyncResult(revision, Phase.FAILED, str(e))
    try:
        if options.create_namespace:
            await _ensure_namespace(kube, app.spec.destination.namespace, options.dry_run, runner)
        await runner.run_hooks(plan.pre_sync, HookPhase.PRE_SYNC)
        for wave in plan.waves:
            runner.emit("wave", f"wave {wave.number}: {len(wave.manifests)} object(s)")
            applied: dict[ObjectRef, JSONDict | None] = {}
            for step in wave.steps:
                objs = await asyncio.gather(
                    *(runner.apply_one(m, _live_of(live, m.ref), wave.number) for m in step)
                )
                applied.update({m.ref: o for m, o in zip(step, objs, strict=True)})
                await runner.after_crds({m.ref: applied[m.ref] for m in step})
            failed = [r for r in runner.results if r.action is Action.FAILED]
            if failed:
                raise _Failed(
                    f"{len(failed)} object(s) failed to apply; first: {failed[0].ref}: {failed[0].message}"
                )
            await runner.run_hooks(wave.hooks, HookPhase.SYNC)
            await runner.wait_healthy(applied, f"wave {wave.number}")
        # Pruned in the Sync phase, before PostSync hooks (Argo CD's order), so a
        # PostSync smoke test sees the state Git declares.
        await runner.prune(plan, prune, live)
        await runner.run_hooks(plan.post_sync, HookPhase.POST_SYNC)
    except _Failed as e:
        with _suppress_gitmoor():
            await runner.run_hooks(plan.sync_fail, HookPhase.SYNC_FAIL)
        return SyncResult(revision, Phase.FAILED, e.message, tuple(runner.results))
    except RetryableError as e:
        # Includes an API server that went away: the operation ends as Error, is
        # recorded, and is retried; it never stays Running.
        return SyncResult(revision, Phase.ERROR, str(e), tuple(runner.results))
    except GitmoorError as e:
        return SyncResult(revision, Phase.FAILED, str(e), tuple(runner.results))
    failed = [r for r in runner.results if r.action is Action.FAILED]
    if failed:
        return SyncResult(
            revision, Phase.FAILED, f"{len(failed)} object(s) failed", tuple(runner.results)
        )
    n = sum(
        1 for r in runner.results if r.action in (Action.CREATED, Action.CONFIGURED, Action.PRUNED)
    )
    verb = "would change" if options.dry_run else "changed"
    return SyncResult(
        revision,
        Phase.SUCCEEDED,
        f"successfully synced (dry run: {n} object(s) {verb})"
        if options.dry_run
        else f"successfully synced: {n} object(s) {verb}",
        tuple(runner.results),
    )


class _suppress_gitmoor:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: object) -> bool:
        if isinstance(e, GitmoorError | _Failed):
            log.warning("event=syncfail_hook_failed error=%s", e)
            return True
        return False


def _live_of(live: dict[ObjectRef, JSONDict], ref: ObjectRef) -> JSONDict | None:
    obj = live.get(ref)
    if obj is not None:
        return obj
    key = unversioned(ref)
    for r, o in live.items():
        if unversioned(r) == key:
            return o
    return None


async def _ensure_namespace(kube: KubeClient, name: str, dry_run: bool, runner: _Runner) -> None:
    ref = ObjectRef("", "v1", "Namespace", "", name)
    if await kube.get(ref) is not None:
        return
    if not dry_run:
        await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    runner.emit(
        "resource",
        f"Namespace {name} created (CreateNamespace=true)",
        ResourceResult(ref, Action.CREATED, "CreateNamespace=true", 0),
    )
