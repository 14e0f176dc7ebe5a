"""Make rendered manifests ready to apply: namespaces and ownership.

Every object gets the app's tracking id (annotation) and instance label, so
that prune and delete can prove that gitmoor owns an object before touching it
(Argo CD's annotation tracking). Namespaced objects without a namespace get the
destination namespace; discovery decides what is namespaced, and a kind that a
CRD of the same render defines is judged by that CRD's ``spec.scope`` (it is
not served yet before the first sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitmoor.engine.plan import directives
from gitmoor.kube import UnknownKindError
from gitmoor.model import Manifest, ObjectRef, UserInputError
from gitmoor.model.application import INSTANCE_LABEL, TRACKING_ANNOTATION
from gitmoor.model.jsondata import copy_json
from gitmoor.model.project import ProjectViolation

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application


@dataclass(frozen=True, slots=True)
class PrepareOptions:
    #: namespaces other than the destination that manifests may name; "*" allows any
    allowed_namespaces: frozenset[str] = frozenset()
    #: a namespace the project's destinations permit (gitmoor.engine.projects); with
    #: it, the destination namespace itself must be permitted too, as Argo CD checks
    #: every object's namespace against the project
    namespace_allowed: Callable[[str], bool] | None = None
    #: the project, named in a refusal
    project: str = ""


def _crd_scopes(manifests: Sequence[Manifest]) -> dict[tuple[str, str], bool]:
    scopes: dict[tuple[str, str], bool] = {}
    for m in manifests:
        if m.ref.kind == "CustomResourceDefinition" and m.ref.group == "apiextensions.k8s.io":
            spec = m.obj.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            if kind:
                scopes[(str(spec.get("group", "")), kind)] = spec.get("scope") == "Namespaced"
    return scopes


async def prepare(
    app: Application,
    manifests: Sequence[Manifest],
    kube: KubeClient,
    options: PrepareOptions | None = None,
) -> tuple[Manifest, ...]:
    """Namespaced, tracked copies of ``manifests``; the input is not modified."""
    options = options or PrepareOptions()
    dest = app.spec.destination.namespace
    crd_scopes = _crd_scopes(manifests)
    out: list[Manifest] = []
    for m in manifests:
        ref = m.ref
        where = str(m.source) if m.source else str(ref)
        try:
            namespaced = (await kube.resource_for(ref)).namespaced
        except UnknownKindError:
            if (ref.group, ref.kind) not in crd_scopes and (
                skips_dry_run_when_missing(m)
                or app.spec.sync_policy.option("SkipDryRunOnMissingResource")
            ):
                # SkipDryRunOnMissingResource=true (Argo CD's sync option, on the
                # object or, for all of them, on the app): its CRD
                # comes from elsewhere (an operator, another app). Its scope is
                # unknown until then; like Argo CD, give it the destination
                # namespace when it names none (the API server drops a namespace
                # sent for a cluster-scoped kind, and the sync after its kind is
                # served re-stamps its tracking id for the scope discovery gives).
                namespaced = True
            elif (ref.group, ref.kind) not in crd_scopes:
                raise UserInputError(
                    f"unknown kind {ref.kind} in {ref.api_version}: the cluster does not serve it "
                    "and no CustomResourceDefinition in this app defines it (if its definition "
                    "comes from elsewhere, annotate it with gitmoor.io/sync-options: "
                    "SkipDryRunOnMissingResource=true)",
                    concerns=where,
                ) from None
            else:
                namespaced = crd_scopes[(ref.group, ref.kind)]
        obj = copy_json(m.obj)
        meta = obj.setdefault("metadata", {})
        if namespaced:
            ns = ref.namespace or dest
            if options.namespace_allowed is not None:
                if ns not in options.allowed_namespaces and not options.namespace_allowed(ns):
                    raise ProjectViolation(
                        f"project {options.project}: {ref} (from {where}) names namespace "
                        f'"{ns}", which is not a permitted destination (spec.destinations)',
                        concerns=f"project {options.project}",
                    )
            elif (
                ns != dest
                and "*" not in options.allowed_namespaces
                and ns not in options.allowed_namespaces
            ):
                raise UserInputError(
                    f"{ref} names namespace {ns!r}, but the app deploys to {dest!r} "
                    "and its project allows no other namespace",
                    concerns=where,
                )
            meta["namespace"] = ns
        else:
            # Cluster-scoped objects have no namespace; a stray one is dropped, as kubectl does.
            meta.pop("namespace", None)
            ns = ""
        ref = ObjectRef(ref.group, ref.version, ref.kind, ns, ref.name)
        annotations = meta.setdefault("annotations", {}) or {}
        meta["annotations"] = annotations
        annotations[TRACKING_ANNOTATION] = app.tracking_id(ref.group, ref.kind, ns, ref.name)
        labels = meta.setdefault("labels", {}) or {}
        meta["labels"] = labels
        labels[INSTANCE_LABEL] = app.name
        out.append(Manifest(ref, obj, m.source))
    seen: dict[ObjectRef, Manifest] = {}
    for m in out:
        key = ObjectRef(m.ref.group, "", m.ref.kind, m.ref.namespace, m.ref.name)
        if key in seen:
            raise UserInputError(
                f"{m.ref} is declared twice: at {seen[key].source} and at {m.source}",
                concerns=str(m.ref),
            )
        seen[key] = m
    return tuple(out)


def skips_dry_run_when_missing(m: Manifest) -> bool:
    """``SkipDryRunOnMissingResource=true`` in the manifest's sync options."""
    try:
        return directives(m.obj).options.skip_dry_run_on_missing
    except UserInputError:
        return False  # the plan names the malformed annotation


def tracking_id_of(obj: dict[str, object]) -> str:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return ""
    annotations = meta.get("annotations") or {}
    value = annotations.get(TRACKING_ANNOTATION, "") if isinstance(annotations, dict) else ""
    return value if isinstance(value, str) else ""


def owned_by(app: Application, obj: dict[str, object]) -> bool:
    """True when the live object carries exactly this app's tracking id for itself.

    The whole id must match the object's own group, kind, namespace and name, as
    Argo CD checks: an annotation copied onto another object (``kubectl get -o
    yaml | sed``, or a controller copying annotations to what it creates) does
    not make that object the app's.
    """
    value = tracking_id_of(obj)
    if not value.startswith(app.tracking_prefix):
        return False
    meta = obj.get("metadata")
    assert isinstance(meta, dict)
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    expected = app.tracking_id(
        group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", ""))
    )
    return value == expected


def owner_app(obj: dict[str, object]) -> str:
    """``<apps-namespace>_<app>`` of the gitmoor app that owns the object, or ""."""
    return tracking_id_of(obj).split(":", 1)[0]
