"""A running ``gitmoor server`` per test, against the real control plane.

The server runs in the test's event loop under uvicorn on a free loopback port,
over the test's own apps namespace (``env.apps_namespace``), with the settings
``gitmoor install`` writes (``ensure_settings``): an ``admin`` account with a
generated password, an empty RBAC policy (``policy.default`` empty: deny).
Clients are real HTTP clients (httpx) that log in through ``POST
/api/v1/session`` like a browser or the CLI would.

No Secret value anywhere (issue 12, "Must show"): every test here runs under a
:class:`SecretGuard` that searches each response body and SSE chunk the
``Server`` clients read, every log record, and at the end the Kubernetes Events
of the test's namespaces for :data:`SECRET_VALUES` (and their base64 forms, as
a Secret's ``data`` holds them). Tests that put a value into a Secret, a
repository credential or a cluster token use these constants, so the guard
knows what to look for.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.server.app import create_app
from gitmoor.server.auth.sessions import CSRF_HEADER
from gitmoor.server.main import uvicorn_config
from gitmoor.server.rbac import RBAC_CONFIGMAP, Policy
from gitmoor.settings import accounts
from support.browser import browser, page_factory  # noqa: F401
from support.controller import running_controller
from support.secret_values import SECRET_VALUES

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from gitmoor.controller import Controller
    from gitmoor.kube import KubeClient
    from gitmoor.server.state import ServerState
    from support.apps import AppEnv


# ---------------------------------------------------------------- no Secret value anywhere

# The values themselves live in support/secret_values.py, where tests import them.


def _forms(value: str) -> list[bytes]:
    """The value, and the part of its base64 form that does not depend on what
    surrounds it, at each of the three byte alignments: a Secret's ``data`` (or a
    ``.dockerconfigjson`` holding the value mid-string) shows the value only so."""
    raw = value.encode()
    forms = [raw]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        start = -(-pad * 8 // 6)  # the first character free of the padding's bits
        end = (pad + len(raw)) * 8 // 6  # the last one free of what follows
        forms.append(encoded[start:end])
    return forms


class _ScannedStream(httpx.AsyncByteStream):
    """A response body that is searched chunk by chunk as the client reads it, so a
    server-sent-events stream is searched message by message while it stays open."""

    def __init__(self, guard: SecretGuard, inner: httpx.AsyncByteStream, where: str) -> None:
        self.guard, self.inner, self.where = guard, inner, where

    async def __aiter__(self) -> AsyncIterator[bytes]:
        carry = b""
        async for chunk in self.inner:
            window = carry + chunk
            self.guard.scan(window, self.where)
            carry = window[-self.guard.longest :]  # a value split across two chunks
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class _LogScan(logging.Handler):
    def __init__(self, guard: SecretGuard) -> None:
        super().__init__(logging.NOTSET)
        self.guard = guard

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.guard.scan(text, f"log record of {record.name} ({record.pathname}:{record.lineno})")


class SecretGuard:
    """Searches what the server says for the tests' secret values; a hit fails the test.

    Responses: an httpx ``response`` event hook on every client the ``Server``
    fixture hands out wraps the body's stream, so each chunk is searched as it is
    read (the clients ask for ``Accept-Encoding: identity``, so the bytes are the
    text). Logs: a handler on the root logger and on uvicorn's (which does not
    propagate), with ``gitmoor`` at DEBUG so every line is written and searched.
    Events: every Event in :attr:`namespaces` at the end of the test.
    """

    def __init__(self, values: tuple[str, ...] = SECRET_VALUES) -> None:
        self._needles: dict[bytes, str] = {}
        self.hits: list[str] = []
        #: namespaces whose Events are searched at the end (the server fixture adds its own)
        self.namespaces: set[str] = set()
        self.handler = _LogScan(self)
        for value in values:
            self.add(value)

    def add(self, value: str, label: str = "a test secret value") -> None:
        for i, form in enumerate(_forms(value)):
            self._needles[form] = label if i == 0 else f"{label} (base64)"

    @property
    def longest(self) -> int:
        return max(len(n) for n in self._needles)

    def scan(self, data: bytes | str, where: str) -> None:
        blob = data.encode(errors="replace") if isinstance(data, str) else data
        for needle, label in self._needles.items():
            if needle in blob:
                hit = f"{label} in {where}"
                if hit not in self.hits:
                    self.hits.append(hit)

    async def on_response(self, response: httpx.Response) -> None:
        request = response.request
        where = f"the response to {request.method} {request.url.path} ({response.status_code})"
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ScannedStream(self, response.stream, where)

    def client_options(self, kw: dict[str, Any]) -> dict[str, Any]:
        """``kw`` for an ``httpx.AsyncClient`` with this guard's hook and headers added."""
        hooks = dict(kw.pop("event_hooks", None) or {})
        hooks["response"] = [*hooks.get("response", []), self.on_response]
        headers = {"Accept-Encoding": "identity", **dict(kw.pop("headers", None) or {})}
        return {**kw, "event_hooks": hooks, "headers": headers}

    def watch_loggers(self, *names: str) -> None:
        for name in names:
            logger = logging.getLogger(name)
            if self.handler not in logger.handlers:
                logger.addHandler(self.handler)

    def unwatch_loggers(self, *names: str) -> None:
        for name in names:
            logging.getLogger(name).removeHandler(self.handler)

    async def scan_events(self, kube: KubeClient) -> None:
        events = await kube.resource("", "v1", "Event")
        for ns in sorted(self.namespaces):
            for event in (await kube.list(events, ns)).items:
                name = (event.get("metadata") or {}).get("name", "?")
                self.scan(json.dumps(event), f"Event {ns}/{name}")


#: loggers that do not propagate to the root (uvicorn's ``dictConfig`` sets them so)
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.access")


@pytest.fixture(autouse=True)
def secret_guard() -> Iterator[SecretGuard]:
    """Every server test runs under the guard; a hit fails the test at its end,
    naming where the value was seen."""
    guard = SecretGuard()
    gitmoor_logger = logging.getLogger("gitmoor")
    level = gitmoor_logger.level
    gitmoor_logger.setLevel(logging.DEBUG)
    guard.watch_loggers("", *_UVICORN_LOGGERS)
    try:
        yield guard
    finally:
        guard.unwatch_loggers("", *_UVICORN_LOGGERS)
        gitmoor_logger.setLevel(level)
    if guard.hits:
        pytest.fail("a Secret value was seen:\n  " + "\n  ".join(guard.hits), pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    kube: KubeClient
    namespace: str
    state: ServerState
    admin_password: str
    guard: SecretGuard = field(default_factory=SecretGuard)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def anonymous(self, **kw: Any) -> httpx.AsyncClient:
        """A client without credentials; every response it reads is searched by the guard."""
        c = httpx.AsyncClient(base_url=self.url, timeout=30, **self.guard.client_options(kw))
        self.clients.append(c)
        return c

    async def login(
        self, username: str = "admin", password: str | None = None
    ) -> httpx.AsyncClient:
        """A client holding a session cookie and sending its CSRF token, as the UI does."""
        c = self.anonymous()
        r = await c.post(
            "/api/v1/session",
            json={"username": username, "password": password or self.admin_password},
        )
        assert r.status_code == 200, r.text
        c.headers[CSRF_HEADER] = r.json()["csrf"]
        return c

    async def token(self, username: str = "admin", password: str | None = None) -> str:
        """A session token, as ``gitmoor login`` and scripts get one."""
        async with httpx.AsyncClient(
            base_url=self.url, timeout=30, **self.guard.client_options({})
        ) as c:
            r = await c.post(
                "/api/v1/session",
                json={"username": username, "password": password or self.admin_password},
            )
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token

    def bearer(self, token: str) -> httpx.AsyncClient:
        """A client that sends ``Authorization: Bearer`` and no cookie."""
        return self.anonymous(headers={"Authorization": f"Bearer {token}"})

    async def add_user(
        self, name: str, password: str, *, capabilities: tuple[str, ...] = ("login",)
    ) -> None:
        self.guard.add(password, f"the password of {name}")
        await accounts.add_account(self.kube, self.namespace, name, capabilities=capabilities)
        await accounts.reset_password(self.kube, self.namespace, name, password)

        async def known() -> bool:
            return any(a.name == name for a in self.state.accounts.list_accounts())

        await wait_for(known, within=10, what=f"account {name} seen by the server")

    async def set_policy(self, csv: str, default: str = "") -> None:
        """Write gitmoor-rbac-cm and wait until the server enforces it."""
        ref = ObjectRef("", "v1", "ConfigMap", self.namespace, RBAC_CONFIGMAP)
        await self.kube.merge_patch(ref, {"data": {"policy.csv": csv, "policy.default": default}})
        want = Policy(csv, default.strip())

        async def loaded() -> bool:
            return self.state.rbac.policy == want

        await wait_for(loaded, within=10, what="RBAC policy loaded by the server")


@pytest.fixture
async def server(kube: KubeClient, env: AppEnv, secret_guard: SecretGuard) -> AsyncIterator[Server]:
    ns = env.apps_namespace
    await store.install(kube, ns)
    password = await accounts.ensure_settings(kube, ns)
    if password is None:  # settings were there already (not in a fresh namespace)
        password = await accounts.reset_password(kube, ns, "admin", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(kube, ns, url=url)
    config = uvicorn_config(app, "127.0.0.1", port)
    secret_guard.add(password, "the admin password")
    secret_guard.watch_loggers(*_UVICORN_LOGGERS)  # uvicorn.Config just reset their handlers
    secret_guard.namespaces.update({ns, env.namespace})
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())

    async def up() -> bool:
        if task.done():
            task.result()  # raises what made the server stop
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(f"{url}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(up, within=30, what="gitmoor server ready")
    srv = Server(url, kube, ns, app.state.gitmoor, password, secret_guard)
    try:
        yield srv
    finally:
        for c in srv.clients:
            await c.aclose()
        uv.should_exit = True
        await asyncio.wait_for(task, 15)
        await secret_guard.scan_events(kube)


@pytest.fixture
async def controller(server: Server) -> AsyncIterator[Controller]:
    """A controller whose own refresh is 10 minutes away: every change a test sees
    comes from a request (sync, refresh) or a watch, not from the interval."""
    async with running_controller(server.kube, server.namespace, interval=600) as ctrl:
        yield ctrl
