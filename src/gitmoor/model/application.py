"""The Application: what to deploy from where to where, and what happened.

These dataclasses mirror the ``applications.gitmoor.io/v1alpha1`` CRD
(``gitmoor/crds/applications.yaml``), whose shape follows Argo CD's
Application so that its users feel at home. ``from_dict`` validates what the
CRD schema cannot say and raises UserInputError naming the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gitmoor.model.errors import UserInputError
from gitmoor.model.redaction import (
    Decryption,
    RedactRule,
    parse_decryption,
    parse_redactions,
)

GROUP = "gitmoor.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Application"
DEFAULT_NAMESPACE = "gitmoor"
TRACKING_ANNOTATION = "gitmoor.io/tracking-id"
#: the commit whose sync last wrote the object, and the tag when the target was a
#: tag or a semver range (the seed's app.version / gitops.revision)
REVISION_ANNOTATION = "gitmoor.io/revision"
VERSION_ANNOTATION = "gitmoor.io/version"
INSTANCE_LABEL = "app.kubernetes.io/instance"
SYNC_WAVE_ANNOTATION = "gitmoor.io/sync-wave"
SYNC_OPTIONS_ANNOTATION = "gitmoor.io/sync-options"
HOOK_ANNOTATION = "gitmoor.io/hook"
HOOK_DELETE_POLICY_ANNOTATION = "gitmoor.io/hook-delete-policy"
REPO_SECRET_LABEL = "gitmoor.io/secret-type"
#: ``normal`` or ``hard``: refresh this app now (Argo CD's ``argocd.argoproj.io/refresh``);
#: the controller acts on it and removes it
REFRESH_ANNOTATION = "gitmoor.io/refresh"
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
    #: SOPS decryption before rendering; None: the project's, if it names one
    decryption: Decryption | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "repoURL": self.repo_url,
            "path": self.path,
            "targetRevision": self.target_revision,
        }
        helm = self.helm.to_dict()
        if helm:
            out["helm"] = helm
        if self.decryption is not None:
            out["decryption"] = self.decryption.to_dict()
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
    #: ``rollbackOnDegraded.after`` in seconds: an automated sync to a new commit
    #: that leaves the app Degraded this long is rolled back to the last Healthy
    #: revision, which is then pinned (None: never)
    rollback_on_degraded_after: float | None = None


@dataclass(frozen=True, slots=True)
class Pin:
    """``spec.syncPolicy.pin``: the app holds this commit (and the source it was
    deployed from) while automation stays on; ``gitmoor app unpin`` follows the
    branch again. Argo CD's rollback fights auto-sync (argo-cd#2441): a pin is
    what makes a rollback hold without switching automation off."""

    revision: str
    #: the history entry rolled back to (0: none named)
    history_id: int = 0
    #: the source recorded in that history entry; None: the spec's
    source: dict[str, Any] | None = field(default=None, hash=False)
    #: why (``rollback``, ``rollback-on-degraded: …``), shown by ``app why``
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"revision": self.revision}
        if self.history_id:
            out["historyId"] = self.history_id
        if self.source is not None:
            out["source"] = self.source
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class Dependency:
    """One entry of ``spec.dependsOn``: an app (in the same namespace) that must be
    Synced and Healthy at its target before this one is synced automatically
    (Flux's Kustomization ``dependsOn``; Argo CD has none, argo-cd#3517)."""

    name: str


#: the smallest ``spec.syncPolicy.refreshInterval``: below it one app's refreshes
#: (an ``ls-remote`` and a comparison each) crowd out every other app's
MIN_REFRESH_INTERVAL = 1.0
#: the smallest retry backoff ``duration``/``maxDuration``: below it a failing
#: sync is retried in a hot loop against the API server
MIN_RETRY_BACKOFF = 0.1

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, where: str) -> float:
    """Seconds of a duration as Argo CD's and Flux's specs write them: Go-style
    (``"90s"``, ``"3m"``, ``"1h30m"``, ``"500ms"``) or a bare number of seconds
    (Argo CD's retry backoff: "default unit is seconds"). UserInputError naming
    ``where`` otherwise."""
    if isinstance(value, bool):
        raise UserInputError(f"{where} must be a duration such as 30s or 5m", concerns=where)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise UserInputError(
                    f"{where} {value!r} is not a duration: write it as 30s, 5m, 1h30m or 500ms",
                    concerns=where,
                ) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise UserInputError(f"{where} {value!r} must be a positive duration", concerns=where)
    return seconds


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``spec.syncPolicy.retry``, Argo CD's shape: a failed automated sync is retried
    ``limit`` times, after ``duration × factor^n`` seconds, at most ``max_duration``."""

    limit: int = 0
    duration: float = 5.0
    factor: float = 2.0
    max_duration: float = 180.0

    def delay(self, attempt: int) -> float:
        # A huge factor (1e200) overflows a float at the second attempt: once the
        # cap is reached, it is the answer.
        try:
            grown = self.duration * self.factor**attempt
        except OverflowError:
            return float(self.max_duration)
        return float(min(grown, self.max_duration))


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    automated: Automated | None = None
    sync_options: tuple[str, ...] = ()
    #: automation paused (``gitmoor app suspend``), as Flux's ``spec.suspend``;
    #: status is still refreshed
    suspended: bool = False
    #: seconds between refreshes; None: the controller's ``--interval``
    refresh_interval: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: the commit the app holds (``gitmoor app rollback --pin``); None: follow the target
    pin: Pin | None = None

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
    #: fields masked in every output, besides Secret values (the project's apply too)
    redactions: tuple[RedactRule, ...] = ()
    #: apps that must be Synced and Healthy before an automated sync of this one
    depends_on: tuple[Dependency, ...] = ()


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

    @property
    def labels(self) -> dict[str, str]:
        """The Application's own labels (what the UI and API search and filter on)."""
        labels = (self.raw.get("metadata") or {}).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

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


def _refresh_interval(value: Any) -> float | None:
    where = "spec.syncPolicy.refreshInterval"
    if value in (None, ""):
        return None
    seconds = parse_duration(value, where)
    if seconds < MIN_REFRESH_INTERVAL:
        raise UserInputError(
            f"{where} {value!r} is below the floor of {MIN_REFRESH_INTERVAL:g}s: refreshing "
            "more often would crowd out every other app; use 1s or more",
            concerns=where,
        )
    return seconds


def _retry_policy(value: Any) -> RetryPolicy:
    where = "spec.syncPolicy.retry"
    if value in (None, ""):
        return RetryPolicy()
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be an object (limit, backoff)", concerns=where)
    backoff = value.get("backoff") or {}
    if not isinstance(backoff, dict):
        raise UserInputError(
            f"{where}.backoff must be an object (duration, factor, maxDuration)", concerns=where
        )
    default = RetryPolicy()
    durations: dict[str, float] = {}
    for key, fallback in (("duration", default.duration), ("maxDuration", default.max_duration)):
        raw = backoff.get(key)
        field_where = f"{where}.backoff.{key}"
        seconds = fallback if raw in (None, "") else parse_duration(raw, field_where)
        if seconds < MIN_RETRY_BACKOFF:
            raise UserInputError(
                f"{field_where} {raw!r} is below the floor of {MIN_RETRY_BACKOFF * 1000:g}ms: "
                "a failing sync would be retried in a hot loop; use 100ms or more",
                concerns=field_where,
            )
        durations[key] = seconds
    raw_limit = value.get("limit") or 0
    if isinstance(raw_limit, bool) or not isinstance(raw_limit, int) or raw_limit < 0:
        raise UserInputError(
            f"{where}.limit {raw_limit!r} must be a whole number of 0 or more",
            concerns=f"{where}.limit",
        )
    limit = raw_limit
    try:
        factor = float(backoff.get("factor") or default.factor)
    except (TypeError, ValueError) as err:
        raise UserInputError(
            f"{where}.limit and {where}.backoff.factor must be numbers", concerns=where
        ) from err
    if factor < 1 or not math.isfinite(factor):
        raise UserInputError(
            f"{where}.backoff.factor {factor:g} must be 1 or more (the delay never shrinks)",
            concerns=f"{where}.backoff.factor",
        )
    return RetryPolicy(
        limit=limit,
        duration=durations["duration"],
        factor=factor,
        max_duration=durations["maxDuration"],
    )


def _rollback_after(auto: dict[str, Any]) -> float | None:
    where = "spec.syncPolicy.automated.rollbackOnDegraded"
    value = auto.get("rollbackOnDegraded")
    if value in (None, ""):
        return None
    if not isinstance(value, dict):
        raise UserInputError(f"{where} must be an object such as {{after: 5m}}", concerns=where)
    return parse_duration(value.get("after") or "5m", f"{where}.after")


def _pin(value: Any) -> Pin | None:
    where = "spec.syncPolicy.pin"
    if value in (None, ""):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("revision"), str):
        raise UserInputError(f"{where} must be an object with a revision", concerns=where)
    source = value.get("source")
    history_id = value.get("historyId") or 0
    return Pin(
        revision=value["revision"],
        history_id=history_id if isinstance(history_id, int) else 0,
        source=source if isinstance(source, dict) and source.get("repoURL") else None,
        reason=str(value.get("reason") or ""),
    )


def _depends_on(value: Any) -> tuple[Dependency, ...]:
    where = "spec.dependsOn"
    if value in (None, ""):
        return ()
    if not isinstance(value, list):
        raise UserInputError(f"{where} must be a list of {{name: APP}}", concerns=where)
    out: list[Dependency] = []
    for i, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise UserInputError(f"{where}[{i}].name is required", concerns=f"{where}[{i}]")
        out.append(Dependency(name))
    return tuple(out)


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
        decryption=parse_decryption(src.get("decryption"), "spec.source.decryption"),
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
            rollback_on_degraded_after=_rollback_after(auto),
        ),
        sync_options=_strs(sp.get("syncOptions"), "spec.syncPolicy.syncOptions"),
        suspended=bool(sp.get("suspended", False)),
        refresh_interval=_refresh_interval(sp.get("refreshInterval")),
        retry=_retry_policy(sp.get("retry")),
        pin=_pin(sp.get("pin")),
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
            redactions=parse_redactions(spec.get("redactions"), "spec.redactions"),
            depends_on=_depends_on(spec.get("dependsOn")),
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
