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
import datetime as dt
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
    judge,
    prune_candidates,
    prune_disabled,
    safe_message,
    unversioned,
    verdict_salt,
)
from gitmoor.engine.health import health_of
from gitmoor.engine.live import read_live
from gitmoor.engine.normalize import ResourceDiff, compare, object_path, respected
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
from gitmoor.engine.prune import Deletion, delete_owned
from gitmoor.engine.redaction import redactor_for
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
from gitmoor.model.status import OpPhase, Progress, ResultEntry, Waiting

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from gitmoor.kube import KubeClient
    from gitmoor.kube.cache import ClusterCache
    from gitmoor.model.application import Application
    from gitmoor.secrets.redact import Redactor

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


#: operation phases, with Argo CD's names (one enum: the status model's)
Phase = OpPhase


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
        """The result entry (``operationState.syncResult``, the inventory)."""
        return ResultEntry(
            self.ref,
            self.action.value,
            self.message,
            self.wave,
            self.hook,
            tuple((t.field, t.manager) for t in self.taken),
        ).to_dict()


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
        redactor: Redactor | None = None,
    ) -> None:
        self.app, self.kube, self.options, self.cache = app, kube, options, cache
        #: masks every diff and scrubs every message the sync reports
        self.redactor = redactor or redactor_for(app)
        self.claims = claims
        self.dry_runs = dry_runs
        self.progress = progress or (lambda _e: None)
        self.results: list[ResourceResult] = []
        self.counts: dict[str, int] = {}
        self.rules = ignore_rules(app)
        self.salt = verdict_salt(self.rules, self.redactor)  # as compare.judge salts its keys
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

    def failed(self, ref: ObjectRef, msg: str, wave: int) -> None:
        """Report an object the sync could not write (its wave then fails)."""
        self.emit("resource", f"{ref} failed: {msg}", ResourceResult(ref, Action.FAILED, msg, wave))

    def hook_failed(self, ref: ObjectRef, msg: str, hook: Hook, phase: HookPhase) -> None:
        self.emit(
            "hook",
            f"{ref} failed: {msg}",
            ResourceResult(ref, Action.HOOK_FAILED, msg, hook.wave, phase.value),
        )

    def emit(self, kind: str, message: str, result: ResourceResult | None = None) -> None:
        # The one way out of a sync's messages (progress events, results kept in
        # operationState and the inventory): kube and hook errors can quote a value.
        message = self.redactor.scrub(message)
        if result is not None and result.message:
            result = dataclasses.replace(result, message=self.redactor.scrub(result.message))
        if result is not None:
            self.results.append(result)
            self.counts[result.action.value] = self.counts.get(result.action.value, 0) + 1
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
            self.failed(m.ref, msg, wave)
            return None
        obj = self._respecting_ignored(m, live)
        taken: tuple[TakenField, ...] = ()
        try:
            if live is not None:
                # The same judgement as refresh (compare.judge, forced, so an app
                # whose one difference is ignored - an HPA's /spec/replicas under
                # ignoreDifferences - is unchanged here as it is Synced there), and
                # the same verdict cache: an object judged unchanged at this
                # resourceVersion, or written by our own apply, needs no dry-run.
                # The version annotations go in with their live values: applying
                # without them would predict their removal (server-side apply drops
                # what the manager stops sending).
                recorded = _stamped(obj, *_recorded(live))
                diff = await judge(
                    self.kube,
                    m,
                    live,
                    self.rules,
                    self.dry_runs,
                    body=recorded,
                    redactor=self.redactor,
                )
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
            msg = (
                _refusal(conflicts) if conflicts else safe_message(m.ref, e.message, self.redactor)
            )
            self.failed(m.ref, msg, wave)
            return None
        except (ApiError, UserInputError) as e:
            msg = safe_message(m.ref, e.message, self.redactor)
            self.failed(m.ref, msg, wave)
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
        leaves what ignoreDifferences names to whoever set it. The engine's built-in
        rules (a Service selector's ``rollouts-pod-template-hash``) are respected
        without the option: see ``normalize.BUILTIN_RULES``. On creation there is
        no live value, and Git's is applied, as in Argo CD."""
        if live is None:
            return m.obj
        rules = [r for r in self.rules if r.matches(m.ref) and respected(r, self.respect_ignored)]
        if not rules:
            return m.obj
        obj = copy.deepcopy(m.obj)
        for rule in rules:
            rule.keep_live(obj, live)
        return obj

    # -------------------------------------------------------------- health

    async def health_gate(
        self, refs: Sequence[ObjectRef], what: str, since: float
    ) -> tuple[Waiting, ...]:
        """The objects of ``refs`` not Healthy (or Suspended) yet, with why; raises
        ``_Failed`` at once for a Degraded one (no point waiting out the timeout:
        Argo CD's wave gate fails a Degraded resource too) and when the gate has
        stood for longer than the options' timeout since ``since``."""
        live = await read_live(self.kube, list(refs), self.cache)
        waiting: list[Waiting] = []
        for ref in refs:
            obj = _live_of(live, ref)
            h = health_of(obj) if obj is not None else Health(HealthStatus.MISSING)
            if h.status is HealthStatus.DEGRADED:
                raise _Failed(f"{ref} is Degraded: {h.message or 'unhealthy'}")
            if h.status not in (HealthStatus.HEALTHY, HealthStatus.SUSPENDED):
                waiting.append(Waiting(ref, h.message or h.status.value))
        if waiting and time.time() - since > self.options.timeout:
            w = waiting[0]
            raise _Failed(
                f"timed out after {self.options.timeout:.0f}s waiting for {what}: {w.ref} is {w.message}"
            )
        return tuple(waiting)

    async def wait_healthy(
        self, objs: dict[ObjectRef, JSONDict | None], what: str, *, force: bool = False
    ) -> None:
        """Wait in place until every object is Healthy; only for CRDs, which are
        Established within a second and must be before objects of their kind can
        be applied (every other wait is a gate that ``step`` returns on)."""
        if self.options.dry_run or not (self.options.wait_health or force):
            return
        since = time.time()
        refs = list(objs)
        while True:
            if not await self.health_gate(refs, what, since):
                return
            await asyncio.sleep(0.2)

    async def after_crds(self, applied: dict[ObjectRef, JSONDict | None]) -> None:
        """A CRD must be Established before objects of its kind can be applied."""
        crds = {r: o for r, o in applied.items() if r.kind == "CustomResourceDefinition"}
        if crds and not self.options.dry_run:
            await self.wait_healthy(crds, "CustomResourceDefinitions", force=True)
            self.kube.invalidate_discovery()

    # -------------------------------------------------------------- hooks

    async def step_hooks(
        self, hooks: Sequence[Hook], phase: HookPhase, state: _State
    ) -> tuple[Waiting, ...]:
        """Run the phase's hooks one after the other, as far as they go now.

        Each hook started is recorded in ``state.hooks`` (``Running``, then
        ``Succeeded``): a step taken again, in this process or another after a
        crash, checks a Running hook instead of creating it again, and skips one
        that succeeded. Returns what the current hook waits for (empty: all done)."""
        if not hooks:
            return ()
        if not any(state.hooks.get(_hook_key(self._name_of(h, phase), phase)) for h in hooks):
            self.emit("hook", f"{phase.value} hooks: {len(hooks)}")
        for hook in hooks:
            m, policies = self._name_of(hook, phase), hook.delete_policies
            key = _hook_key(m, phase)
            done = state.hooks.get(key, "")
            if done == "Succeeded":
                continue
            if self.options.dry_run:
                self.emit(
                    "hook",
                    f"{m.ref} would run ({phase.value})",
                    ResourceResult(m.ref, Action.CREATED, "dry run", hook.wave, phase.value),
                )
                continue
            if done == "Running":
                live = await self.kube.get(m.ref)
                if live is None:
                    msg = f"{phase.value} hook {m.ref} was deleted while it ran"
                    self.hook_failed(m.ref, msg, hook, phase)
                    raise _Failed(msg)
            else:
                live = await self._create_hook(m, hook, phase, policies)
                state.hooks[key] = "Running"
                state.gate_since = time.time()
            uid = (live.get("metadata") or {}).get("uid")
            try:
                waiting = await self.health_gate(
                    [m.ref], f"{phase.value} hook {m.ref.name}", state.gate_since or time.time()
                )
            except _Failed as e:
                state.hooks[key] = "Failed"
                self.hook_failed(m.ref, e.message, hook, phase)
                if HookDeletePolicy.HOOK_FAILED in policies:
                    await self.kube.delete(m.ref, propagation="Background", uid=uid)
                raise
            if waiting:
                return waiting
            state.hooks[key] = "Succeeded"
            self.emit(
                "hook",
                f"{m.ref} succeeded",
                ResourceResult(m.ref, Action.HOOK_SUCCEEDED, "", hook.wave, phase.value),
            )
            if HookDeletePolicy.HOOK_SUCCEEDED in policies:
                # Only the incarnation this sync created.
                await self.kube.delete(m.ref, propagation="Background", uid=uid)
        return ()

    async def _create_hook(
        self, m: Manifest, hook: Hook, phase: HookPhase, policies: frozenset[HookDeletePolicy]
    ) -> JSONDict:
        old = await self.kube.get(m.ref)
        if old is not None and not owned_by(self.app, old):
            msg = f"{phase.value} hook {m.ref} would replace an object this app does not own"
            self.hook_failed(m.ref, msg, hook, phase)
            raise _Failed(msg)
        if old is not None and HookDeletePolicy.BEFORE_HOOK_CREATION in policies:
            meta = old.get("metadata") or {}
            await self.kube.delete(m.ref, propagation="Foreground", uid=meta.get("uid"))
            await self._wait_gone(m.ref)
        try:
            return await self.kube.apply(m.obj, ref=m.ref, force=True)
        except (ApiError, UserInputError) as e:
            self.hook_failed(m.ref, e.message, hook, phase)
            raise _Failed(f"{phase.value} hook {m.ref} could not be created: {e.message}") from e

    def _name_of(self, hook: Hook, phase: HookPhase) -> Manifest:
        return self._named(hook.manifest, phase) if hook.generated_name else hook.manifest

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
            self.failed(m.ref, msg, wave)
            return None
        validation = "Strict" if directives(m.obj).options.validate else "Ignore"
        try:
            if live is not None:
                predicted = await self.kube.apply(
                    _stamped(m.obj, *_recorded(live)), ref=m.ref, dry_run=True, force=True
                )
                if not compare(m.ref, live, predicted, self.rules, self.redactor).changed:
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
            msg = safe_message(m.ref, e.message, self.redactor)
            self.failed(m.ref, msg, wave)
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
                # Judged at the start of the step; read again and deleted only in that
                # state, so an object another app adopted meanwhile is never pruned.
                done = await delete_owned(self.kube, self.app, ref)
            except ApiError as e:
                self.emit(
                    "prune",
                    f"{ref} prune failed: {e.message}",
                    ResourceResult(ref, Action.FAILED, e.message),
                )
                continue
            if done is Deletion.NOT_OWNED:
                self.emit(
                    "prune",
                    f"{ref} kept: no longer owned by this app",
                    ResourceResult(ref, Action.PRUNE_SKIPPED, "ownership changed"),
                )
            elif done is Deletion.CHANGED:
                self.emit(
                    "prune",
                    f"{ref} kept: it changed while being pruned",
                    ResourceResult(
                        ref, Action.PRUNE_SKIPPED, "changed during prune; next sync decides"
                    ),
                )
            elif done is Deletion.DELETED:
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


def _hook_key(m: Manifest, phase: HookPhase) -> str:
    return f"{phase.value}/{m.ref.kind}/{m.ref.namespace}/{m.ref.name}"


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(stamp: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time as the status keeps it."""
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class _State:
    """The working copy of ``Progress`` while a step runs."""

    stage: str = "pre-sync"
    wave: int = 0
    part: str = ""
    gate_since: float = 0.0
    hooks: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    failure: str = ""

    @classmethod
    def of(cls, p: Progress | None) -> _State:
        if p is None:
            return cls()
        return cls(
            p.stage,
            p.wave,
            p.part,
            parse_time(p.gate_since) or 0.0,
            dict(p.hooks),
            dict(p.counts),
            p.failure,
        )

    def progress(self, commit: str, tag: str | None, waiting: tuple[Waiting, ...]) -> Progress:
        return Progress(
            commit=commit,
            tag=tag or "",
            stage=self.stage,
            wave=self.wave,
            part=self.part,
            gate_since=_iso(self.gate_since) if self.gate_since else "",
            hooks=tuple(sorted(self.hooks.items())),
            waiting=waiting,
            counts=tuple(sorted(self.counts.items())),
            failure=self.failure,
        )


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one ``SyncContext.step`` came to: still Running (``waiting`` says on
    what), or a final phase with the ``result``."""

    phase: Phase
    message: str
    progress: Progress
    result: SyncResult | None = None

    @property
    def waiting(self) -> tuple[Waiting, ...]:
        return self.progress.waiting


#: how many waiting objects a status message names
_NAMED = 3


class SyncContext:
    """A sync as a step function (gitops-engine's ``syncContext.Sync`` is called the
    same way, again and again, by its controller).

    Each ``step`` runs what can run now — the next wave's applies, a hook's
    creation, the prune — and returns Running with what it waits for (a wave's
    health, a hook Job) or a final phase. All it needs to take the next step is in
    its ``Progress`` (written to ``operationState.progress``) plus the render of the
    pinned commit, so a step can be taken by another process after a crash: it
    never creates a hook again that it recorded, and never applies a wave again
    that it finished.

    Health gates: a wave's health gates only what comes after it (a later wave, or
    the PostSync hooks); the last wave with nothing after it ends the operation once
    applied, and the app's health then says Progressing until its objects are
    healthy. A gated object that turns Degraded fails the operation at once.
    """

    def __init__(
        self,
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
        started: float | None = None,
        state: Progress | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.options = options or SyncOptions()
        #: the app's (``redactor_for(app, project)``): masks diffs, scrubs messages
        self.redactor = redactor or redactor_for(app)
        for m in desired:
            # Known before the first message: an apply error may quote a value.
            self.redactor.learn(m.obj)
        self.app, self.revision, self.version = app, revision, version
        self.desired = list(desired)
        self.inventory = list(inventory)
        self.kube, self.cache = kube, cache
        self.runner = _Runner(
            app,
            kube,
            self.options,
            progress,
            cache,
            dry_runs,
            claims,
            revision=revision,
            version=version,
            redactor=self.redactor,
        )
        if started is not None:
            # Hook names with generateName depend on it: the same in every process.
            self.runner.started = started
        self.state = _State.of(state)
        # Every result counts into the progress, so a resumed sync's message
        # still counts what was done before it resumed.
        self.runner.counts = self.state.counts
        #: the announcements (warnings, skips) and CreateNamespace are done
        self.started = state is not None
        #: the state came from a status (checked once, at the first step)
        self.state_was_read = state is not None
        #: the live objects as the last step read and wrote them (absent: unknown)
        self.live: dict[ObjectRef, JSONDict] = {}

    @property
    def results(self) -> tuple[ResourceResult, ...]:
        """Per-object results of the steps this process took."""
        return tuple(self.runner.results)

    def _running(self, waiting: tuple[Waiting, ...], what: str) -> StepOutcome:
        # Health messages are the objects' own (a controller may quote a field).
        waiting = tuple(
            dataclasses.replace(w, message=self.redactor.scrub(w.message)) for w in waiting
        )
        names = ", ".join(f"{w.ref.kind} {w.ref.name}: {w.message}" for w in waiting[:_NAMED])
        more = len(waiting) - _NAMED
        message = f"waiting for {what}: {names}" + (f" (and {more} more)" if more > 0 else "")
        message = self.redactor.scrub(message)
        return StepOutcome(
            Phase.RUNNING, message, self.state.progress(self.revision, self.version, waiting)
        )

    def _final(self, phase: Phase, message: str) -> StepOutcome:
        self.state.stage = "done"
        message = self.redactor.scrub(message)
        return StepOutcome(
            phase,
            message,
            self.state.progress(self.revision, self.version, ()),
            SyncResult(self.revision, phase, message, tuple(self.runner.results)),
        )

    async def step(self) -> StepOutcome:
        options, runner, st = self.options, self.runner, self.state
        if not any(not is_hook(m) for m in self.desired) and not options.allow_empty:
            return self._final(
                Phase.FAILED,
                "the render produced no objects; refusing to sync (and prune everything) "
                "unless allowEmpty is set",
            )
        selected = [m for m in self.desired if _selected(m, options.only)]
        try:
            live = await read_live(
                self.kube, [m.ref for m in selected] + self.inventory, self.cache
            )
            prune = (
                []
                if options.only is not None
                else prune_candidates(self.app, self.desired, self.inventory, live)
            )
            plan = build_plan(selected, {ref: live[ref] for ref in prune})
            self.live = live
        except RetryableError as e:
            return self._final(Phase.ERROR, str(e))
        except GitmoorError as e:
            return self._final(Phase.FAILED, str(e))
        if st.stage == "wave" and st.wave >= len(plan.waves) and self.state_was_read:
            # A step only ever records a wave it waits in: an index past the plan's
            # waves was not written by a step, and would skip waves. Start over.
            st.wave, st.part = 0, ""
        self.state_was_read = False
        try:
            if st.stage == "sync-fail":
                return await self._sync_fail(plan)
            if not self.started:
                self.started = True
                for warning in plan.warnings:
                    runner.emit("warning", warning)
                for m in plan.skipped:
                    # Argo CD's Skip, Helm test hooks and the like: in Git, never applied.
                    runner.emit(
                        "skip", f"{m.ref} skipped (its hook annotation names no phase that runs)"
                    )
                if options.create_namespace:
                    await _ensure_namespace(
                        self.kube, self.app.spec.destination.namespace, options.dry_run, runner
                    )
            while True:
                if st.stage == "pre-sync":
                    waiting = await runner.step_hooks(plan.pre_sync, HookPhase.PRE_SYNC, st)
                    if waiting:
                        return self._running(waiting, "the PreSync hooks")
                    st.stage, st.wave, st.part = "wave", 0, ""
                elif st.stage == "wave":
                    if st.wave >= len(plan.waves):
                        st.stage = "prune"
                        continue
                    waiting = await self._wave(plan, st.wave, live)
                    if waiting:
                        return self._running(waiting, f"wave {plan.waves[st.wave].number}")
                    st.wave, st.part = st.wave + 1, ""
                elif st.stage == "prune":
                    # Pruned in the Sync phase, before PostSync hooks (Argo CD's order),
                    # so a PostSync smoke test sees the state Git declares.
                    await runner.prune(plan, prune, live)
                    self._forget_pruned()
                    st.stage = "post-sync"
                elif st.stage == "post-sync":
                    waiting = await runner.step_hooks(plan.post_sync, HookPhase.POST_SYNC, st)
                    if waiting:
                        return self._running(waiting, "the PostSync hooks")
                    st.stage = "done"
                else:
                    return self._succeeded()
        except _Failed as e:
            st.stage, st.failure = "sync-fail", self.redactor.scrub(e.message)
            return await self._sync_fail(plan)
        except RetryableError as e:
            # Includes an API server that went away: the step ends as Error, is
            # recorded, and is retried; it never stays Running.
            return self._final(Phase.ERROR, str(e))
        except GitmoorError as e:
            return self._final(Phase.FAILED, str(e))

    async def _wave(
        self, plan: Plan, index: int, live: dict[ObjectRef, JSONDict]
    ) -> tuple[Waiting, ...]:
        """Apply wave ``index`` (unless done before), run its Sync hooks, then hold
        the gate when anything comes after it."""
        runner, st, wave = self.runner, self.state, plan.waves[index]
        if st.part == "":
            runner.emit("wave", f"wave {wave.number}: {len(wave.manifests)} object(s)")
            first = len(runner.results)
            for step in wave.steps:
                objs = await asyncio.gather(
                    *(
                        (runner.replace_one if _replaces(m) else runner.apply_one)(
                            m, _live_of(live, m.ref), wave.number
                        )
                        for m in step
                    )
                )
                await runner.after_crds({m.ref: o for m, o in zip(step, objs, strict=True)})
                # What each apply answered is the object now (None: failed, or a
                # dry run): the comparison after the sync reads nothing again.
                for m, o in zip(step, objs, strict=True):
                    if o is not None and not self.options.dry_run:
                        self.live[m.ref] = o
                    else:
                        self.live.pop(m.ref, None)
            failed = [r for r in runner.results[first:] if r.action is Action.FAILED]
            if failed:
                raise _Failed(
                    f"{len(failed)} object(s) failed to apply; first: {failed[0].ref}: {failed[0].message}"
                )
            st.part = "hooks"
        if st.part == "hooks":
            waiting = await runner.step_hooks(wave.hooks, HookPhase.SYNC, st)
            if waiting:
                return waiting
            later = index + 1 < len(plan.waves) or bool(plan.post_sync)
            if not later or self.options.dry_run or not self.options.wait_health:
                return ()
            st.part, st.gate_since = "gate", time.time()
        return await runner.health_gate(
            [m.ref for m in wave.manifests], f"wave {wave.number}", st.gate_since
        )

    def _forget_pruned(self) -> None:
        for r in self.runner.results:
            if r.action is Action.PRUNED:
                self.live.pop(r.ref, None)

    async def _sync_fail(self, plan: Plan) -> StepOutcome:
        """SyncFail hooks run once anything failed; the operation then ends Failed
        with the first failure's message whatever they do."""
        try:
            waiting = await self.runner.step_hooks(plan.sync_fail, HookPhase.SYNC_FAIL, self.state)
        except (GitmoorError, _Failed) as e:
            log.warning("event=syncfail_hook_failed app=%s error=%s", self.app.name, e)
            waiting = ()
        if waiting:
            return self._running(waiting, "the SyncFail hooks")
        return self._final(Phase.FAILED, self.state.failure)

    def _succeeded(self) -> StepOutcome:
        failed = [r for r in self.runner.results if r.action is Action.FAILED]
        if failed:
            return self._final(Phase.FAILED, f"{len(failed)} object(s) failed")
        counts = self.state.counts
        n = sum(counts.get(a.value, 0) for a in (Action.CREATED, Action.CONFIGURED, Action.PRUNED))
        verb = "would change" if self.options.dry_run else "changed"
        return self._final(
            Phase.SUCCEEDED,
            f"successfully synced (dry run: {n} object(s) {verb})"
            if self.options.dry_run
            else f"successfully synced: {n} object(s) {verb}",
        )


async def run_sync(
    app: Application,
    revision: str,
    desired: Sequence[Manifest],
    kube: KubeClient,
    *,
    poll: float = 0.5,
    **kwargs: Any,
) -> SyncResult:
    """Step a fresh ``SyncContext`` until it ends, sleeping ``poll`` between steps:
    the whole sync in one call, for a caller that keeps no state (tests, tools)."""
    ctx = SyncContext(app, revision, desired, kube, **kwargs)
    while True:
        outcome = await ctx.step()
        if outcome.result is not None:
            return outcome.result
        await asyncio.sleep(poll)


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
