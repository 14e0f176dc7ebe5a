"""Run a sync: hooks, waves, server-side apply, health waits, prune.

The order follows Argo CD's sync phases: PreSync hooks, then each sync wave
(lowest first; inside a wave the kind order of ``plan``), Sync hooks, PostSync
hooks once everything is healthy, then prune in reverse order; SyncFail hooks
run when anything fails. A wave waits for the health of its objects before the
next starts, so a database migration Job in wave -1 finishes before the app
in wave 0 rolls out.

Nothing is written for an object whose dry-run equals the live object: a
re-sync with nothing changed makes no write (the rule of Flux's ssa manager).

Fields another field manager holds (``kubectl scale``, a ``kubectl edit``) are
taken when Git declares them: Argo CD's server-side apply forces
(``ForceConflicts = serverSideApply`` in gitops-engine's resource_ops.go) and so
does Flux's kustomize-controller, because a user who syncs expects the cluster
to equal Git afterwards. gitmoor applies unforced first and, on the conflict,
again with force, so that each field taken is reported with the manager it was
taken from. ``--no-force-conflicts`` or the app's sync option
``ForceConflicts=false`` restore the refusal.

Each object written records the commit (``gitmoor.io/revision``) and, for a tag
or semver target, the tag (``gitmoor.io/version``) of the sync that wrote it;
objects left unchanged keep the annotations of the sync that last changed them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import enum
import logging
import re
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
from gitmoor.engine.normalize import ResourceDiff, compare, object_path
from gitmoor.engine.plan import (
    Hook,
    HookDeletePolicy,
    HookPhase,
    Plan,
    build_plan,
    directives,
    hook_name,
)
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
from gitmoor.model.application import (
    REVISION_ANNOTATION,
    TRACKING_ANNOTATION,
    VERSION_ANNOTATION,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from gitmoor.kube import KubeClient
    from gitmoor.kube.cache import ClusterCache
    from gitmoor.model.application import Application

log = logging.getLogger("gitmoor.engine.sync")


#: the field manager of Replace=true writes (PUT/POST, not apply), named apart from
#: the applies' "gitmoor" as kubectl names its replace "kubectl-replace"
REPLACE_MANAGER = "gitmoor-replace"

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
    #: take fields that other field managers hold (Argo CD's and Flux's default);
    #: None: the app's choice, which is yes unless its sync options say
    #: ``ForceConflicts=false``
    force_conflicts: bool | None = None
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
        CreateNamespace sync option), with what the caller sets on top.
        ``force_conflicts`` stays None unless set: the run reads the app's
        ``ForceConflicts`` sync option then, whoever built the options."""
        auto = app.spec.sync_policy.automated
        base = cls(
            prune=bool(auto and auto.prune),
            allow_empty=bool(auto and auto.allow_empty),
            create_namespace=app.spec.sync_policy.option("CreateNamespace"),
        )
        return dataclasses.replace(base, **overrides)


@dataclass(frozen=True, slots=True)
class TakenField:
    """One field the apply took from another field manager (``spec.replicas``
    from ``kubectl``), as the API server's conflict named them."""

    field: str
    manager: str

    def to_dict(self) -> JSONDict:
        return {"field": self.field, "manager": self.manager}


@dataclass(frozen=True, slots=True)
class ResourceResult:
    ref: ObjectRef
    action: Action
    message: str = ""
    wave: int = 0
    hook: str = ""
    #: fields taken from other field managers (would be taken, in a dry run)
    taken: tuple[TakenField, ...] = ()

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            **self.ref.to_dict(),
            "status": self.action.value,
            "message": self.message,
            "syncWave": self.wave,
        }
        if self.hook:
            out["hookPhase"] = self.hook
        if self.taken:
            out["takenFields"] = [t.to_dict() for t in self.taken]
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

    kind: str  # "wave", "resource", "taken", "hook", "wait", "prune"
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
        revision: str = "",
        version: str | None = None,
    ) -> None:
        self.app, self.kube, self.options, self.cache = app, kube, options, cache
        self.claims = claims
        self.dry_runs = dry_runs
        self.progress = progress or (lambda _e: None)
        self.results: list[ResourceResult] = []
        self.rules = ignore_rules(app)
        self.salt = repr(self.rules)  # as compare_app salts its DryRunCache keys
        #: names hooks that have only generateName (plan.hook_name)
        self.started = time.time()
        policy = app.spec.sync_policy
        self.force = (
            options.force_conflicts
            if options.force_conflicts is not None
            else "ForceConflicts=false" not in policy.sync_options
        )
        self.respect_ignored = policy.option("RespectIgnoreDifferences")
        #: what each object written records (gitmoor.io/revision, gitmoor.io/version)
        self.revision, self.version = revision, version

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
        obj = self._respecting_ignored(m, live)
        taken: tuple[TakenField, ...] = ()
        try:
            if live is not None:
                # The dry-run takes every field (force): it writes nothing and only
                # asks "would applying change the object?". Unforced, a field that
                # another manager holds fails it before that is asked, so an app
                # whose one difference is ignored (an HPA's /spec/replicas under
                # ignoreDifferences) failed to sync while refresh, which dry-runs
                # with force too, called it Synced. The version annotations go in
                # with their live values: applying without them would predict their
                # removal (server-side apply drops what the manager stops sending).
                recorded = _stamped(obj, *_recorded(live))
                predicted = await self.kube.apply(recorded, ref=m.ref, dry_run=True, force=True)
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
                    # What the real apply would meet: the fields it would take, or
                    # the conflict it would refuse.
                    predicted, taken = await self._apply(m, recorded, dry_run=True)
                    msg = "; ".join(
                        ["dry run", *(f"would take {t.field} from {t.manager}" for t in taken)]
                    )
                    self.emit(
                        "resource",
                        f"{m.ref} configured ({msg})",
                        ResourceResult(m.ref, Action.CONFIGURED, msg, wave, taken=taken),
                    )
                    for t in taken:
                        self.emit("taken", f"{m.ref}: would take {t.field} from {t.manager}")
                    return predicted
            elif opts.dry_run:
                self.emit(
                    "resource",
                    f"{m.ref} created (dry run)",
                    ResourceResult(m.ref, Action.CREATED, "dry run", wave),
                )
                return None
            applied, taken = await self._apply(m, _stamped(obj, self.revision, self.version))
            if self.dry_runs is not None:
                # The apply's answer is the live object at its new resourceVersion;
                # applying the same manifest to it again changes nothing (apply is
                # idempotent), so the refresh that follows a sync needs no dry-run.
                self.dry_runs.put(
                    DryRunCache.key(m, applied, self.salt),
                    ResourceDiff(m.ref, None, None, "", changed=False),
                )
        except ConflictError as e:
            conflicts = _conflicts(e)
            msg = _refusal(conflicts) if conflicts else safe_message(m.ref, e.message)
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
        msg = "; ".join(f"took {t.field} from {t.manager}" for t in taken)
        self.emit(
            "resource",
            f"{m.ref} {action.value}" + (f" ({msg})" if msg else ""),
            ResourceResult(m.ref, action, msg, wave, taken=taken),
        )
        for t in taken:
            self.emit("taken", f"{m.ref}: took {t.field} from {t.manager}")
        return applied

    async def _apply(
        self, m: Manifest, obj: JSONDict, *, dry_run: bool = False
    ) -> tuple[JSONDict, tuple[TakenField, ...]]:
        """Apply unforced; on a field-manager conflict, take the fields with force
        (unless forcing is off, then the ConflictError stands) and say which.

        Unforced first, because only the refusal names the fields and their
        managers: a forced apply takes them silently. It costs a second request
        only for an object that has a conflict."""
        try:
            return await self.kube.apply(obj, ref=m.ref, dry_run=dry_run), ()
        except ConflictError as e:
            taken = _conflicts(e)
            if not self.force or not taken:
                raise
        applied = await self.kube.apply(obj, ref=m.ref, dry_run=dry_run, force=True)
        if not dry_run:
            log.info(
                "event=fields_taken app=%s object=%s fields=%s",
                self.app.name,
                object_path(m.ref),
                ",".join(f"{t.field}:{t.manager}" for t in taken),
            )
        return applied, taken

    def _respecting_ignored(self, m: Manifest, live: JSONDict | None) -> JSONDict:
        """``m.obj``, with the live values at ignored paths under
        ``RespectIgnoreDifferences=true`` (Argo CD's sync option): the sync then
        leaves what ignoreDifferences names to whoever set it. On creation there is
        no live value, and Git's is applied, as in Argo CD."""
        if not self.respect_ignored or live is None:
            return m.obj
        rules = [r for r in self.rules if r.matches(m.ref)]
        if not rules:
            return m.obj
        obj = copy.deepcopy(m.obj)
        for rule in rules:
            rule.keep_live(obj, live)
        return obj

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
            if hook.generated_name:
                m = self._named(m, phase)
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

    def _named(self, m: Manifest, phase: HookPhase) -> Manifest:
        """The hook with the name Argo CD would give it at this sync (it has only
        ``generateName``), its tracking id re-stamped for that name so that the
        ownership check of the next sync recognises it."""
        obj = copy.deepcopy(m.obj)
        meta = obj["metadata"]
        meta["name"] = hook_name(
            str(meta.get("generateName", "")), self.revision, phase, self.started
        )
        ref = dataclasses.replace(m.ref, name=meta["name"])
        annotations = meta.setdefault("annotations", {})
        annotations[TRACKING_ANNOTATION] = self.app.tracking_id(
            ref.group, ref.kind, ref.namespace, ref.name
        )
        return Manifest(ref, obj, m.source)

    async def replace_one(self, m: Manifest, live: JSONDict | None, wave: int) -> JSONDict | None:
        """``Replace=true``: write with PUT (or POST when absent) instead of
        server-side apply, as Argo CD runs ``kubectl replace``/``kubectl create``;
        fields Git no longer declares are then dropped whoever set them.

        As for an apply, nothing is written when the server-side dry-run equals the
        live object, and an object another app owns is not taken."""
        other = owner_app(live) if live is not None else ""
        if other and f"{other}:" != self.app.tracking_prefix:
            msg = f"owned by application {other.replace('_', '/', 1)}; Replace=true will not take it over"
            self.emit(
                "resource",
                f"{m.ref} failed: {msg}",
                ResourceResult(m.ref, Action.FAILED, msg, wave),
            )
            return None
        validation = "Strict" if directives(m.obj).options.validate else "Ignore"
        try:
            if live is not None:
                predicted = await self.kube.apply(
                    _stamped(m.obj, *_recorded(live)), ref=m.ref, dry_run=True, force=True
                )
                if not compare(m.ref, live, predicted, self.rules).changed:
                    self.emit(
                        "resource",
                        f"{m.ref} unchanged",
                        ResourceResult(m.ref, Action.UNCHANGED, "", wave),
                    )
                    return live
            if self.options.dry_run:
                action = Action.CREATED if live is None else Action.CONFIGURED
                self.emit(
                    "resource",
                    f"{m.ref} {action.value} (dry run, replace)",
                    ResourceResult(m.ref, action, "dry run; Replace=true", wave),
                )
                return None if live is None else live
            body = _stamped(m.obj, self.revision, self.version)
            if live is None:
                written = await self.kube.create(
                    body, field_manager=REPLACE_MANAGER, field_validation=validation
                )
            else:
                body = copy.deepcopy(body)
                # The live resourceVersion makes the PUT fail (409) rather than
                # overwrite a change made since it was read.
                body["metadata"]["resourceVersion"] = (live.get("metadata") or {}).get(
                    "resourceVersion"
                )
                written = await self.kube.replace(
                    m.ref, body, field_manager=REPLACE_MANAGER, field_validation=validation
                )
        except (ApiError, UserInputError) as e:
            msg = safe_message(m.ref, e.message)
            self.emit(
                "resource",
                f"{m.ref} failed: {msg}",
                ResourceResult(m.ref, Action.FAILED, msg, wave),
            )
            return None
        action = Action.CREATED if live is None else Action.CONFIGURED
        self.emit(
            "resource",
            f"{m.ref} {action.value} (replaced)",
            ResourceResult(m.ref, action, "Replace=true", wave),
        )
        return written

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


#: the manager in an apply conflict: apimachinery's fieldmanager writes each cause
#: as ``conflict with "kubectl" using apps/v1`` (``with subresource "scale"``, ``at
#: <time>`` may follow), the manager quoted Go-style
_MANAGER = re.compile(r'conflicts? with "((?:[^"\\]|\\.)*)"')
#: a field in the top-level message, for a Status without causes:
#: ``…: .spec.replicas`` or, one per line, ``- .spec.replicas``
_FIELD = re.compile(r"(?:^- |: )(\.\S+)$")


def _conflicts(e: ConflictError) -> tuple[TakenField, ...]:
    """The (field, manager) pairs of a server-side apply conflict, in the server's
    order; () when the 409 was not a field-manager conflict."""
    out: dict[tuple[str, str], None] = {}
    for cause in e.causes:
        found = _MANAGER.search(str(cause.get("message") or ""))
        field_path = str(cause.get("field") or "")
        if found and field_path:
            out[(field_path.lstrip("."), _unquote(found.group(1)))] = None
    if not out:
        manager = ""
        for line in e.message.splitlines():
            found = _MANAGER.search(line)
            if found:
                manager = _unquote(found.group(1))
            path = _FIELD.search(line.strip())
            if manager and path:
                out[(path.group(1).lstrip("."), manager)] = None
    return tuple(TakenField(f, mgr) for f, mgr in out)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _refusal(conflicts: Sequence[TakenField]) -> str:
    held = ", ".join(f'{t.field} is managed by "{t.manager}"' for t in conflicts)
    return (
        f"conflict: {held}; not taken, as forcing is off (by --no-force-conflicts or "
        "the app's sync option ForceConflicts=false)"
    )


def _recorded(live: JSONDict) -> tuple[str, str | None]:
    """The revision and version annotations the live object carries now."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(REVISION_ANNOTATION) or ""), annotations.get(VERSION_ANNOTATION)


def _stamped(obj: JSONDict, revision: str, version: str | None) -> JSONDict:
    """``obj`` with ``gitmoor.io/revision`` and ``gitmoor.io/version`` set (or left
    out when empty); copies only the maps it changes."""
    meta = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(REVISION_ANNOTATION, None)
    annotations.pop(VERSION_ANNOTATION, None)
    if revision:
        annotations[REVISION_ANNOTATION] = revision
    if version:
        annotations[VERSION_ANNOTATION] = version
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**obj, "metadata": meta}


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
    version: str | None = None,
) -> SyncResult:
    """Sync ``desired`` (prepared manifests of ``revision``) into the cluster.

    Each object written records ``revision`` and ``version`` (the tag, when the
    target was a tag or a semver range) in its annotations.

    With the controller's watch ``cache`` the live state is read from memory
    (the health waits too, updated by the watch within a second). With
    ``dry_runs`` an object already judged unchanged at its live resourceVersion
    is not dry-run again, and each object applied is remembered as unchanged at
    the resourceVersion its apply returned."""
    options = options or SyncOptions()
    runner = _Runner(
        app, kube, options, progress, cache, dry_runs, claims, revision=revision, version=version
    )
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
    for warning in plan.warnings:
        runner.emit("warning", warning)
    for m in plan.skipped:
        # Argo CD's Skip, Helm test hooks and the like: in Git, never applied.
        runner.emit("skip", f"{m.ref} skipped (its hook annotation names no phase that runs)")
    try:
        if options.create_namespace:
            await _ensure_namespace(kube, app.spec.destination.namespace, options.dry_run, runner)
        await runner.run_hooks(plan.pre_sync, HookPhase.PRE_SYNC)
        for wave in plan.waves:
            runner.emit("wave", f"wave {wave.number}: {len(wave.manifests)} object(s)")
            applied: dict[ObjectRef, JSONDict | None] = {}
            for step in wave.steps:
                objs = await asyncio.gather(
                    *(
                        (runner.replace_one if _replaces(m) else runner.apply_one)(
                            m, _live_of(live, m.ref), wave.number
                        )
                        for m in step
                    )
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


def _replaces(m: Manifest) -> bool:
    """``Replace=true`` in the manifest's sync options (gitmoor's or Argo CD's)."""
    return directives(m.obj).options.replace


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
