"""The Application: what to deploy from where to where, and what happened.

These dataclasses mirror the ``applications.gitmoor.io/v1alpha1`` CRD
(``gitmoor/crds/applications.yaml``), whose shape follows Argo CD's
Application so that its users feel at home. ``from_dict`` validates what the
CRD schema cannot say and raises UserInputError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitmoor.model.errors import UserInputError

GROUP = "gitmoor.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Application"
DEFAULT_NAMESPACE = "gitmoor"
TRACKING_ANNOTATION = "gitmoor.io/tracking-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
SYNC_WAVE_ANNOTATION = "gitmoor.io/sync-wave"
SYNC_OPTIONS_ANNOTATION = "gitmoor.io/sync-options"
HOOK_ANNOTATION = "gitmoor.io/hook"
HOOK_DELETE_POLICY_ANNOTATION = "gitmoor.io/hook-delete-policy"
REPO_SECRET_LABEL = "gitmoor.io/secret-type"
HISTORY_LIMIT_DEFAULT = 10


@dataclass(frozen=True, slots=True)
class HelmSource:
    release_name: str = ""
    value_files: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.release_name:
            out["releaseName"] = self.release_name
        if self.value_files:
            out["valueFiles"] = list(self.value_files)
        if self.values:
            out["values"] = self.values
        return out


@dataclass(frozen=True, slots=True)
class AppSource:
    repo_url: str
    path: str = "."
    target_revision: str = "HEAD"
    helm: HelmSource = field(default_factory=HelmSource)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "repoURL": self.repo_url,
            "path": self.path,
            "targetRevision": self.target_revision,
        }
        helm = self.helm.to_dict()
        if helm:
            out["helm"] = helm
        return out


@dataclass(frozen=True, slots=True)
class Destination:
    namespace: str
    name: str = ""  # a registered cluster; "" means the cluster gitmoor runs against


@dataclass(frozen=True, slots=True)
class Automated:
    prune: bool = False
    self_heal: bool = False
    allow_empty: bool = False


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    automated: Automated | None = None
    sync_options: tuple[str, ...] = ()
    #: automation paused (``gitmoor app suspend``), as Flux's ``spec.suspend``;
    #: status is still refreshed
    suspended: bool = False

    def option(self, name: str) -> bool:
        """True when ``Name=true`` is among the sync options (Argo CD's syntax)."""
        return f"{name}=true" in self.sync_options


@dataclass(frozen=True, slots=True)
class IgnoreDifference:
    group: str
    kind: str
    name: str = ""
    namespace: str = ""
    json_pointers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplicationSpec:
    source: AppSource
    destination: Destination
    project: str = "default"
    sync_policy: SyncPolicy = field(default_factory=SyncPolicy)
    ignore_differences: tuple[IgnoreDifference, ...] = ()
    history_limit: int = HISTORY_LIMIT_DEFAULT


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    namespace: str
    spec: ApplicationSpec
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def status(self) -> dict[str, Any]:
        st = self.raw.get("status") or {}
        return st if isinstance(st, dict) else {}

    @property
    def operation(self) -> dict[str, Any] | None:
        op = self.raw.get("operation")
        return op if isinstance(op, dict) else None

    def tracking_id(self, group: str, kind: str, namespace: str, name: str) -> str:
        """``<app-namespace>_<app>:<group>/<kind>:<namespace>/<name>``, like Argo CD's
        annotation tracking (``<app>:<group>/<kind>:<ns>/<name>``) with the app's
        namespace in front, since Applications live in more than one namespace."""
        return f"{self.namespace}_{self.name}:{group}/{kind}:{namespace}/{name}"

    @property
    def tracking_prefix(self) -> str:
        return f"{self.namespace}_{self.name}:"


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    value = d.get(key)
    if value in (None, ""):
        raise UserInputError(f"{where}.{key} is required", concerns=where)
    return value


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserInputError(f"{where} must be a list of strings", concerns=where)
    return tuple(value)


def parse_application(obj: dict[str, Any]) -> Application:
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    where = f"Application {namespace}/{name}"
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise UserInputError("spec is required", concerns=where)
    src = _req(spec, "source", "spec")
    helm = src.get("helm") or {}
    source = AppSource(
        repo_url=str(_req(src, "repoURL", "spec.source")),
        path=str(src.get("path") or "."),
        target_revision=str(src.get("targetRevision") or "HEAD"),
        helm=HelmSource(
            release_name=str(helm.get("releaseName") or ""),
            value_files=_strs(helm.get("valueFiles"), "spec.source.helm.valueFiles"),
            values=dict(helm.get("values") or {}),
        ),
    )
    dst = _req(spec, "destination", "spec")
    destination = Destination(
        namespace=str(_req(dst, "namespace", "spec.destination")), name=str(dst.get("name") or "")
    )
    sp = spec.get("syncPolicy") or {}
    auto = sp.get("automated")
    policy = SyncPolicy(
        automated=None
        if auto is None
        else Automated(
            prune=bool(auto.get("prune", False)),
            self_heal=bool(auto.get("selfHeal", False)),
            allow_empty=bool(auto.get("allowEmpty", False)),
        ),
        sync_options=_strs(sp.get("syncOptions"), "spec.syncPolicy.syncOptions"),
        suspended=bool(sp.get("suspended", False)),
    )
    ignores = tuple(
        IgnoreDifference(
            group=str(i.get("group") or ""),
            kind=str(_req(i, "kind", "spec.ignoreDifferences[]")),
            name=str(i.get("name") or ""),
            namespace=str(i.get("namespace") or ""),
            json_pointers=_strs(i.get("jsonPointers"), "spec.ignoreDifferences[].jsonPointers"),
        )
        for i in spec.get("ignoreDifferences") or []
    )
    return Application(
        name=name,
        namespace=namespace,
        spec=ApplicationSpec(
            source=source,
            destination=destination,
            project=str(spec.get("project") or "default"),
            sync_policy=policy,
            ignore_differences=ignores,
            history_limit=int(spec.get("revisionHistoryLimit") or HISTORY_LIMIT_DEFAULT),
        ),
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        generation=int(meta.get("generation") or 0),
        raw=obj,
    )


def application_manifest(
    name: str,
    namespace: str,
    source: AppSource,
    destination: Destination,
    *,
    project: str = "default",
    automated: Automated | None = None,
    sync_options: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Application object a user (or ``gitmoor app create``) writes."""
    spec: dict[str, Any] = {
        "project": project,
        "source": source.to_dict(),
        "destination": {"namespace": destination.namespace}
        | ({"name": destination.name} if destination.name else {}),
    }
    policy: dict[str, Any] = {}
    if automated is not None:
        policy["automated"] = {
            "prune": automated.prune,
            "selfHeal": automated.self_heal,
            "allowEmpty": automated.allow_empty,
        }
    if sync_options:
        policy["syncOptions"] = list(sync_options)
    if policy:
        spec["syncPolicy"] = policy
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
