"""``gitmoor app create --from-argocd FILE``: an Argo CD Application as a gitmoor one.

The two resources share their shape on purpose (``model/application.py``), so the
conversion is mostly a copy. What it cannot copy, it never drops in silence:

- a field that would change what is deployed and that gitmoor cannot do
  (several ``sources``, a config management ``plugin``, Jsonnet, Helm charts from
  a Helm repository, kustomize options in the Application, a destination
  ``server`` that is not this cluster) is an error naming each such field, so
  the user decides what to do with it;
- a field that changes only behaviour gitmoor does otherwise (finalizers,
  ``info``, app-level sync options gitmoor does not read, a non-recursive
  directory) becomes a warning line naming it.

The README's "Migrating from Argo CD" section has the field-by-field table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitmoor.model import UserInputError
from gitmoor.model.application import API_VERSION, KIND
from gitmoor.render.yamlload import load_documents

if TYPE_CHECKING:
    from pathlib import Path

ARGOCD_API_VERSION = "argoproj.io/v1alpha1"
#: the in-cluster destination of Argo CD (its ``server`` and its default ``name``)
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
IN_CLUSTER_NAME = "in-cluster"

#: app-level sync options gitmoor acts on (the others are kept, with a warning)
HONOURED_SYNC_OPTIONS = {
    "CreateNamespace=true": "creates the destination namespace",
    "ServerSideApply=true": "gitmoor always applies server-side",
    "ApplyOutOfSyncOnly=true": "gitmoor writes only objects that differ anyway",
    "PruneLast=true": "gitmoor prunes after every wave anyway",
    "RespectIgnoreDifferences=true": "ignored fields are not taken at sync",
    "ForceConflicts=false": "fields other managers hold are not taken",
    "Delete=false": "objects are kept when the app is deleted",
    "SkipDryRunOnMissingResource=true": "custom resources of kinds not served yet are compared",
}
_HELM_KEYS = {"releaseName", "valueFiles", "values", "valuesObject", "version"}
_SOURCE_KEYS = {"repoURL", "path", "targetRevision", "helm", "kustomize", "directory"}


@dataclass(frozen=True, slots=True)
class Converted:
    """The gitmoor Application manifest, and a line for each thing not carried over."""

    manifest: dict[str, Any]
    warnings: tuple[str, ...]


def load_argocd_file(path: Path) -> dict[str, Any]:
    """The one Argo CD Application in a YAML file (other documents, such as an
    AppProject next to it, are passed over)."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read {path}: {e}", concerns=where) from None
    apps = [
        d.data
        for d in load_documents(text, where=where)
        if isinstance(d.data, dict) and d.data.get("kind") == "Application"
    ]
    if len(apps) != 1:
        raise UserInputError(
            f"{path} holds {len(apps)} Application documents; give a file with exactly one",
            concerns=where,
        )
    app: dict[str, Any] = apps[0]
    return app


def _dict(value: Any, field: str, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{field} must be a mapping")
        return {}
    return value


def _helm(
    helm: dict[str, Any], problems: list[str], warnings: list[str], where: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(set(helm) - _HELM_KEYS):
        problems.append(f"{where}.helm.{key} is not supported by gitmoor")
    if helm.get("version") not in (None, "", "v3"):
        problems.append(f"{where}.helm.version {helm['version']!r}: gitmoor renders with Helm 3")
    if helm.get("releaseName"):
        out["releaseName"] = str(helm["releaseName"])
    files = helm.get("valueFiles")
    if files:
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            problems.append(f"{where}.helm.valueFiles must be a list of strings")
        elif any(f.startswith("$") for f in files):
            problems.append(
                f"{where}.helm.valueFiles: value files from another source ($ref) need "
                "several sources, which gitmoor does not support"
            )
        else:
            out["valueFiles"] = list(files)
    values: dict[str, Any] = {}
    raw = helm.get("values")
    if isinstance(raw, str) and raw.strip():
        # Argo CD's ``values`` is a YAML string (a block scalar in most manifests).
        docs = load_documents(raw, where=f"{where}.helm.values")
        parsed = docs[0].data if len(docs) == 1 else None
        if not isinstance(parsed, dict):
            problems.append(f"{where}.helm.values is not one YAML mapping")
        else:
            values = parsed
    elif isinstance(raw, dict):
        values = raw
    elif raw not in (None, ""):
        problems.append(f"{where}.helm.values must be a YAML string or a mapping")
    obj = helm.get("valuesObject")
    if obj is not None:
        if not isinstance(obj, dict):
            problems.append(f"{where}.helm.valuesObject must be a mapping")
        else:
            if values:
                # Argo CD: valuesObject takes precedence over values; the two are not merged.
                warnings.append(
                    f"{where}.helm: both values and valuesObject are set; valuesObject is "
                    "used, as in Argo CD"
                )
            values = obj
    if values:
        out["values"] = values
    return out


def _source(
    src: dict[str, Any], problems: list[str], warnings: list[str], where: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not src.get("repoURL"):
        problems.append(f"{where}.repoURL is required")
    else:
        out["repoURL"] = str(src["repoURL"])
    if src.get("chart"):
        problems.append(
            f"{where}.chart: charts from a Helm repository are not supported; "
            "gitmoor renders charts kept in Git (use path)"
        )
    if src.get("plugin") is not None:
        problems.append(f"{where}.plugin: config management plugins are not supported")
    if src.get("ref"):
        problems.append(f"{where}.ref: sources referenced by others need several sources")
    for key in sorted(set(src) - _SOURCE_KEYS - {"chart", "plugin", "ref"}):
        problems.append(f"{where}.{key} is not supported by gitmoor")
    out["path"] = str(src.get("path") or ".")
    out["targetRevision"] = str(src.get("targetRevision") or "HEAD")
    helm = _helm(_dict(src.get("helm"), f"{where}.helm", problems), problems, warnings, where)
    if helm:
        out["helm"] = helm
    kustomize = _dict(src.get("kustomize"), f"{where}.kustomize", problems)
    for key in sorted(kustomize):
        if key == "version":
            warnings.append(f"{where}.kustomize.version: gitmoor uses kubectl's kustomize")
        else:
            problems.append(
                f"{where}.kustomize.{key} is not supported: write it into the "
                "kustomization.yaml instead"
            )
    directory = _dict(src.get("directory"), f"{where}.directory", problems)
    if directory.get("jsonnet"):
        problems.append(f"{where}.directory.jsonnet: Jsonnet is not supported")
    for key in ("include", "exclude"):
        if directory.get(key):
            problems.append(
                f"{where}.directory.{key}: file filters are not supported; gitmoor reads "
                "every .yaml, .yml and .json file below the path"
            )
    if "directory" in src and not directory.get("recurse"):
        warnings.append(
            f"{where}.directory.recurse is false: Argo CD reads only the top directory, "
            "gitmoor reads every file below the path"
        )
    return out


def _destination(dst: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not dst.get("namespace"):
        problems.append(
            "spec.destination.namespace is required by gitmoor (Argo CD allows none and "
            "uses each manifest's own)"
        )
    else:
        out["namespace"] = str(dst["namespace"])
    server, name = dst.get("server"), dst.get("name")
    if server and server != IN_CLUSTER_SERVER:
        problems.append(
            f"spec.destination.server {server!r}: register that cluster with "
            "`gitmoor cluster add` and name it in destination.name"
        )
    if name and name != IN_CLUSTER_NAME:
        out["name"] = str(name)
    return out


def _sync_policy(
    policy: dict[str, Any], problems: list[str], warnings: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    auto = policy.get("automated")
    if isinstance(auto, dict) and auto.get("enabled", True) is not False:
        out["automated"] = {
            "prune": bool(auto.get("prune", False)),
            "selfHeal": bool(auto.get("selfHeal", False)),
            "allowEmpty": bool(auto.get("allowEmpty", False)),
        }
    elif auto is not None and not isinstance(auto, dict):
        problems.append("spec.syncPolicy.automated must be a mapping")
    options = policy.get("syncOptions") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        problems.append("spec.syncPolicy.syncOptions must be a list of strings")
        options = []
    for option in options:
        if option.strip() not in HONOURED_SYNC_OPTIONS:
            warnings.append(
                f"spec.syncPolicy.syncOptions {option!r} is kept but gitmoor does not act on it "
                "at the app level"
            )
    if options:
        out["syncOptions"] = [o.strip() for o in options]
    retry = policy.get("retry")
    if isinstance(retry, dict):
        out["retry"] = retry  # the same shape: limit, backoff {duration, factor, maxDuration}
    if policy.get("managedNamespaceMetadata"):
        warnings.append(
            "spec.syncPolicy.managedNamespaceMetadata is not supported: the namespace "
            "CreateNamespace makes carries no extra labels or annotations"
        )
    for key in sorted(
        set(policy) - {"automated", "syncOptions", "retry", "managedNamespaceMetadata"}
    ):
        warnings.append(f"spec.syncPolicy.{key} is not supported; dropped")
    return out


def _ignore_differences(items: Any, problems: list[str]) -> list[dict[str, Any]]:
    if not items:
        return []
    if not isinstance(items, list):
        problems.append("spec.ignoreDifferences must be a list")
        return []
    out = []
    for i, item in enumerate(items):
        where = f"spec.ignoreDifferences[{i}]"
        if not isinstance(item, dict) or not item.get("kind"):
            problems.append(f"{where} needs a kind")
            continue
        for key in sorted(set(item) - {"group", "kind", "name", "namespace", "jsonPointers"}):
            problems.append(
                f"{where}.{key} is not supported (gitmoor ignores differences by jsonPointers)"
            )
        out.append(
            {
                k: item[k]
                for k in ("group", "kind", "name", "namespace", "jsonPointers")
                if k in item
            }
        )
    return out


def convert_argocd(doc: Any, *, apps_namespace: str, name: str | None = None) -> Converted:
    """The gitmoor Application for Argo CD Application ``doc`` (a parsed manifest).

    ``name`` overrides ``metadata.name``; the app lives in ``apps_namespace``
    (Argo CD's is usually ``argocd``). Raises ``UserInputError`` naming every field
    that cannot be carried over, all at once."""
    if not isinstance(doc, dict):
        raise UserInputError("an Argo CD Application must be a YAML mapping")
    if doc.get("apiVersion") != ARGOCD_API_VERSION or doc.get("kind") != "Application":
        raise UserInputError(
            f"not an Argo CD Application: apiVersion {doc.get('apiVersion')!r}, kind "
            f"{doc.get('kind')!r} (expected {ARGOCD_API_VERSION}, Application)"
        )
    problems: list[str] = []
    warnings: list[str] = []
    meta = _dict(doc.get("metadata"), "metadata", problems)
    app_name = name or str(meta.get("name") or "")
    if not app_name:
        problems.append("metadata.name is required (or give NAME)")
    spec = _dict(doc.get("spec"), "spec", problems)

    sources = spec.get("sources")
    source = spec.get("source")
    if sources:
        if not isinstance(sources, list) or len(sources) != 1 or source:
            problems.append(
                "spec.sources: several sources are not supported; gitmoor deploys one "
                "path of one repository"
            )
        else:
            source = sources[0]
    if not source:
        problems.append("spec.source is required")
    out_spec: dict[str, Any] = {
        "project": str(spec.get("project") or "default"),
        "source": _source(
            _dict(source, "spec.source", problems), problems, warnings, "spec.source"
        ),
        "destination": _destination(
            _dict(spec.get("destination"), "spec.destination", problems), problems
        ),
    }
    policy = _sync_policy(
        _dict(spec.get("syncPolicy"), "spec.syncPolicy", problems), problems, warnings
    )
    if policy:
        out_spec["syncPolicy"] = policy
    ignores = _ignore_differences(spec.get("ignoreDifferences"), problems)
    if ignores:
        out_spec["ignoreDifferences"] = ignores
    if spec.get("revisionHistoryLimit") is not None:
        out_spec["revisionHistoryLimit"] = spec["revisionHistoryLimit"]
    if spec.get("info"):
        warnings.append("spec.info is not supported; dropped")
    known = {
        "project",
        "source",
        "sources",
        "destination",
        "syncPolicy",
        "ignoreDifferences",
        "revisionHistoryLimit",
        "info",
    }
    for key in sorted(set(spec) - known):
        problems.append(f"spec.{key} is not supported by gitmoor")
    if problems:
        raise UserInputError("cannot convert this Argo CD Application: " + "; ".join(problems))

    out_meta: dict[str, Any] = {"name": app_name, "namespace": apps_namespace}
    for key in ("labels", "annotations"):
        if isinstance(meta.get(key), dict) and meta[key]:
            out_meta[key] = dict(meta[key])
    if meta.get("namespace") and meta["namespace"] != apps_namespace:
        warnings.append(
            f"metadata.namespace {meta['namespace']!r}: the app is created in {apps_namespace!r}"
        )
    if meta.get("finalizers"):
        warnings.append(
            "metadata.finalizers dropped: `gitmoor app delete` deletes the app's objects "
            "unless --cascade=false"
        )
    manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": out_meta, "spec": out_spec}
    return Converted(manifest, tuple(warnings))
