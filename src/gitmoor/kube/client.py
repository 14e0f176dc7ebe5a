"""The one door to the Kubernetes API: discovery, get, list, watch, server-side
apply (with dry-run), delete and status patches, over one HTTP/2 connection.

Why HTTP/2 and async: measured on this machine kind, 1,000 server-side applies
take 2.1-2.4 s over one HTTP/2 connection with 32-64 requests in flight, 7-10 s
over HTTP/1.1 with 64 connections and about 32 s with ``kubectl apply
--server-side`` (shared/ARCHITECTURE.md). A semaphore bounds the requests in
flight; watches, which are long-lived streams, do not count against it.

The bound stays under what one connection carries, so no request waits for a
stream and httpcore never opens a second connection: the local kube-apiserver
advertises SETTINGS_MAX_CONCURRENT_STREAMS 100 and httpcore caps its own side
at 100, against the default 64 in flight here. Checked: 300 concurrent GETs
through one client used one HTTP/2 connection. JSON is not where the time
goes: encoding and decoding 1,000 applies and their answers took about 0.1 s
of a 1,000-object sync's CPU, against about 1.5 ms of httpx/h2 per request.

Watches do not share that connection: each gets an HTTP/1.1 connection of its
own. httpcore reads a shared HTTP/2 socket on behalf of every stream from
whichever request holds the connection's read lock (there is no reader task):
a watch waiting for its next event holds the lock in a blocking read, and a
request queued behind it waits with its response already received until the
watched resource changes or a bookmark arrives. Measured (bench/controller.py,
20 apps): once the controller was idle, each request took 55-59 s, the wait for
the next bookmark, so a self-heal took half a minute or more and Events timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

import httpx

from gitmoor.kube.errors import ApiUnavailableError, NotFoundError, UnknownKindError, api_error
from gitmoor.model import JSONDict, ObjectRef

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from gitmoor.kube.config import ClusterConfig

log = logging.getLogger("gitmoor.kube")

FIELD_MANAGER = "gitmoor"
_DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
)


@dataclass(frozen=True, slots=True)
class APIResource:
    """A resource the server serves: what a group/version/kind maps to."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str]
    subresources: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


@dataclass(slots=True)
class _Discovery:
    """What discovery learnt, shared by a client and its impersonating views."""

    resources: dict[tuple[str, str, str], APIResource] | None = None
    preferred: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
    object: JSONDict


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: list[JSONDict]
    resource_version: str


class _TokenFileAuth(httpx.Auth):
    """A bearer token re-read from its file at most once a minute."""

    def __init__(self, path: str, token: str) -> None:
        self.path, self.token, self.read_at = path, token, time.monotonic()

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        if time.monotonic() - self.read_at > 60:
            try:
                with open(self.path) as f:  # noqa: PTH123 - a small sync read, once a minute
                    self.token = f.read().strip()
            except OSError:
                log.warning("event=token_reread_failed path=%s", self.path)
            self.read_at = time.monotonic()
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def _never_delivered(method: str, e: httpx.TransportError) -> bool:
    """True when ``e`` shows the request cannot have been acted on, so sending it
    again is safe whatever its verb.

    kube-apiserver closes an HTTP/2 connection that has been idle for 90 s
    (k8s.io/apiserver secure_serving.go, ``http2.Server{IdleTimeout: 90s}``). A
    request written in the instant the server closes it fails to write, or finds
    the connection gone before any answer. Go's HTTP/2 transport sends such a
    request again on a new connection, so client-go never sees the error; httpx
    does not, and it reached the user as "cannot reach the API server" (a CI
    failure: a DELETE after the test had been quiet for a while).

    A failed write or connect means the server never got a whole request. A read
    that fails is different: the server may have acted, so only a GET, which
    changes nothing, is sent again after one (client-go's ``isErrRetryableFunc``
    likewise retries a GET alone on a connection reset or an unexpected EOF).
    """
    if isinstance(e, (httpx.ConnectError, httpx.WriteError)):
        return True
    return method == "GET" and isinstance(e, (httpx.ReadError, httpx.RemoteProtocolError))


class KubeClient:
    """An async client of one cluster. Use as ``async with KubeClient(cfg) as kc``."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        max_in_flight: int = 64,
        timeout: float = 30.0,
        user_agent: str = "gitmoor",
    ) -> None:
        self.config = config
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        auth: httpx.Auth | None = None
        if config.token_file:
            auth = _TokenFileAuth(config.token_file, config.token or "")
        elif config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.AsyncClient(
            base_url=config.server,
            http2=True,
            verify=config.ssl_context(),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            # One HTTP/2 connection carries every request; the limit only
            # matters if the server falls back to HTTP/1.1.
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=8),
            auth=auth,
        )
        # HTTP/1.1 only (ALPN too: httpcore speaks HTTP/2 whenever the server
        # selects h2, whatever http2= says); one connection per open watch.
        watch_tls = config.ssl_context()
        watch_tls.set_alpn_protocols(["http/1.1"])
        self._watch_http = httpx.AsyncClient(
            base_url=config.server,
            http2=False,
            verify=watch_tls,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=16),
        )
        self._sem = asyncio.Semaphore(max_in_flight)
        self._discovery = _Discovery()
        #: Impersonate-User / Impersonate-Group headers of every request (see impersonating)
        self._impersonation: tuple[tuple[str, str], ...] = ()
        #: False for an impersonating view: the connections belong to the client it came from
        self._owns_connections = True
        #: requests made, by (verb, HTTP status code); read by metrics and benchmarks
        self.requests: Counter[tuple[str, int]] = Counter()

    def impersonating(self, user: str, groups: Sequence[str] = ()) -> KubeClient:
        """A view of this client whose every request acts as ``user`` (and ``groups``).

        It shares this client's HTTP/2 connection, watch connections, request
        limit, discovery and request counters: impersonation is per request
        (``Impersonate-User``/``Impersonate-Group`` headers), so it needs no
        connection of its own. Closing the view closes nothing.

        For a ServiceAccount, give the user ``system:serviceaccount:NS:NAME`` and
        no groups: the API server then adds the account's fixed groups itself
        (``system:serviceaccounts``, ``system:serviceaccounts:NS``,
        ``system:authenticated``; k8s.io/apiserver's impersonation filter), and
        the caller needs ``impersonate`` on ``serviceaccounts`` only. Naming
        groups would also need ``impersonate`` on ``groups``, a right that could
        claim any group, ``system:masters`` included.
        """
        view = copy.copy(self)
        view._impersonation = (
            ("Impersonate-User", user),
            *(("Impersonate-Group", g) for g in groups),
        )
        view._owns_connections = False
        return view

    @property
    def impersonated_user(self) -> str:
        """The user this client acts as, or "" for its own identity."""
        return next((v for k, v in self._impersonation if k == "Impersonate-User"), "")

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._owns_connections:
            return
        await self._http.aclose()
        await self._watch_http.aclose()

    # ------------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        concerns: str | None = None,
        allow_404: bool = False,
    ) -> JSONDict | None:
        headers: dict[str, str] = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        r = await self._send(method, path, params, content, headers, concerns)
        if r.status_code < 300:
            body: JSONDict = r.json() if r.content else {}
            return body
        if r.status_code == 404 and allow_404:
            return None
        self._raise_for(r, concerns)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
        headers: Mapping[str, str],
        concerns: str | None,
    ) -> httpx.Response:
        """One request on the shared HTTP/2 connection, counted; the answer whatever
        its status. A transport failure is :class:`ApiUnavailableError`."""
        # A list: Impersonate-Group repeats, one header per group.
        sent = [*headers.items(), *self._impersonation]
        if params:
            # Encoded here: httpx merges a params mapping into the URL by parsing
            # it again, 35 µs of its 120 µs to build a request (measured), paid
            # once per object of every sync and diff.
            path = f"{path}?{urlencode(params, quote_via=quote)}"
        async with self._sem:
            try:
                r = await self._http.request(method, path, content=content, headers=sent)
            except httpx.TransportError as e:
                if not _never_delivered(method, e):
                    raise self._unreachable(method, e, concerns) from e
                # Once, on a new connection (the pool has dropped the dead one).
                try:
                    r = await self._http.request(method, path, content=content, headers=sent)
                except httpx.TransportError as e2:
                    raise self._unreachable(method, e2, concerns) from e2
        self.requests[(method, r.status_code)] += 1
        return r

    def _unreachable(
        self, method: str, e: httpx.TransportError, concerns: str | None
    ) -> ApiUnavailableError:
        self.requests[(method, 0)] += 1
        return ApiUnavailableError(
            f"cannot reach the API server at {self.config.server}: {type(e).__name__}",
            concerns=concerns,
        )

    @staticmethod
    def _raise_for(r: httpx.Response, concerns: str | None) -> None:
        try:
            status = r.json()
            if not isinstance(status, dict) or status.get("kind") != "Status":
                raise ValueError
        except ValueError:
            status = {"code": r.status_code, "message": r.text[:500] or r.reason_phrase}
        status.setdefault("code", r.status_code)
        message = str(status.get("message", ""))
        if r.status_code == 500 and any(
            m in message
            for m in ("failed to create typed patch object", "failed to convert", "illegal base64")
        ):
            # The API server answers 500 for a field of the wrong type (a string for
            # spec.replicas) or Secret data that is not base64: the manifest is
            # wrong, retrying cannot help.
            status = {**status, "code": 422, "reason": "Invalid"}
            raise api_error(status, concerns=concerns)
        if r.status_code == 429 or r.status_code >= 500:
            retry_after = float(r.headers.get("Retry-After", "1") or 1)
            raise ApiUnavailableError(
                f"API server answered {r.status_code}: {status.get('message', '')}",
                concerns=concerns,
                retry_after=retry_after,
            )
        raise api_error(status, concerns=concerns)

    # ------------------------------------------------------------------ discovery

    async def _discover(self) -> None:
        resources: dict[tuple[str, str, str], APIResource] = {}
        preferred: dict[tuple[str, str], str] = {}
        for root in ("/api", "/apis"):
            doc = await self._request("GET", root, accept=_DISCOVERY_ACCEPT) or {}
            for grp in doc.get("items", []):
                group = grp.get("metadata", {}).get("name", "")
                versions = grp.get("versions", [])
                for i, ver in enumerate(versions):
                    version = ver["version"]
                    for res in ver.get("resources", []):
                        rk = res.get("responseKind") or {}
                        kind = rk.get("kind")
                        if not kind:
                            continue
                        ar = APIResource(
                            group=group,
                            version=version,
                            kind=kind,
                            plural=res["resource"],
                            namespaced=res.get("scope") == "Namespaced",
                            verbs=frozenset(res.get("verbs", [])),
                            subresources=frozenset(
                                s.get("subresource", "") for s in res.get("subresources", [])
                            ),
                        )
                        resources[(group, version, kind)] = ar
                        # The server lists versions in preference order.
                        if i == 0 or (group, kind) not in preferred:
                            preferred.setdefault((group, kind), version)
        self._discovery.resources, self._discovery.preferred = resources, preferred

    async def resource(self, group: str, version: str, kind: str) -> APIResource:
        """The resource for a group/version/kind; rediscovers once on a miss,
        because a CRD applied a moment ago is not in the first discovery."""
        key = (group, version, kind)
        disc = self._discovery
        if disc.resources is None or key not in disc.resources:
            async with disc.lock:
                await self._discover()
        assert disc.resources is not None
        ar = disc.resources.get(key)
        if ar is None:
            api = f"{group}/{version}" if group else version
            raise UnknownKindError(
                f"the cluster has no resource kind {kind} in {api}", concerns=f"{api} {kind}"
            )
        return ar

    async def resource_for(self, ref: ObjectRef) -> APIResource:
        return await self.resource(ref.group, ref.version, ref.kind)

    async def preferred_resource(self, group: str, kind: str) -> APIResource:
        disc = self._discovery
        if disc.resources is None or (group, kind) not in disc.preferred:
            async with disc.lock:
                await self._discover()
        version = disc.preferred.get((group, kind))
        if version is None:
            raise UnknownKindError(f"the cluster has no resource kind {kind} in group {group!r}")
        return await self.resource(group, version, kind)

    def invalidate_discovery(self) -> None:
        self._discovery.resources = None

    # ------------------------------------------------------------------ reads

    async def get(self, ref: ObjectRef) -> JSONDict | None:
        """The live object, or None when it does not exist."""
        ar = await self.resource_for(ref)
        return await self._request(
            "GET", ar.path(ref.namespace, ref.name), concerns=str(ref), allow_404=True
        )

    async def get_raw(self, path: str) -> JSONDict:
        """A JSON document the server serves outside the resource paths
        (``/version``, ``/openapi/v3`` and its group-version documents), as
        ``kubectl get --raw`` reads it; ``path`` may carry its query
        (``/openapi/v3/apis/apps/v1?hash=…``, the URL the index hands out)."""
        return await self._request("GET", path, concerns=path) or {}

    async def list(
        self,
        ar: APIResource,
        namespace: str = "",
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> ObjectList:
        """Every object of a resource (following continue tokens). ``field_selector``
        is the server's ``fieldSelector`` (``involvedObject.name=web`` for Events):
        which fields a kind can select on is the API server's list, per kind."""
        items: list[JSONDict] = []
        params: dict[str, str] = {"limit": str(limit)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        rv = ""
        while True:
            doc = await self._request("GET", ar.path(namespace), params=params) or {}
            kind = ar.kind
            for it in doc.get("items", []):
                # List items carry no apiVersion/kind; put them back so they are whole objects.
                it.setdefault("apiVersion", ar.api_version)
                it.setdefault("kind", kind)
                items.append(it)
            meta = doc.get("metadata", {})
            rv = meta.get("resourceVersion", rv)
            cont = meta.get("continue")
            if not cont:
                return ObjectList(items, rv)
            params["continue"] = cont

    async def watch(
        self,
        ar: APIResource,
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Events from ``resource_version`` on, with bookmarks. A 410 Gone comes
        back as an ERROR event whose object is the Status: the caller relists."""
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        timeout = httpx.Timeout(10.0, read=timeout_seconds + 30)
        try:
            async with self._watch_http.stream(
                "GET",
                ar.path(namespace),
                params=params,
                timeout=timeout,
                headers=list(self._impersonation),
            ) as r:
                self.requests[("WATCH", r.status_code)] += 1
                if r.status_code >= 300:
                    await r.aread()
                    self._raise_for(r, f"watch {ar.kind}")
                async for line in r.aiter_lines():
                    if not line:
                        continue
                    ev = json.loads(line)
                    yield WatchEvent(ev["type"], ev["object"])
        except httpx.TransportError as e:
            raise ApiUnavailableError(
                f"watch of {ar.plural} broke: {type(e).__name__}", concerns=f"watch {ar.kind}"
            ) from e

    # ------------------------------------------------------------------ pod logs

    @staticmethod
    def _log_params(
        container: str,
        tail_lines: int | None,
        limit_bytes: int | None,
        since_seconds: int | None,
        follow: bool,
    ) -> dict[str, str]:
        params: dict[str, str] = {}
        if container:
            params["container"] = container
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        if limit_bytes is not None:
            params["limitBytes"] = str(limit_bytes)
        if since_seconds is not None:
            params["sinceSeconds"] = str(since_seconds)
        if follow:
            params["follow"] = "true"
        return params

    async def logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str = "",
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
        since_seconds: int | None = None,
    ) -> str:
        """The log of one container (the ``pods/log`` subresource, ``kubectl logs``).

        The API server fetches it from the node's kubelet, so an unreachable
        kubelet is the API server's 5xx (``ApiUnavailableError``, with its
        message) and an unknown container its 400 (``ApiError``). ``limit_bytes``
        and ``tail_lines`` are applied by the kubelet: bound them, a log can be
        any size."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"
        params = self._log_params(container, tail_lines, limit_bytes, since_seconds, False)
        concerns = f"pod {namespace}/{pod} log"
        r = await self._send("GET", path, params, None, {"Accept": "*/*"}, concerns)
        if r.status_code >= 300:
            self._raise_for(r, concerns)
        return r.text

    @contextlib.asynccontextmanager
    async def follow_logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str = "",
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
        since_seconds: int | None = None,
    ) -> AsyncIterator[AsyncIterator[str]]:
        """``async with kc.follow_logs(ns, pod) as lines``: the log of one container,
        then its new lines as they are written (``kubectl logs -f``), one line at a
        time without its newline.

        Entering opens the stream and raises what the API server refused with
        (as :meth:`logs`), so a caller can answer with the error before it starts
        streaming. Like a watch it is a long-lived stream, so it gets an HTTP/1.1
        connection of its own (the module docstring says why). It has no read
        timeout, since a container may write nothing for hours: the caller bounds
        how long it follows; leaving the block closes the connection."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"
        params = self._log_params(container, tail_lines, limit_bytes, since_seconds, True)
        concerns = f"pod {namespace}/{pod} log"
        async with contextlib.AsyncExitStack() as stack:
            try:
                r = await stack.enter_async_context(
                    self._watch_http.stream(
                        "GET",
                        path,
                        params=params,
                        timeout=httpx.Timeout(10.0, read=None),
                        headers=[("Accept", "*/*"), *self._impersonation],
                    )
                )
            except httpx.TransportError as e:
                raise self._unreachable("GET", e, concerns) from e
            self.requests[("GET", r.status_code)] += 1
            if r.status_code >= 300:
                await r.aread()
                self._raise_for(r, concerns)
            yield self._lines(r, concerns)

    @staticmethod
    async def _lines(r: httpx.Response, concerns: str) -> AsyncIterator[str]:
        try:
            async for line in r.aiter_lines():
                yield line
        except httpx.TransportError as e:
            raise ApiUnavailableError(
                f"the log stream broke: {type(e).__name__}", concerns=concerns
            ) from e

    # ------------------------------------------------------------------ writes

    async def apply(
        self,
        obj: JSONDict,
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = False,
        dry_run: bool = False,
        ref: ObjectRef | None = None,
    ) -> JSONDict:
        """Server-side apply; with ``dry_run`` the server computes the result and stores nothing."""
        ref = ref or ObjectRef.of(obj)
        ar = await self.resource_for(ref)
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        body = json.dumps(obj, separators=(",", ":")).encode()
        result = await self._request(
            "PATCH",
            ar.path(ref.namespace, ref.name),
            params=params,
            content=body,
            content_type="application/apply-patch+yaml",
            concerns=str(ref),
        )
        assert result is not None
        return result

    async def create(
        self,
        obj: JSONDict,
        *,
        field_manager: str | None = None,
        field_validation: str | None = None,
    ) -> JSONDict:
        """POST. ``field_manager`` None leaves the server's default (from the user agent);
        ``field_validation`` (``Ignore``, ``Warn``, ``Strict``) is the server's
        ``fieldValidation`` for fields the schema does not declare."""
        ref = ObjectRef.of(obj)
        ar = await self.resource_for(ref)
        params = {"fieldManager": field_manager} if field_manager else {}
        if field_validation:
            params["fieldValidation"] = field_validation
        result = await self._request(
            "POST", ar.path(ref.namespace), params=params, json_body=obj, concerns=str(ref)
        )
        assert result is not None
        return result

    async def merge_patch(
        self, ref: ObjectRef, patch: JSONDict, *, subresource: str = ""
    ) -> JSONDict:
        ar = await self.resource_for(ref)
        result = await self._request(
            "PATCH",
            ar.path(ref.namespace, ref.name, subresource),
            json_body=patch,
            content_type="application/merge-patch+json",
            concerns=str(ref),
        )
        assert result is not None
        return result

    async def replace(
        self,
        ref: ObjectRef,
        obj: JSONDict,
        *,
        subresource: str = "",
        field_manager: str | None = None,
        field_validation: str | None = None,
    ) -> JSONDict:
        """PUT: optimistic concurrency on metadata.resourceVersion (409 on a stale one)."""
        ar = await self.resource_for(ref)
        params = {"fieldManager": field_manager} if field_manager else {}
        if field_validation:
            params["fieldValidation"] = field_validation
        result = await self._request(
            "PUT",
            ar.path(ref.namespace, ref.name, subresource),
            params=params,
            json_body=obj,
            concerns=str(ref),
        )
        assert result is not None
        return result

    async def delete(
        self,
        ref: ObjectRef,
        *,
        propagation: Literal["Foreground", "Background", "Orphan"] = "Background",
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> bool:
        """Delete; False when it was already gone. ``uid`` makes the delete act
        only on that incarnation of the object, ``resource_version`` only on the
        state the caller judged (preconditions: a 409 if it changed since)."""
        ar = await self.resource_for(ref)
        body: JSONDict = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        preconditions = {}
        if uid:
            preconditions["uid"] = uid
        if resource_version:
            preconditions["resourceVersion"] = resource_version
        if preconditions:
            body["preconditions"] = preconditions
        try:
            result = await self._request(
                "DELETE",
                ar.path(ref.namespace, ref.name),
                json_body=body,
                concerns=str(ref),
                allow_404=True,
            )
        except NotFoundError:
            return False
        return result is not None


async def wait_for(
    probe: Any, *, within: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll an async ``probe()`` until it returns a truthy value or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
