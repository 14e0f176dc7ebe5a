"""One server process's shared parts.

Applications are read from one watch (a :class:`~gitmoor.kube.cache.ClusterCache`
of the Application kind, the controller's own cache type): ``list`` and ``get``
make no API request, and every SSE stream is fed from it, so 50 browser tabs cost
one watch, not 50. The settings ConfigMaps and Secret (``gitmoor-cm``,
``gitmoor-rbac-cm``, ``gitmoor-secret``; label ``app.kubernetes.io/part-of=gitmoor``,
as Argo CD requires ``part-of: argocd`` on its own) come through a second and
third watch, so a policy change is in force within a second, with no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitmoor.engine import DryRunCache, Engine
from gitmoor.engine.store import app_ref
from gitmoor.kube.cache import ClusterCache, Key
from gitmoor.model import JSONDict, ObjectRef, UserInputError
from gitmoor.model.application import Application, parse_application
from gitmoor.server.api.schemas import AppSummary, summary
from gitmoor.server.audit import Audit
from gitmoor.server.auth.accounts import AccountStore
from gitmoor.server.auth.oidc import OidcProvider, reload_provider
from gitmoor.server.auth.ratelimit import LoginLimiter
from gitmoor.server.auth.sessions import SessionStore
from gitmoor.server.rbac import RBAC_CONFIGMAP, Rbac, policy_from_configmap
from gitmoor.settings.clusters import ClusterRegistry

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gitmoor.kube import KubeClient

log = logging.getLogger("gitmoor.server")

#: the label every settings ConfigMap/Secret of gitmoor carries
PART_OF = "app.kubernetes.io/part-of=gitmoor"
SETTINGS_CONFIGMAP = "gitmoor-cm"
SETTINGS_SECRET = "gitmoor-secret"


class Subscription:
    """One SSE client's queue of changed app names, coalesced: a burst of writes to
    one app is one message, and a slow client cannot make the server hold more than
    one pending entry per app."""

    def __init__(self) -> None:
        self.pending: dict[str, bool] = {}  # name -> deleted
        self.wake = asyncio.Event()

    def push(self, name: str, deleted: bool) -> None:
        self.pending[name] = deleted
        self.wake.set()

    def take(self) -> dict[str, bool]:
        out, self.pending = self.pending, {}
        self.wake.clear()
        return out


class AppIndex:
    """The Applications of the apps namespace, from one watch, parsed once per change."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.namespace = namespace
        self.cache = ClusterCache(
            kube, label_selector="", namespace=namespace, on_change=self._changed
        )
        self._parsed: dict[str, tuple[str, Application | None]] = {}
        self._summaries: dict[str, tuple[str, AppSummary]] = {}
        #: the summary as compact JSON, for SSE: one encoding per change, not per tab
        self._summary_json: dict[str, tuple[str, str]] = {}
        self._subs: set[Subscription] = set()

    async def start(self) -> bool:
        return await self.cache.ensure(app_ref("-", self.namespace))

    @property
    def ready(self) -> bool:
        return self.cache.synced(app_ref("-", self.namespace).group, "Application")

    def _changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        name = key[3]
        self._parsed.pop(name, None)
        self._summaries.pop(name, None)
        self._summary_json.pop(name, None)
        for sub in self._subs:
            sub.push(name, deleted)

    def _parse(self, obj: JSONDict) -> Application | None:
        meta = obj.get("metadata") or {}
        name, rv = str(meta.get("name", "")), str(meta.get("resourceVersion", ""))
        cached = self._parsed.get(name)
        if cached is not None and cached[0] == rv:
            return cached[1]
        try:
            app: Application | None = parse_application(obj)
        except UserInputError as e:
            log.warning("event=app_invalid app=%s/%s error=%s", self.namespace, name, e)
            app = None
        self._parsed[name] = (rv, app)
        return app

    def all(self) -> list[Application]:
        ref = app_ref("-", self.namespace)
        apps = [self._parse(o) for o in self.cache.items(ref.group, ref.kind)]
        return sorted((a for a in apps if a is not None), key=lambda a: a.name)

    def summary(self, app: Application) -> AppSummary:
        """The app's list entry, computed once per change of the object: a list of
        200 apps for 20 clients reads 200 cached entries, not 4,000 statuses."""
        cached = self._summaries.get(app.name)
        if cached is not None and cached[0] == app.resource_version:
            return cached[1]
        entry = summary(app)
        self._summaries[app.name] = (app.resource_version, entry)
        return entry

    def summary_json(self, app: Application) -> str:
        """:meth:`summary` as compact JSON, encoded once per change of the object:
        50 open streams share one encoding of each change (and of the snapshot)."""
        cached = self._summary_json.get(app.name)
        if cached is not None and cached[0] == app.resource_version:
            return cached[1]
        text = json.dumps(self.summary(app).model_dump(), separators=(",", ":"))
        self._summary_json[app.name] = (app.resource_version, text)
        return text

    def get(self, name: str) -> Application | None:
        obj = self.cache.last_known(app_ref(name, self.namespace))
        return self._parse(obj) if obj is not None else None

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription()
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)


@dataclass
class ServerState:
    """Everything a request handler may use, built once by :func:`gitmoor.server.app.create_app`."""

    kube: KubeClient
    namespace: str
    #: the address users reach the server at (redirects, OIDC callback, cookie ``Secure``)
    url: str = "http://127.0.0.1:8080"
    secure_cookies: bool = False
    engine: Engine = field(init=False)
    clusters: ClusterRegistry = field(init=False)
    apps: AppIndex = field(init=False)
    settings: ClusterCache = field(init=False)
    secrets: ClusterCache = field(init=False)
    rbac: Rbac = field(init=False)
    accounts: AccountStore = field(init=False)
    sessions: SessionStore = field(init=False)
    limiter: LoginLimiter = field(init=False)
    audit: Audit = field(init=False)
    #: the OIDC provider ``oidc.config`` of gitmoor-cm configures; None when it is absent
    oidc: OidcProvider | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.clusters = ClusterRegistry(self.kube, namespace=self.namespace)
        self.engine = Engine(
            self.kube, namespace=self.namespace, clusters=self.clusters, dry_runs=DryRunCache()
        )
        self.engine.identity = "server"
        self.apps = AppIndex(self.kube, self.namespace)
        self.settings = ClusterCache(
            self.kube,
            label_selector=PART_OF,
            namespace=self.namespace,
            on_change=self._settings_changed,
        )
        self.secrets = ClusterCache(
            self.kube,
            label_selector=PART_OF,
            namespace=self.namespace,
            on_change=self._secret_changed,
        )
        self.rbac = Rbac()
        self.accounts = AccountStore(
            self.kube,
            self.namespace,
            configmap=lambda: self.configmap(SETTINGS_CONFIGMAP),
            secret=lambda: self.secret(SETTINGS_SECRET),
        )
        self.limiter = LoginLimiter()
        self.audit = Audit(self.kube, self.namespace)

    async def start(self) -> None:
        """Start the watches and wait for their first lists (``/readyz`` says when)."""
        await asyncio.gather(
            self.apps.start(),
            self.settings.ensure(self.configmap_ref(RBAC_CONFIGMAP)),
            self.secrets.ensure(self.secret_ref(SETTINGS_SECRET)),
        )
        self._load_rbac()
        self._load_oidc()
        self.sessions = SessionStore(await self.accounts.server_key())
        self.accounts.reconcile_sessions(self.sessions)  # records the starting state

    async def aclose(self) -> None:
        for cache in (self.apps.cache, self.settings, self.secrets):
            await cache.aclose()
        await self.clusters.aclose()

    @property
    def ready(self) -> bool:
        return self.apps.ready

    # ------------------------------------------------------------------ settings

    def configmap_ref(self, name: str) -> ObjectRef:
        return ObjectRef("", "v1", "ConfigMap", self.namespace, name)

    def secret_ref(self, name: str) -> ObjectRef:
        return ObjectRef("", "v1", "Secret", self.namespace, name)

    def configmap(self, name: str) -> JSONDict | None:
        """A settings ConfigMap from the watch (None: absent, or not labelled
        part-of=gitmoor). While the watch is broken, the last copy it had: logins
        and policy go on with second-old settings rather than failing for all."""
        return self.settings.last_known(self.configmap_ref(name))

    def secret(self, name: str) -> JSONDict | None:
        return self.secrets.last_known(self.secret_ref(name))

    def _settings_changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        if key[3] == RBAC_CONFIGMAP:
            self._load_rbac()
        elif key[3] == SETTINGS_CONFIGMAP:
            self._load_oidc()
            self._reconcile_sessions()

    def _secret_changed(self, key: Key, obj: JSONDict, deleted: bool) -> None:
        if key[3] == SETTINGS_SECRET:
            self._reconcile_sessions()

    def _reconcile_sessions(self) -> None:
        """A password reset (``gitmoor admin reset-password``), a disabled account or
        one that lost ``login``, made behind the server's back, ends its sessions."""
        if hasattr(self, "sessions"):  # not before start() made the store
            self.accounts.reconcile_sessions(self.sessions)

    def _load_oidc(self) -> None:
        self.oidc = reload_provider(
            self.oidc,
            self.configmap(SETTINGS_CONFIGMAP),
            url=self.url,
            secret=self.secret,
            reserved=lambda name: self.accounts.get(name) is not None,
        )

    def _load_rbac(self) -> None:
        try:
            self.rbac.load(policy_from_configmap(self.configmap(RBAC_CONFIGMAP)))
        except UserInputError as e:
            # The last good policy stays in force; the operator reads why here.
            log.error("event=rbac_invalid configmap=%s error=%s", RBAC_CONFIGMAP, e)
