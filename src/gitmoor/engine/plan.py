"""The sync plan: in what order to apply, which hooks to run when, what to prune.

A pure function of the rendered manifests and the prune candidates; it neither reads
the cluster nor decides what has drifted. The runner walks the plan; what follows
is the contract it relies on (the counterpart of gitops-engine's ``pkg/sync/doc.go``).

Phases
    Objects annotated ``gitmoor.io/hook: PreSync|Sync|PostSync|SyncFail`` (several
    phases may be given, comma-separated) are hooks, run in that phase; all other
    objects are resources, applied in the Sync phase. PreSync hooks run before any
    resource is applied and must all succeed; Sync hooks are created with the
    resources of their wave; PostSync hooks run once every wave is applied and
    healthy; SyncFail hooks run only when the sync fails. Hooks are never pruned.

Hook deletion
    ``gitmoor.io/hook-delete-policy: HookSucceeded|HookFailed|BeforeHookCreation``
    (comma-separated, default BeforeHookCreation, as Argo CD): delete the hook
    after it succeeded, after it failed, or just before creating it again.

Waves
    ``gitmoor.io/sync-wave: "<int>"`` (default 0, may be negative). Waves run in
    increasing order; a wave starts only when the previous one is applied and
    healthy. Each phase's hooks are ordered by wave too.

Order inside a wave
    By kind, in gitops-engine's ``kindOrder`` (``pkg/sync/sync_tasks.go``):
    namespaces, policies, service accounts, secrets and config maps, storage, CRDs,
    RBAC, then Services, workloads, and last Ingresses and APIServices; kinds not in
    the list come after all of them. Ties are broken by name, then by the rest of the
    ref, so the same input always gives the same plan.

Steps: custom resources after their definitions
    Argo CD orders a CRD before the custom resources of the same wave, but applies a
    wave's objects together, so a CR can reach the API server before its type is
    served and fail until a retry. Here a wave is split into ``steps``: the runner
    applies all objects of a step concurrently and waits for the step to be applied
    (and for CRDs, Established) before the next. A wave has one step, except when it
    holds a CRD and custom resources of the group/kind that CRD defines: those CRs
    form a second step. A CR in an earlier wave than its CRD (or in a PreSync hook, or
    a Sync hook of an earlier wave) could never be applied on a first sync, so it is a
    ``UserInputError`` rather than a silent reordering.

Pruning
    ``prune`` lists the refs to delete in the reverse of apply order: highest wave
    first, then reverse kind order (Ingresses before Deployments before Services
    before Namespaces), so dependants go before what they depend on. An object whose
    ``gitmoor.io/sync-options`` contain ``Prune=false`` is never pruned (Argo CD's
    sync option); the wave and options of a prune candidate are read from its live
    object, since it is no longer in the rendered manifests.

Two manifests with the same group, kind, namespace and name are a
``UserInputError`` naming both sources: the version is left out of the identity
because one object served at two versions is still one object.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from gitmoor.model import JSONDict, Manifest, ObjectRef, UserInputError
from gitmoor.model.application import (
    HOOK_ANNOTATION,
    HOOK_DELETE_POLICY_ANNOTATION,
    SYNC_OPTIONS_ANNOTATION,
    SYNC_WAVE_ANNOTATION,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# gitops-engine pkg/sync/sync_tasks.go ``kindOrder``, in its order. Keyed by kind
# alone, as there: a custom kind named "Service" sorts with Services.
KIND_ORDER: tuple[str, ...] = (
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
)
_KIND_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}
_CRD_GROUP = "apiextensions.k8s.io"
_E = TypeVar("_E", bound=enum.Enum)

# strconv.Atoi's syntax, which Argo CD uses: Python's int() would also take
# " 5 " and "1_000".
_INTEGER = re.compile(r"[+-]?[0-9]+")


class HookPhase(enum.Enum):
    """When a hook runs; the values are the annotation's words (Argo CD's)."""

    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"


class HookDeletePolicy(enum.Enum):
    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"
    BEFORE_HOOK_CREATION = "BeforeHookCreation"


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Parsed ``gitmoor.io/sync-options`` (``Key=value`` items, comma-separated).

    ``prune`` is the one option the plan acts on; options gitmoor does not
    interpret are kept in ``other`` so later steps can read them (Argo CD likewise
    ignores options it does not know rather than failing the sync).
    """

    prune: bool = True
    other: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, *, concerns: str | None = None) -> SyncOptions:
        prune = True
        other: list[tuple[str, str]] = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise UserInputError(
                    f"{SYNC_OPTIONS_ANNOTATION}: {item!r} is not of the form Key=value",
                    concerns=concerns,
                )
            if key == "Prune":
                if value.lower() not in ("true", "false"):
                    raise UserInputError(
                        f"{SYNC_OPTIONS_ANNOTATION}: Prune must be true or false, not {value!r}",
                        concerns=concerns,
                    )
                prune = value.lower() == "true"
            else:
                other.append((key, value))
        return cls(prune=prune, other=tuple(other))

    def get(self, key: str) -> str | None:
        """The value of an uninterpreted option, the last one if given twice."""
        return next((v for k, v in reversed(self.other) if k == key), None)


@dataclass(frozen=True, slots=True)
class Hook:
    """A manifest to run in one phase; a hook listed for two phases appears in both."""

    manifest: Manifest
    phase: HookPhase
    wave: int
    delete_policies: frozenset[HookDeletePolicy]

    @property
    def ref(self) -> ObjectRef:
        return self.manifest.ref


@dataclass(frozen=True, slots=True)
class Wave:
    """One sync wave of the Sync phase.

    ``steps`` are applied one after the other, the objects of a step together (see
    the module docstring); ``hooks`` are the Sync hooks of this wave, created once
    the steps are applied. A wave may hold only hooks.
    """

    number: int
    steps: tuple[tuple[Manifest, ...], ...]
    hooks: tuple[Hook, ...] = ()

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        """The resources of the wave in apply order."""
        return tuple(m for step in self.steps for m in step)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a sync does, in order. Hook tuples are ordered by (wave, kind, name):
    the runner takes them wave by wave, e.g. with ``itertools.groupby(…, key=wave)``.
    """

    waves: tuple[Wave, ...]
    pre_sync: tuple[Hook, ...] = ()
    post_sync: tuple[Hook, ...] = ()
    sync_fail: tuple[Hook, ...] = ()
    prune: tuple[ObjectRef, ...] = ()

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        """Every resource (not hook) in apply order."""
        return tuple(m for wave in self.waves for m in wave.manifests)

    def hooks(self, phase: HookPhase) -> tuple[Hook, ...]:
        if phase is HookPhase.PRE_SYNC:
            return self.pre_sync
        if phase is HookPhase.POST_SYNC:
            return self.post_sync
        if phase is HookPhase.SYNC_FAIL:
            return self.sync_fail
        return tuple(h for wave in self.waves for h in wave.hooks)


def _annotations(obj: JSONDict) -> Mapping[str, object]:
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    return ann if isinstance(ann, dict) else {}


def _where(ref: ObjectRef, manifest: Manifest | None = None) -> str:
    if manifest is not None and manifest.source is not None:
        return f"{ref} ({manifest.source})"
    return str(ref)


def sync_wave(obj: JSONDict, *, concerns: str | None = None) -> int:
    """The object's ``gitmoor.io/sync-wave``; 0 when absent."""
    raw = _annotations(obj).get(SYNC_WAVE_ANNOTATION)
    if raw is None:
        return 0
    text = str(raw).strip()
    if not _INTEGER.fullmatch(text):
        raise UserInputError(
            f"{SYNC_WAVE_ANNOTATION} must be an integer, not {raw!r}", concerns=concerns
        )
    return int(text)


def sync_options(obj: JSONDict, *, concerns: str | None = None) -> SyncOptions:
    raw = _annotations(obj).get(SYNC_OPTIONS_ANNOTATION)
    return SyncOptions.parse(str(raw), concerns=concerns) if raw is not None else SyncOptions()


def _words(obj: JSONDict, annotation: str) -> list[str]:
    raw = _annotations(obj).get(annotation)
    if raw is None:
        return []
    return [w.strip() for w in str(raw).split(",") if w.strip()]


def _enum_values(kind: type[_E], words: list[str], annotation: str, concerns: str) -> list[_E]:
    known = {e.value: e for e in kind}
    unknown = [w for w in words if w not in known]
    if unknown:
        # Argo CD drops unknown words silently; a typo in a hook annotation would
        # then turn a hook into a resource (or its policy into the default), so we
        # refuse instead.
        raise UserInputError(
            f"{annotation}: unknown value {unknown[0]!r} (expected one of {', '.join(known)})",
            concerns=concerns,
        )
    return [known[w] for w in words]


def _order_key(wave: int, ref: ObjectRef) -> tuple[int, int, str, str, str, str]:
    rank = _KIND_RANK.get(ref.kind, len(KIND_ORDER))
    return (wave, rank, ref.name, ref.namespace, ref.group, ref.kind)


def _identity(ref: ObjectRef) -> tuple[str, str, str, str]:
    return (ref.group, ref.kind, ref.namespace, ref.name)


def _defined_kind(manifest: Manifest) -> tuple[str, str] | None:
    """The (group, kind) a CRD manifest defines, or None for any other object."""
    if manifest.ref.group != _CRD_GROUP or manifest.ref.kind != "CustomResourceDefinition":
        return None
    spec = manifest.obj.get("spec")
    if not isinstance(spec, dict):
        return None
    names = spec.get("names")
    group, kind = spec.get("group"), names.get("kind") if isinstance(names, dict) else None
    if isinstance(group, str) and isinstance(kind, str):
        return group, kind
    return None


def _check_unique(manifests: Sequence[Manifest]) -> None:
    seen: dict[tuple[str, str, str, str], Manifest] = {}
    for m in manifests:
        first = seen.setdefault(_identity(m.ref), m)
        if first is not m:
            a = str(first.source) if first.source else "an unnamed source"
            b = str(m.source) if m.source else "an unnamed source"
            raise UserInputError(
                f"{m.ref} is defined twice: in {a} and in {b}",
                concerns=str(m.source) if m.source else str(m.ref),
            )


def build_plan(
    manifests: Sequence[Manifest],
    prune: Mapping[ObjectRef, JSONDict] | Iterable[ObjectRef] = (),
) -> Plan:
    """Order ``manifests`` into waves, steps and hook phases, and order ``prune``.

    ``prune`` is either the refs of live objects to delete, or a mapping from each
    such ref to its live object, whose annotations then give its wave (for the
    order) and sync options (``Prune=false`` keeps it). Refs that are also among
    ``manifests`` are desired, so never pruned.
    """
    _check_unique(manifests)

    resources: list[tuple[int, Manifest]] = []
    hooks: dict[HookPhase, list[Hook]] = {phase: [] for phase in HookPhase}
    crd_waves: dict[tuple[str, str], tuple[int, Manifest]] = {}
    for m in manifests:
        where = _where(m.ref, m)
        wave = sync_wave(m.obj, concerns=where)
        # Parsed now, though only prune reads it: a typo should fail the render
        # that introduced it, not the later sync that would prune the object.
        sync_options(m.obj, concerns=where)
        phases = _enum_values(HookPhase, _words(m.obj, HOOK_ANNOTATION), HOOK_ANNOTATION, where)
        if not phases:
            resources.append((wave, m))
            if (defined := _defined_kind(m)) is not None:
                crd_waves[defined] = (wave, m)
            continue
        policies = frozenset(
            _enum_values(
                HookDeletePolicy,
                _words(m.obj, HOOK_DELETE_POLICY_ANNOTATION),
                HOOK_DELETE_POLICY_ANNOTATION,
                where,
            )
            or [HookDeletePolicy.BEFORE_HOOK_CREATION]
        )
        for phase in dict.fromkeys(phases):
            hooks[phase].append(Hook(m, phase, wave, policies))

    for hook_list in hooks.values():
        hook_list.sort(key=lambda h: _order_key(h.wave, h.ref))
    _check_crd_order(resources, hooks, crd_waves)

    return Plan(
        waves=_waves(resources, hooks[HookPhase.SYNC], crd_waves),
        pre_sync=tuple(hooks[HookPhase.PRE_SYNC]),
        post_sync=tuple(hooks[HookPhase.POST_SYNC]),
        sync_fail=tuple(hooks[HookPhase.SYNC_FAIL]),
        prune=_prune_order(prune, {_identity(m.ref) for m in manifests}),
    )


def _check_crd_order(
    resources: list[tuple[int, Manifest]],
    hooks: Mapping[HookPhase, list[Hook]],
    crd_waves: Mapping[tuple[str, str], tuple[int, Manifest]],
) -> None:
    def check(wave: int, m: Manifest, what: str) -> None:
        crd = crd_waves.get((m.ref.group, m.ref.kind))
        if crd is None:
            return
        crd_wave, crd_manifest = crd
        if what == "PreSync hook":
            problem = "runs before any resource is applied"
            fix = "make it a Sync or PostSync hook"
        elif wave < crd_wave:
            problem = f"is in sync wave {wave}"
            fix = f"give it a {SYNC_WAVE_ANNOTATION} of at least {crd_wave}"
        else:
            return
        raise UserInputError(
            f"{_where(m.ref, m)}: this {what} {problem}, before "
            f"{_where(crd_manifest.ref, crd_manifest)} that defines its kind "
            f"(sync wave {crd_wave}); its type would not exist yet on a first sync: {fix}",
            concerns=str(m.source) if m.source else str(m.ref),
        )

    for wave, m in resources:
        check(wave, m, "custom resource")
    for hook in hooks[HookPhase.PRE_SYNC]:
        check(hook.wave, hook.manifest, "PreSync hook")
    for hook in hooks[HookPhase.SYNC]:
        check(hook.wave, hook.manifest, "Sync hook")


def _waves(
    resources: list[tuple[int, Manifest]],
    sync_hooks: list[Hook],
    crd_waves: Mapping[tuple[str, str], tuple[int, Manifest]],
) -> tuple[Wave, ...]:
    by_wave: dict[int, list[Manifest]] = {}
    for wave, m in sorted(resources, key=lambda wm: _order_key(wm[0], wm[1].ref)):
        by_wave.setdefault(wave, []).append(m)
    hooks_by_wave: dict[int, list[Hook]] = {}
    for hook in sync_hooks:
        hooks_by_wave.setdefault(hook.wave, []).append(hook)

    waves = []
    for number in sorted(by_wave.keys() | hooks_by_wave.keys()):
        first: list[Manifest] = []
        later: list[Manifest] = []
        for m in by_wave.get(number, []):
            # A CR waits for a CRD of the same wave; CRDs of earlier waves were
            # already applied (and established) by the time this wave starts.
            crd = crd_waves.get((m.ref.group, m.ref.kind))
            (later if crd is not None and crd[0] == number else first).append(m)
        steps = tuple(tuple(step) for step in (first, later) if step)
        waves.append(Wave(number, steps, tuple(hooks_by_wave.get(number, ()))))
    return tuple(waves)


def _prune_order(
    prune: Mapping[ObjectRef, JSONDict] | Iterable[ObjectRef],
    desired: set[tuple[str, str, str, str]],
) -> tuple[ObjectRef, ...]:
    live: Mapping[ObjectRef, JSONDict] = (
        prune if isinstance(prune, Mapping) else {ref: {} for ref in prune}
    )
    keyed = []
    for ref, obj in live.items():
        if _identity(ref) in desired:
            continue
        where = f"{ref} (live)"
        if not sync_options(obj, concerns=where).prune:
            continue
        keyed.append((_order_key(sync_wave(obj, concerns=where), ref), ref))
    keyed.sort(reverse=True)
    return tuple(ref for _, ref in keyed)
