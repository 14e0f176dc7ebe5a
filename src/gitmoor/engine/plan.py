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
    ``Skip`` alone means the object is neither applied nor compared (Argo CD's
    ``Skip``: kept in Git, ignored by the sync).

Hook deletion
    ``gitmoor.io/hook-delete-policy: HookSucceeded|HookFailed|BeforeHookCreation``
    (comma-separated, default BeforeHookCreation, as Argo CD): delete the hook
    after it succeeded, after it failed, or just before creating it again.

Hook names
    A hook may carry ``metadata.generateName`` instead of a name. It is named at
    the sync as Argo CD names it (gitops-engine ``getSyncTasks``):
    ``<generateName><first 7 of the revision>-<phase>-<unix time>``, lower-cased, so
    each sync creates a new one. A resource (not a hook) needs a name: server-side
    apply, like ``kubectl apply``, cannot create an object from ``generateName``.

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
    sync options contain ``Prune=false`` is never pruned (Argo CD's sync option);
    objects with ``PruneLast=true`` come after every other prune. The wave and
    options of a prune candidate are read from its live object, since it is no
    longer in the rendered manifests.

Sync options (``gitmoor.io/sync-options``, or Argo CD's ``argocd.argoproj.io/sync-options``)
    Honoured:

    - ``Prune=false``: never pruned; the app shows it as requiring pruning.
      (Argo CD's ``Prune=confirm`` is kept the same way, with a warning: gitmoor
      has no confirmation step, and keeping is the side that loses nothing.)
    - ``Delete=false``: kept when the app is deleted with cascade (Argo CD's
      finalizer skips it the same way); ``Delete=confirm`` likewise, with a warning.
      As the app's sync option it is the default of every object, which an
      object's own ``Delete=`` overrides (Argo CD's rule).
    - ``PruneLast=true``: pruned after every other prune. gitmoor prunes only once
      every wave is applied and healthy anyway (Argo CD swaps prunes into the
      mirrored waves instead), so what is left to honour is "after the others",
      which is where Argo CD's extra last wave puts it.
    - ``Replace=true``: written with a PUT (update, the live ``resourceVersion``
      as precondition) or a POST (create) instead of server-side apply, as Argo
      CD runs ``kubectl replace``/``kubectl create``. ``Replace=false``: the default.
    - ``Validate=false`` with ``Replace=true``: the PUT/POST is sent with
      ``fieldValidation=Ignore`` (the server drops fields its schema does not
      declare) instead of ``Strict``, as ``kubectl replace --validate=false``.
    - ``SkipDryRunOnMissingResource=true``: a custom resource whose kind the cluster
      does not serve yet (and no CRD of the app defines) does not fail the render;
      it is compared as OutOfSync (missing) and applied in its wave, which fails
      only if its kind is still not served by then (Argo CD's behaviour). As the
      app's sync option it covers every object. Without a namespace it gets the
      destination's, as Argo CD gives it (``engine/prepare.py`` says why that is
      safe for a cluster-scoped kind).

    Accepted, no-op:

    - ``Validate=false`` on an applied object: server-side apply refuses a field its
      schema does not declare whatever ``fieldValidation`` says (measured on this
      project's control plane, v1.37: ``Ignore``, ``Warn`` and ``Strict`` all answer
      "field not declared in schema", for a ConfigMap and for a custom resource), and
      gitmoor never asks for ``Strict``; so there is nothing left to relax, just as
      ``kubectl apply --server-side --validate=false`` relaxes nothing there. Use it
      with ``Replace=true`` for kinds that need it.
    - ``ServerSideApply=true``: gitmoor always applies server-side.
      ``ServerSideApply=false`` is accepted with a warning, for the same reason.
    - ``ApplyOutOfSyncOnly=true``: gitmoor writes only objects whose dry-run differs
      from the live object anyway.

    Any other Argo CD option on an object (``Force=true``; or the app-level ones
    such as ``CreateNamespace``, which Argo CD reads only from the Application)
    is ignored, as Argo CD ignores options it does not know, with a warning so it is
    not silent. In ``gitmoor.io/sync-options`` unknown keys are kept uninterpreted
    (``ObjectOptions.get``); a known key with a value that is not ``true``/``false``
    is an error.

Compare options (``argocd.argoproj.io/compare-options``)
    ``IgnoreExtraneous`` (Argo CD's newer docs call it ``IgnoreNeedsPruning``;
    both are read) on a live object that the app owns but Git no longer declares:
    the object is still listed as requiring pruning, but does not make the app
    OutOfSync (Argo CD ``controller/state.go``: ``needsPruning`` objects with the
    option leave the app's sync code alone). It changes nothing for declared objects.

Argo CD and Helm annotations, read as Argo CD reads them
    (gitops-engine ``pkg/sync/hook``, ``pkg/sync/hook/helm``, ``pkg/sync/syncwaves``,
    ``pkg/sync/ignore``, ``pkg/sync/common/types.go``):

    - ``argocd.argoproj.io/sync-wave``: the wave when it is an integer
      (``strconv.Atoi``); otherwise ignored (with a warning) and ``helm.sh/hook-weight``
      decides, which Argo CD reads on any object, hook or not; else 0.
    - ``argocd.argoproj.io/hook``: ``PreSync``, ``Sync``, ``PostSync``, ``SyncFail``,
      ``Skip``; unknown words are dropped (with a warning; ``PreDelete``/``PostDelete``
      run at app deletion in Argo CD, which gitmoor does not do). When no known word
      is left, Helm's hook annotation decides. An object carrying the annotation is
      a hook even when no phase is left; Argo CD then never applies it (its
      ``ignore.Ignore``), and neither does gitmoor: such objects are skipped.
    - ``helm.sh/hook`` (ignored when ``argocd.argoproj.io/hook`` gives a phase):
      ``pre-install``/``pre-upgrade`` → PreSync, ``post-install``/``post-upgrade`` →
      PostSync (both of a pair give one hook); ``test``, ``test-success``,
      ``test-failure``, ``pre-delete``, ``post-delete``, ``pre-rollback``,
      ``post-rollback`` give no phase, so such a hook is skipped (never applied).
      ``crd-install`` (Helm 2) is not a hook: the object is a resource.
    - ``argocd.argoproj.io/hook-delete-policy`` and ``helm.sh/hook-delete-policy``
      (``before-hook-creation``, ``hook-succeeded``, ``hook-failed`` → the
      policies above): the union of both; none gives BeforeHookCreation, which is
      both Argo CD's default and Helm 3's own default.

Precedence
    gitmoor's annotation beats Argo CD's on the same object, one concern at a time:
    ``gitmoor.io/sync-wave`` over the Argo CD/Helm wave, ``gitmoor.io/hook`` over the
    Argo CD/Helm hook, ``gitmoor.io/hook-delete-policy`` over theirs, and
    ``gitmoor.io/sync-options`` over ``argocd.argoproj.io/sync-options`` key by key
    (an Argo CD key gitmoor's annotation does not set still applies). Where the two
    disagree, ``Directives.warnings`` says which won; ``annotation_warnings`` collects
    them for the render, shown by ``app diff``, ``app sync`` and the app's conditions.

Two manifests with the same group, kind, namespace and name are a
``UserInputError`` naming both sources: the version is left out of the identity
because one object served at two versions is still one object.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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

# Argo CD's and Helm's annotations (gitops-engine pkg/sync/common/types.go and
# pkg/sync/hook/helm; compare-options from argo-cd's common package).
ARGOCD_SYNC_WAVE = "argocd.argoproj.io/sync-wave"
ARGOCD_HOOK = "argocd.argoproj.io/hook"
ARGOCD_HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
ARGOCD_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
ARGOCD_COMPARE_OPTIONS = "argocd.argoproj.io/compare-options"
HELM_HOOK = "helm.sh/hook"
HELM_HOOK_WEIGHT = "helm.sh/hook-weight"
HELM_HOOK_DELETE_POLICY = "helm.sh/hook-delete-policy"

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


class Role(enum.Enum):
    """What the sync does with an object."""

    #: applied in its wave, compared, pruned when Git no longer declares it
    RESOURCE = "resource"
    #: run in its phases; neither compared nor pruned
    HOOK = "hook"
    #: neither applied nor compared: ``Skip``, Helm test/delete/rollback hooks, or
    #: an Argo CD hook annotation with no phase gitmoor runs (gitops-engine ``ignore.Ignore``)
    SKIPPED = "skipped"


# The word that skips an object (Argo CD's HookTypeSkip); not a phase.
_SKIP = "Skip"

# helm.sh/hook → Argo CD phase (gitops-engine pkg/sync/hook/helm/type.go); every
# other Helm hook type gives no phase.
_HELM_HOOK_PHASES = {
    "pre-install": HookPhase.PRE_SYNC,
    "pre-upgrade": HookPhase.PRE_SYNC,
    "post-install": HookPhase.POST_SYNC,
    "post-upgrade": HookPhase.POST_SYNC,
}
# helm.sh/hook-delete-policy → policy (pkg/sync/hook/helm/delete_policy.go).
_HELM_DELETE_POLICIES = {
    "before-hook-creation": HookDeletePolicy.BEFORE_HOOK_CREATION,
    "hook-succeeded": HookDeletePolicy.HOOK_SUCCEEDED,
    "hook-failed": HookDeletePolicy.HOOK_FAILED,
}
_ARGO_DELETION_HOOKS = ("PreDelete", "PostDelete")

# The boolean options gitmoor interprets, with their default.
_BOOL_OPTIONS = {
    "Prune": True,
    "Delete": True,
    "PruneLast": False,
    "Replace": False,
    "Validate": True,
    "SkipDryRunOnMissingResource": False,
}
# argocd.argoproj.io/sync-options items, matched as exact strings as Argo CD
# matches them (resourceutil.HasAnnotationOption), → (key, value, warning or "").
_ARGO_OPTIONS: dict[str, tuple[str, str, str]] = {
    "Prune=false": ("Prune", "false", ""),
    "Prune=true": ("Prune", "true", ""),
    "Prune=confirm": (
        "Prune",
        "false",
        "Prune=confirm: gitmoor has no confirmation step, so the object is never pruned "
        "(as Prune=false)",
    ),
    "Delete=false": ("Delete", "false", ""),
    "Delete=true": ("Delete", "true", ""),
    "Delete=confirm": (
        "Delete",
        "false",
        "Delete=confirm: gitmoor has no confirmation step, so the object is kept when the "
        "app is deleted (as Delete=false)",
    ),
    "PruneLast=true": ("PruneLast", "true", ""),
    "Replace=true": ("Replace", "true", ""),
    "Replace=false": ("Replace", "false", ""),
    "Validate=false": ("Validate", "false", ""),
    "Validate=true": ("Validate", "true", ""),
    "SkipDryRunOnMissingResource=true": ("SkipDryRunOnMissingResource", "true", ""),
    "ServerSideApply=true": ("ServerSideApply", "true", ""),
    "ServerSideApply=false": (
        "ServerSideApply",
        "false",
        "ServerSideApply=false: gitmoor always applies server-side; ignored",
    ),
    "ApplyOutOfSyncOnly=true": ("ApplyOutOfSyncOnly", "true", ""),
}
# compare-options words meaning IgnoreExtraneous (the newer docs' name too), and
# words Argo CD accepts that gitmoor's server-side diff makes moot.
_IGNORE_EXTRANEOUS = ("IgnoreExtraneous", "IgnoreNeedsPruning")
_COMPARE_NO_OPS = ("ServerSideDiff=true", "IncludeMutationWebhook=true")


@dataclass(frozen=True, slots=True)
class ObjectOptions:
    """Parsed sync options (``Key=value`` items, comma-separated).

    ``prune``, ``delete``, ``prune_last``, ``replace``, ``validate`` and
    ``skip_dry_run_on_missing`` are the options gitmoor acts on (see the module
    docstring); options it does not interpret are kept in ``other`` so later
    steps can read them (Argo CD likewise ignores options it does not know
    rather than failing the sync).
    """

    prune: bool = True
    other: tuple[tuple[str, str], ...] = ()
    delete: bool = True
    prune_last: bool = False
    replace: bool = False
    validate: bool = True
    skip_dry_run_on_missing: bool = False

    @classmethod
    def parse(cls, text: str, *, concerns: str | None = None) -> ObjectOptions:
        """``gitmoor.io/sync-options``: a known key must be ``true`` or ``false``."""
        return cls.of(_parse_own_options(text, concerns))

    @classmethod
    def of(cls, items: Mapping[str, str]) -> ObjectOptions:
        """From validated ``key → value`` items (the last one of a key wins)."""

        def flag(key: str) -> bool:
            value = items.get(key)
            return _BOOL_OPTIONS[key] if value is None else value.lower() == "true"

        return cls(
            prune=flag("Prune"),
            other=tuple((k, v) for k, v in items.items() if k not in _BOOL_OPTIONS),
            delete=flag("Delete"),
            prune_last=flag("PruneLast"),
            replace=flag("Replace"),
            validate=flag("Validate"),
            skip_dry_run_on_missing=flag("SkipDryRunOnMissingResource"),
        )

    def get(self, key: str) -> str | None:
        """The value of an uninterpreted option, the last one if given twice."""
        return next((v for k, v in reversed(self.other) if k == key), None)


def _parse_own_options(text: str, concerns: str | None) -> dict[str, str]:
    items: dict[str, str] = {}
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
        if key in _BOOL_OPTIONS and value.lower() not in ("true", "false"):
            raise UserInputError(
                f"{SYNC_OPTIONS_ANNOTATION}: {key} must be true or false, not {value!r}",
                concerns=concerns,
            )
        items.pop(key, None)  # re-inserted last: the last of a repeated key wins
        items[key] = value
    return items


@dataclass(frozen=True, slots=True)
class Directives:
    """What an object's annotations (gitmoor's, Argo CD's, Helm's) ask of the sync."""

    role: Role = Role.RESOURCE
    wave: int = 0
    phases: tuple[HookPhase, ...] = ()
    delete_policies: frozenset[HookDeletePolicy] = frozenset(
        {HookDeletePolicy.BEFORE_HOOK_CREATION}
    )
    options: ObjectOptions = field(default_factory=ObjectOptions)
    #: Argo CD's compare option: needing pruning does not make the app OutOfSync
    ignore_extraneous: bool = False
    #: annotations ignored or overruled, each a sentence naming the object
    warnings: tuple[str, ...] = ()


def _annotations(obj: JSONDict) -> Mapping[str, object]:
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    return ann if isinstance(ann, dict) else {}


def _where(ref: ObjectRef, manifest: Manifest | None = None) -> str:
    if manifest is not None and manifest.source is not None:
        return f"{ref} ({manifest.source})"
    return str(ref)


def _text_of(obj: JSONDict) -> str:
    """A name for warnings about an object that has no ref at hand."""
    meta = obj.get("metadata")
    name = ""
    if isinstance(meta, dict):
        name = str(meta.get("name") or meta.get("generateName") or "")
        if meta.get("namespace"):
            name = f"{meta['namespace']}/{name}"
    return f"{obj.get('kind', 'object')} {name}".strip()


def _csv(raw: object) -> list[str]:
    """An annotation's comma-separated words, trimmed and deduplicated in order
    (gitops-engine ``GetAnnotationCSVs``)."""
    return list(dict.fromkeys(w.strip() for w in str(raw).split(",") if w.strip()))


def _enum_values(kind: type[_E], words: list[str], annotation: str, concerns: str) -> list[_E]:
    known = {e.value: e for e in kind}
    unknown = [w for w in words if w not in known]
    if unknown:
        # Argo CD drops unknown words silently; a typo in a hook annotation would
        # then turn a hook into a resource (or its policy into the default), so
        # gitmoor's own annotations refuse instead.
        raise UserInputError(
            f"{annotation}: unknown value {unknown[0]!r} (expected one of {', '.join(known)})",
            concerns=concerns,
        )
    return [known[w] for w in words]


def _own_wave(ann: Mapping[str, object], concerns: str | None) -> int | None:
    raw = ann.get(SYNC_WAVE_ANNOTATION)
    if raw is None:
        return None
    text = str(raw).strip()
    if not _INTEGER.fullmatch(text):
        raise UserInputError(
            f"{SYNC_WAVE_ANNOTATION} must be an integer, not {raw!r}", concerns=concerns
        )
    return int(text)


def _argo_wave(ann: Mapping[str, object], where: str, warnings: list[str]) -> int | None:
    """The wave Argo CD gives (syncwaves.Wave): its annotation when an integer,
    else Helm's hook weight when an integer; None when neither annotation is set."""
    found = False
    for key in (ARGOCD_SYNC_WAVE, HELM_HOOK_WEIGHT):
        raw = ann.get(key)
        if raw is None:
            continue
        found = True
        if _INTEGER.fullmatch(str(raw)):  # Atoi takes no surrounding space either
            return int(str(raw))
        warnings.append(f"{where}: {key} {str(raw)!r} is not an integer; ignored, as Argo CD does")
    return 0 if found else None


def _own_hook(
    ann: Mapping[str, object], concerns: str
) -> tuple[Role, tuple[HookPhase, ...]] | None:
    raw = ann.get(HOOK_ANNOTATION)
    if raw is None or not str(raw).strip():
        return None
    words = _csv(raw)
    phases = _enum_values(HookPhase, [w for w in words if w != _SKIP], HOOK_ANNOTATION, concerns)
    if not phases:
        return Role.SKIPPED, ()
    return Role.HOOK, tuple(phases)


def _argo_hook(
    ann: Mapping[str, object], where: str, warnings: list[str]
) -> tuple[Role, tuple[HookPhase, ...]] | None:
    """Argo CD's reading of its own and Helm's hook annotations (hook.IsHook,
    hook.Types, hook.Skip, ignore.Ignore); None when neither annotation is set."""
    argo_raw = ann.get(ARGOCD_HOOK)
    helm_raw = ann.get(HELM_HOOK)
    known = {p.value: p for p in HookPhase}
    argo_words: list[str] = []
    if argo_raw is not None:
        for word in _csv(argo_raw):
            if word in known or word == _SKIP:
                argo_words.append(word)
            elif word in _ARGO_DELETION_HOOKS:
                warnings.append(
                    f"{where}: {ARGOCD_HOOK} {word} runs when an Argo CD app is deleted; "
                    "gitmoor runs no deletion hooks, so it is ignored"
                )
            else:
                warnings.append(
                    f"{where}: {ARGOCD_HOOK} {word!r} is not a hook type; ignored, "
                    "as Argo CD ignores unknown hook types"
                )
    if argo_words:
        # Argo CD ignores Helm's hook annotation once its own gives a type.
        if argo_words == [_SKIP]:
            return Role.SKIPPED, ()
        return Role.HOOK, tuple(known[w] for w in argo_words if w != _SKIP)
    helm_is_hook = helm_raw is not None and str(helm_raw) != "crd-install"
    if argo_raw is None and not helm_is_hook:
        return None
    phases = tuple(
        dict.fromkeys(_HELM_HOOK_PHASES[w] for w in _csv(helm_raw or "") if w in _HELM_HOOK_PHASES)
    )
    if phases:
        return Role.HOOK, phases
    if argo_raw is not None and not helm_is_hook:
        warnings.append(
            f"{where}: {ARGOCD_HOOK} {str(argo_raw)!r} names no phase gitmoor runs; "
            "the object is not applied (Argo CD ignores such a hook)"
        )
    # A hook with no phase: Argo CD never applies it (Helm test hooks, delete and
    # rollback hooks), and neither does gitmoor.
    return Role.SKIPPED, ()


def _argo_delete_policies(
    ann: Mapping[str, object], where: str, warnings: list[str]
) -> frozenset[HookDeletePolicy] | None:
    """The union of Argo CD's and Helm's policies (hook.DeletePolicies); None
    when neither annotation is set."""
    argo_raw, helm_raw = ann.get(ARGOCD_HOOK_DELETE_POLICY), ann.get(HELM_HOOK_DELETE_POLICY)
    if argo_raw is None and helm_raw is None:
        return None
    known = {p.value: p for p in HookDeletePolicy}
    policies: set[HookDeletePolicy] = set()
    for key, raw, table in (
        (ARGOCD_HOOK_DELETE_POLICY, argo_raw, known),
        (HELM_HOOK_DELETE_POLICY, helm_raw, _HELM_DELETE_POLICIES),
    ):
        for word in _csv(raw or ""):
            if word in table:
                policies.add(table[word])
            else:
                warnings.append(
                    f"{where}: {key} {word!r} is not a delete policy; ignored, as Argo CD does"
                )
    return frozenset(policies or {HookDeletePolicy.BEFORE_HOOK_CREATION})


def _argo_options(raw: object, where: str, warnings: list[str]) -> dict[str, str]:
    items: dict[str, str] = {}
    for word in _csv(raw):
        known = _ARGO_OPTIONS.get(word)
        if known is None:
            warnings.append(
                f"{where}: {ARGOCD_SYNC_OPTIONS} {word!r} is not an option gitmoor honours on "
                "an object; ignored"
            )
            continue
        key, value, note = known
        if note:
            warnings.append(f"{where}: {ARGOCD_SYNC_OPTIONS} {note}")
        items[key] = value
    return items


def _compare_options(raw: object, where: str, warnings: list[str]) -> bool:
    ignore = False
    for word in _csv(raw):
        if word in _IGNORE_EXTRANEOUS:
            ignore = True
        elif word not in _COMPARE_NO_OPS:
            warnings.append(f"{where}: {ARGOCD_COMPARE_OPTIONS} {word!r} is not supported; ignored")
    return ignore


def _describe_hook(hook: tuple[Role, tuple[HookPhase, ...]] | None) -> str:
    if hook is None or hook[0] is Role.RESOURCE:
        return "a resource"
    if hook[0] is Role.SKIPPED:
        return "skipped"
    return "a " + ",".join(p.value for p in hook[1]) + " hook"


def directives(obj: JSONDict, *, concerns: str | None = None) -> Directives:
    """Read the object's sync annotations: gitmoor's, Argo CD's and Helm's.

    gitmoor's win where they disagree with Argo CD's (a warning says so). A
    malformed gitmoor annotation is a ``UserInputError``; a malformed Argo CD or
    Helm one is ignored as Argo CD ignores it, with a warning.
    """
    ann = _annotations(obj)
    where = concerns or _text_of(obj)
    warnings: list[str] = []

    own_wave = _own_wave(ann, where)
    argo_wave = _argo_wave(ann, where, warnings)
    wave = own_wave if own_wave is not None else (argo_wave or 0)
    if own_wave is not None and argo_wave is not None and argo_wave != own_wave:
        warnings.append(
            f"{where}: {SYNC_WAVE_ANNOTATION} ({own_wave}) and Argo CD's wave ({argo_wave}, from "
            f"{ARGOCD_SYNC_WAVE if ARGOCD_SYNC_WAVE in ann else HELM_HOOK_WEIGHT}) disagree; "
            f"gitmoor's wins: wave {own_wave}"
        )

    own_hook = _own_hook(ann, where)
    argo_hook = _argo_hook(ann, where, warnings)
    hook = own_hook if own_hook is not None else argo_hook
    if own_hook is not None and argo_hook is not None and own_hook != argo_hook:
        warnings.append(
            f"{where}: {HOOK_ANNOTATION} makes it {_describe_hook(own_hook)}, Argo CD's "
            f"{ARGOCD_HOOK if ARGOCD_HOOK in ann else HELM_HOOK} {_describe_hook(argo_hook)}; "
            "gitmoor's wins"
        )
    role, phases = hook if hook is not None else (Role.RESOURCE, ())

    own_words = (
        _csv(ann[HOOK_DELETE_POLICY_ANNOTATION]) if HOOK_DELETE_POLICY_ANNOTATION in ann else []
    )
    own_policies = (
        frozenset(
            _enum_values(HookDeletePolicy, own_words, HOOK_DELETE_POLICY_ANNOTATION, where)
            or [HookDeletePolicy.BEFORE_HOOK_CREATION]
        )
        if HOOK_DELETE_POLICY_ANNOTATION in ann
        else None
    )
    argo_policies = _argo_delete_policies(ann, where, warnings)
    if own_policies is not None and argo_policies is not None and own_policies != argo_policies:
        warnings.append(
            f"{where}: {HOOK_DELETE_POLICY_ANNOTATION} ({_policy_text(own_policies)}) and Argo "
            f"CD's ({_policy_text(argo_policies)}) disagree; gitmoor's wins"
        )
    policies = own_policies or argo_policies or frozenset({HookDeletePolicy.BEFORE_HOOK_CREATION})

    own_options = (
        _parse_own_options(str(ann[SYNC_OPTIONS_ANNOTATION]), where)
        if SYNC_OPTIONS_ANNOTATION in ann
        else {}
    )
    argo_options = (
        _argo_options(ann[ARGOCD_SYNC_OPTIONS], where, warnings)
        if ARGOCD_SYNC_OPTIONS in ann
        else {}
    )
    for key, value in argo_options.items():
        if key in own_options and own_options[key].lower() != value.lower():
            warnings.append(
                f"{where}: {SYNC_OPTIONS_ANNOTATION} {key}={own_options[key]} and "
                f"{ARGOCD_SYNC_OPTIONS} {key}={value} disagree; gitmoor's wins"
            )
    options = ObjectOptions.of({**argo_options, **own_options})

    ignore_extraneous = (
        _compare_options(ann[ARGOCD_COMPARE_OPTIONS], where, warnings)
        if ARGOCD_COMPARE_OPTIONS in ann
        else False
    )
    return Directives(
        role=role,
        wave=wave,
        phases=phases,
        delete_policies=policies,
        options=options,
        ignore_extraneous=ignore_extraneous,
        warnings=tuple(warnings),
    )


def _policy_text(policies: frozenset[HookDeletePolicy]) -> str:
    return ",".join(sorted(p.value for p in policies))


def sync_wave(obj: JSONDict, *, concerns: str | None = None) -> int:
    """The object's wave: ``gitmoor.io/sync-wave``, else Argo CD's; 0 when absent."""
    return directives(obj, concerns=concerns).wave


def sync_options(obj: JSONDict, *, concerns: str | None = None) -> ObjectOptions:
    """The object's sync options: gitmoor's, with Argo CD's where gitmoor's is silent."""
    return directives(obj, concerns=concerns).options


def annotation_warnings(manifests: Iterable[Manifest]) -> tuple[str, ...]:
    """Every warning the manifests' sync annotations give, once each, in order.

    Raises ``UserInputError`` for a malformed gitmoor annotation, so a render that
    introduced one fails where it is shown (refresh, diff), not first at a sync.
    """
    out: dict[str, None] = {}
    for m in manifests:
        for w in directives(m.obj, concerns=_where(m.ref, m)).warnings:
            out[w] = None
    return tuple(out)


def has_name(obj: JSONDict) -> bool:
    """False for an object that has only ``metadata.generateName``."""
    meta = obj.get("metadata")
    return isinstance(meta, dict) and bool(meta.get("name"))


def hook_name(generate_name: str, revision: str, phase: HookPhase, started: float) -> str:
    """The name Argo CD gives a hook that has only ``generateName`` (gitops-engine
    ``getSyncTasks``): ``<generateName><revision[:7]>-<phase>-<unix seconds>``,
    lower-cased; a new one each sync."""
    return f"{generate_name}{revision[:7]}-{phase.value}-{int(started)}".lower()


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

    @property
    def generated_name(self) -> bool:
        """Named at the sync from ``metadata.generateName`` (see ``hook_name``)."""
        return not has_name(self.manifest.obj)


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

    ``skipped`` are the manifests the sync leaves alone (``Role.SKIPPED``);
    ``warnings`` are the annotation warnings of the manifests (``annotation_warnings``).
    """

    waves: tuple[Wave, ...]
    pre_sync: tuple[Hook, ...] = ()
    post_sync: tuple[Hook, ...] = ()
    sync_fail: tuple[Hook, ...] = ()
    prune: tuple[ObjectRef, ...] = ()
    skipped: tuple[Manifest, ...] = ()
    warnings: tuple[str, ...] = ()

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


def _order_key(wave: int, ref: ObjectRef) -> tuple[int, int, str, str, str, str]:
    rank = _KIND_RANK.get(ref.kind, len(KIND_ORDER))
    return (wave, rank, ref.name, ref.namespace, ref.group, ref.kind)


def _identity(ref: ObjectRef) -> tuple[str, str, str, str]:
    return ref.key


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
    order) and sync options (``Prune=false`` keeps it, ``PruneLast=true`` puts it
    last). Refs that are also among ``manifests`` are desired, so never pruned.
    """
    _check_unique(manifests)

    resources: list[tuple[int, Manifest]] = []
    hooks: dict[HookPhase, list[Hook]] = {phase: [] for phase in HookPhase}
    crd_waves: dict[tuple[str, str], tuple[int, Manifest]] = {}
    skipped: list[Manifest] = []
    warnings: dict[str, None] = {}
    for m in manifests:
        where = _where(m.ref, m)
        # Sync options are parsed here too, though only prune and the runner read
        # them: a typo should fail the render that introduced it, not the later
        # sync that would prune the object.
        d = directives(m.obj, concerns=where)
        warnings.update(dict.fromkeys(d.warnings))
        if d.role is Role.SKIPPED:
            skipped.append(m)
            continue
        if d.role is Role.RESOURCE:
            if not has_name(m.obj):
                raise UserInputError(
                    f"{where}: only a hook may use metadata.generateName; server-side apply "
                    "(like kubectl apply) needs metadata.name",
                    concerns=str(m.source) if m.source else str(m.ref),
                )
            resources.append((d.wave, m))
            if (defined := _defined_kind(m)) is not None:
                crd_waves[defined] = (d.wave, m)
            continue
        for phase in d.phases:
            hooks[phase].append(Hook(m, phase, d.wave, d.delete_policies))

    for hook_list in hooks.values():
        hook_list.sort(key=lambda h: _order_key(h.wave, h.ref))
    _check_crd_order(resources, hooks, crd_waves)

    return Plan(
        waves=_waves(resources, hooks[HookPhase.SYNC], crd_waves),
        pre_sync=tuple(hooks[HookPhase.PRE_SYNC]),
        post_sync=tuple(hooks[HookPhase.POST_SYNC]),
        sync_fail=tuple(hooks[HookPhase.SYNC_FAIL]),
        prune=_prune_order(prune, {_identity(m.ref) for m in manifests}),
        skipped=tuple(sorted(skipped, key=lambda m: _order_key(0, m.ref))),
        warnings=tuple(warnings),
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
        d = directives(obj, concerns=f"{ref} (live)")
        if not d.options.prune:
            continue
        # PruneLast sorts below every other prune (the reverse sort puts it last):
        # Argo CD gives it a wave after the last one.
        keyed.append(((not d.options.prune_last, *_order_key(d.wave, ref)), ref))
    keyed.sort(reverse=True)
    return tuple(ref for _, ref in keyed)
