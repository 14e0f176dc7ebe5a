"""Destination clusters kept as Kubernetes Secrets, the way Argo CD keeps them.

A Secret labelled ``gitmoor.io/secret-type: cluster`` in gitmoor's namespace
registers one cluster, in the shape of Argo CD's declarative cluster Secrets
(``argocd.argoproj.io/secret-type: cluster``)::

    stringData:
      name: prod                       # what spec.destination.name refers to
      server: https://prod.example:6443
      config: |                        # Argo CD's ClusterConfig, as JSON
        {"bearerToken": "...",
         "tlsClientConfig": {"caData": "<base64 PEM>", "certData": "<base64 PEM>",
                             "keyData": "<base64 PEM>", "insecure": false}}

The same shape means a Secret written for Argo CD works here once relabelled,
and users already know where the credentials live and how RBAC guards them.
Like Argo CD, a cluster is found by the ``name`` field, not by the Secret's name,
so hand-written Secrets may be named freely. Only what ``kube.ClusterConfig``
can express is accepted: exec and cloud auth plugins (``execProviderConfig``,
``awsAuthConfig``), basic auth, proxies and ``serverName`` are refused by name
rather than silently ignored, so a cluster never half-works.

``spec.destination.name`` of "" or ``in-cluster`` is the cluster gitmoor itself
runs against (Argo CD's ``in-cluster``); that name cannot be registered.

Credentials never reach a log line, an error message or ``list_clusters``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitmoor.kube import ClusterConfig, KubeClient
from gitmoor.model import ObjectRef, UserInputError
from gitmoor.model.application import DEFAULT_NAMESPACE, REPO_SECRET_LABEL

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger("gitmoor.settings.clusters")

#: the label (shared with repository Secrets) and its value for cluster Secrets
SECRET_TYPE_LABEL = REPO_SECRET_LABEL
CLUSTER_SECRET_TYPE = "cluster"
#: Argo CD's name for the cluster it runs in; here "" means the same
IN_CLUSTER = "in-cluster"

# Argo CD ClusterConfig fields that select a way of connecting gitmoor does not
# implement; refusing them beats connecting without the auth the user asked for.
_UNSUPPORTED_CONFIG = {
    "execProviderConfig": "exec plugins",
    "awsAuthConfig": "AWS IAM authentication",
    "username": "basic authentication",
    "password": "basic authentication",
    "proxyUrl": "proxies",
}
_UNSUPPORTED_TLS = {"serverName": "a TLS server name override"}


@dataclass(frozen=True, slots=True)
class ClusterEntry:
    """A registered cluster as listed: never its credentials."""

    name: str
    server: str
    secret: str


# ---------------------------------------------------------------- Secret <-> ClusterConfig


def is_in_cluster(name: str) -> bool:
    """True for the names that mean "the cluster gitmoor runs against"."""
    return name in ("", IN_CLUSTER)


def check_cluster_name(name: str) -> None:
    """Refuse names that cannot be registered: "" and ``in-cluster`` always
    mean the home cluster, and a name with spaces around it would never match
    a ``spec.destination.name`` as written."""
    if not name.strip():
        raise UserInputError("a cluster name must not be empty", concerns="cluster name")
    if name == IN_CLUSTER:
        raise UserInputError(
            f"{IN_CLUSTER!r} is the cluster gitmoor runs against and cannot be registered; "
            "choose another name",
            concerns=f"cluster {name}",
        )
    if name != name.strip() or any(not c.isprintable() for c in name):
        raise UserInputError(
            f"cluster name {name!r} has surrounding spaces or control characters",
            concerns="cluster name",
        )


def secret_name(name: str) -> str:
    """``cluster-<readable part>-<hash of the exact name>``: a valid object name
    for any cluster name, readable in ``kubectl get secrets``, and distinct for
    names that differ only in case or punctuation."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].rstrip("-")
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"cluster-{slug}-{digest}" if slug else f"cluster-{digest}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def config_json(config: ClusterConfig) -> str:
    """Argo CD's ``config`` field: PEM blocks base64-encoded (Go's JSON encoding
    of ``[]byte``, which is how Argo CD writes caData/certData/keyData)."""
    tls: dict[str, Any] = {"insecure": config.insecure_skip_tls_verify}
    if config.ca_pem:
        tls["caData"] = _b64(config.ca_pem)
    if config.client_cert_pem:
        tls["certData"] = _b64(config.client_cert_pem)
    if config.client_key_pem:
        tls["keyData"] = _b64(config.client_key_pem)
    doc: dict[str, Any] = {"tlsClientConfig": tls}
    if config.token:
        doc["bearerToken"] = config.token
    return json.dumps(doc, separators=(",", ":"))


def cluster_secret(
    name: str,
    config: ClusterConfig,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    secret: str | None = None,
) -> dict[str, Any]:
    """The Secret that registers ``config`` as cluster ``name``."""
    check_cluster_name(name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret or secret_name(name),
            "namespace": namespace,
            "labels": {SECRET_TYPE_LABEL: CLUSTER_SECRET_TYPE},
        },
        "stringData": {"name": name, "server": config.server, "config": config_json(config)},
    }


def _where(secret: Mapping[str, Any]) -> str:
    meta = secret.get("metadata") or {}
    return f"Secret {meta.get('namespace', '')}/{meta.get('name', '')}"


def secret_fields(secret: Mapping[str, Any]) -> dict[str, str]:
    """The Secret's string fields: ``data`` decoded, overlaid by ``stringData``
    (a manifest not yet stored has only the latter; the API server merges them
    the same way)."""
    out: dict[str, str] = {}
    data = secret.get("data") or {}
    if isinstance(data, dict):
        for key, value in data.items():
            try:
                out[key] = base64.b64decode(str(value), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as e:
                raise UserInputError(
                    f"data.{key} is not base64-encoded UTF-8", concerns=_where(secret)
                ) from e
    string_data = secret.get("stringData") or {}
    if isinstance(string_data, dict):
        out.update({k: str(v) for k, v in string_data.items()})
    return out


def _pem(tls: Mapping[str, Any], key: str, where: str) -> bytes | None:
    value = tls.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise UserInputError(f"config.tlsClientConfig.{key} must be a string", concerns=where)
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        # Never echo the value: it may be a private key.
        raise UserInputError(
            f"config.tlsClientConfig.{key} is not base64 (Argo CD's encoding of PEM data)",
            concerns=where,
        ) from e


def config_from_secret(secret: Mapping[str, Any]) -> ClusterConfig:
    """The connection settings a cluster Secret holds, validated.

    Errors name the Secret and the field, never a value: the values are credentials.
    """
    where = _where(secret)
    fields = secret_fields(secret)
    name, server = fields.get("name", ""), fields.get("server", "").rstrip("/")
    if not name:
        raise UserInputError("the cluster Secret has no name", concerns=where)
    if not re.match(r"^https?://[^/\s]+", server):
        raise UserInputError(
            f"cluster {name}: server must be an http(s) URL of the API server, not {server!r}",
            concerns=where,
        )
    try:
        doc = json.loads(fields.get("config") or "{}")
    except json.JSONDecodeError as e:
        raise UserInputError(
            f"cluster {name}: config is not JSON (line {e.lineno}, column {e.colno})",
            concerns=where,
        ) from None  # the message of a JSONDecodeError quotes the document
    if not isinstance(doc, dict):
        raise UserInputError(f"cluster {name}: config must be a JSON object", concerns=where)
    tls = doc.get("tlsClientConfig") or {}
    if not isinstance(tls, dict):
        raise UserInputError(
            f"cluster {name}: config.tlsClientConfig must be an object", concerns=where
        )
    for key, what in (*_UNSUPPORTED_CONFIG.items(), *_UNSUPPORTED_TLS.items()):
        if doc.get(key) or tls.get(key):
            raise UserInputError(
                f"cluster {name}: config.{key} asks for {what}, which gitmoor does not support; "
                "use a bearer token or a client certificate",
                concerns=where,
            )
    token = doc.get("bearerToken")
    if token is not None and not isinstance(token, str):
        raise UserInputError(f"cluster {name}: config.bearerToken must be a string", concerns=where)
    insecure = tls.get("insecure", False)
    if not isinstance(insecure, bool):
        raise UserInputError(
            f"cluster {name}: config.tlsClientConfig.insecure must be true or false",
            concerns=where,
        )
    return ClusterConfig(
        server=server,
        ca_pem=_pem(tls, "caData", where),
        client_cert_pem=_pem(tls, "certData", where),
        client_key_pem=_pem(tls, "keyData", where),
        token=token or None,
        insecure_skip_tls_verify=insecure,
        name=name,
    )


# ---------------------------------------------------------------- the registry's Secrets


def _secret_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "Secret", namespace, name)


async def _cluster_secrets(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    ar = await kube.resource("", "v1", "Secret")
    selector = f"{SECRET_TYPE_LABEL}={CLUSTER_SECRET_TYPE}"
    return (await kube.list(ar, namespace, label_selector=selector)).items


def _name_of(secret: Mapping[str, Any]) -> str:
    try:
        return secret_fields(secret).get("name", "")
    except UserInputError:
        return ""


def _secret_meta(secret: Mapping[str, Any], key: str) -> str:
    meta = secret.get("metadata") or {}
    return str(meta.get(key, "")) if isinstance(meta, dict) else ""


async def _find(kube: KubeClient, name: str, namespace: str) -> dict[str, Any] | None:
    """The Secret registering ``name``; two of them is an error to fix, not a
    coin to toss, since either could be the stale one."""
    found = [s for s in await _cluster_secrets(kube, namespace) if _name_of(s) == name]
    if len(found) > 1:
        names = ", ".join(sorted(_secret_meta(s, "name") for s in found))
        raise UserInputError(
            f"cluster {name} is registered by more than one Secret ({names}); delete all but one",
            concerns=f"cluster {name}",
        )
    return found[0] if found else None


class ClusterNotRegisteredError(UserInputError):
    """No Secret registers cluster ``cluster`` (any more). Its own type because a
    deletion reads it as "the cluster is gone": Argo CD deletes an app whose
    destination cluster no longer exists without touching its objects, which
    cannot be reached; any other error keeps the app."""

    def __init__(self, message: str, *, cluster: str) -> None:
        super().__init__(message, concerns=f"cluster {cluster}")
        self.cluster = cluster


def _not_registered(name: str, namespace: str) -> ClusterNotRegisteredError:
    return ClusterNotRegisteredError(
        f"cluster {name} is not registered (no Secret labelled "
        f"{SECRET_TYPE_LABEL}={CLUSTER_SECRET_TYPE} with that name in namespace {namespace}); "
        f"add it with `gitmoor cluster add {name}`",
        cluster=name,
    )


async def add_cluster(
    kube: KubeClient, name: str, config: ClusterConfig, *, namespace: str = DEFAULT_NAMESPACE
) -> str:
    """Write (or replace) the Secret registering ``config`` as cluster ``name``;
    returns the Secret's name. Re-adding a name rotates its credentials in
    place, in whichever Secret already holds it (a hand-written one included)."""
    check_cluster_name(name)
    existing = await _find(kube, name, namespace)
    secret = _secret_meta(existing, "name") if existing else secret_name(name)
    await kube.apply(cluster_secret(name, config, namespace=namespace, secret=secret), force=True)
    log.info("event=cluster_added name=%s server=%s secret=%s", name, config.server, secret)
    return secret


async def list_clusters(kube: KubeClient, namespace: str = DEFAULT_NAMESPACE) -> list[ClusterEntry]:
    """Every registered cluster: name, server and Secret, never the ``config``."""
    entries = []
    for s in await _cluster_secrets(kube, namespace):
        try:
            fields = secret_fields(s)
        except UserInputError:
            fields = {}
        entries.append(
            ClusterEntry(
                name=fields.get("name", ""),
                server=fields.get("server", ""),
                secret=_secret_meta(s, "name"),
            )
        )
    return sorted(entries, key=lambda e: (e.name, e.secret))


async def remove_cluster(kube: KubeClient, name: str, namespace: str = DEFAULT_NAMESPACE) -> bool:
    """Delete the Secret registering ``name``; False when none does."""
    if is_in_cluster(name):
        return False
    found = await _find(kube, name, namespace)
    if found is None:
        return False
    return await kube.delete(_secret_ref(namespace, _secret_meta(found, "name")))


async def load_cluster_config(
    kube: KubeClient, name: str, namespace: str = DEFAULT_NAMESPACE
) -> ClusterConfig:
    """The connection settings of registered cluster ``name``."""
    found = await _find(kube, name, namespace)
    if found is None:
        raise _not_registered(name, namespace)
    return config_from_secret(found)


async def verify_cluster(config: ClusterConfig) -> None:
    """Reach the cluster's API with ``config`` (discovery needs an authenticated
    user under default RBAC), so that ``cluster add`` catches a wrong context
    or an unreachable server before the controller does."""
    async with KubeClient(config, timeout=15.0) as kc:
        await kc.resource("", "v1", "Namespace")


# ---------------------------------------------------------------- the clients


@dataclass
class _Cached:
    client: KubeClient
    secret: str
    resource_version: str
    config: ClusterConfig
    checked_at: float


class ClusterRegistry:
    """One KubeClient per destination cluster, created on first use and reused
    (one HTTP/2 connection each, as ARCHITECTURE.md's figures ask).

    The Secret is re-read at most every ``recheck_after`` seconds (one GET by
    name); a new resourceVersion with new settings replaces the client, so
    credentials rotate without a restart. The replaced client is closed
    ``retire_after`` seconds later rather than at once, so that requests and
    watches already in flight on it end on their own instead of failing midway.
    """

    def __init__(
        self,
        home: KubeClient,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        recheck_after: float = 5.0,
        retire_after: float = 60.0,
    ) -> None:
        self.home = home
        self.namespace = namespace
        self.recheck_after = recheck_after
        self.retire_after = retire_after
        self._cached: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._retired: set[KubeClient] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._closed = False

    async def client_for(self, name: str) -> KubeClient:
        """The client of cluster ``name``: ``home`` for "" and ``in-cluster``;
        raises UserInputError naming the cluster when it is not registered."""
        if is_in_cluster(name):
            return self.home
        if self._closed:
            raise RuntimeError("ClusterRegistry is closed")
        cached = self._cached.get(name)
        if cached is not None and time.monotonic() - cached.checked_at < self.recheck_after:
            return cached.client
        async with self._locks.setdefault(name, asyncio.Lock()):
            return await self._refresh(name)

    async def _refresh(self, name: str) -> KubeClient:
        cached = self._cached.get(name)
        now = time.monotonic()
        if cached is not None and now - cached.checked_at < self.recheck_after:
            return cached.client  # another task refreshed it while this one waited
        secret: dict[str, Any] | None = None
        if cached is not None:
            secret = await self.home.get(_secret_ref(self.namespace, cached.secret))
            if secret is not None and _name_of(secret) != name:
                secret = None  # the Secret now registers another name
        if secret is None:
            secret = await _find(self.home, name, self.namespace)
        if secret is None:
            self._drop(name)
            raise _not_registered(name, self.namespace)
        rv = _secret_meta(secret, "resourceVersion")
        if cached is not None and rv == cached.resource_version:
            cached.checked_at = now
            return cached.client
        config = config_from_secret(secret)
        if cached is not None and config == cached.config:
            # Relabelled or annotated, same settings: keep the connection.
            cached.resource_version, cached.secret, cached.checked_at = (
                rv,
                _secret_meta(secret, "name"),
                now,
            )
            return cached.client
        client = KubeClient(config, user_agent=f"gitmoor (cluster {name})")
        self._drop(name)
        self._cached[name] = _Cached(client, _secret_meta(secret, "name"), rv, config, now)
        log.info(
            "event=cluster_client name=%s server=%s reason=%s",
            name,
            config.server,
            "created" if cached is None else "credentials_changed",
        )
        return client

    def _drop(self, name: str) -> None:
        cached = self._cached.pop(name, None)
        if cached is None:
            return
        self._retired.add(cached.client)
        task = asyncio.get_running_loop().create_task(self._close_later(cached.client))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close_later(self, client: KubeClient) -> None:
        await asyncio.sleep(self.retire_after)
        self._retired.discard(client)
        await client.aclose()

    def clients(self) -> dict[str, KubeClient]:
        """Every client in use by cluster name, the home one as ``in-cluster``
        (for metrics: each client counts its own requests)."""
        return {IN_CLUSTER: self.home} | {n: c.client for n, c in self._cached.items()}

    async def aclose(self) -> None:
        """Close every client this registry created, retired ones included; not ``home``."""
        self._closed = True
        for task in list(self._closers):
            task.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        clients = [c.client for c in self._cached.values()] + list(self._retired)
        self._cached.clear()
        self._retired.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

    async def __aenter__(self) -> ClusterRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
