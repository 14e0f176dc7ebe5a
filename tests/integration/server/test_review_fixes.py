"""Regressions for what the security review of the server's API and
authentication found (issue 12): each test is an attack or a broken input that
once got a 500, or kept access open, against a real running server.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Destination, application_manifest
from gitmoor.server.auth.sessions import CSRF_HEADER
from gitmoor.server.limits import MAX_BODY_BYTES
from gitmoor.settings import accounts

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .conftest import Server

API = "/api/v1"


async def test_a_deeply_nested_login_body_is_a_422_not_a_500(server: Server) -> None:
    """``json.loads`` raises RecursionError (not ValueError) on deep nesting: an
    anonymous caller must get the same 422 as for any other malformed body."""
    c = server.anonymous()
    r = await c.post(
        f"{API}/session",
        content=b"[" * 100_000,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text


async def test_a_non_ascii_csrf_token_is_refused_not_a_500(server: Server) -> None:
    """``hmac.compare_digest`` raises TypeError on a non-ASCII ``str``: a cookie
    request whose CSRF token (header or form field) is not ASCII must get the
    403 of a wrong token."""
    c = await server.login()
    c.headers.pop(CSRF_HEADER)
    r = await c.post(
        f"{API}/applications/nope/refresh", json={}, headers={CSRF_HEADER: "é".encode("latin-1")}
    )
    assert r.status_code == 403, r.text
    r = await c.post(f"{API}/applications/nope/refresh", data={"csrf_token": "ü€"})
    assert r.status_code == 403, r.text


async def _apikey_user(server: Server, name: str) -> str:
    """A new account with the apiKey capability, and an API token of it."""
    await server.add_user(name, "review-password-1", capabilities=("login", "apiKey"))
    admin = await server.login()
    r = await admin.post(f"{API}/accounts/{name}/tokens", json={})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


async def test_deleting_gitmoor_secret_ends_tokens_this_server_issued(server: Server) -> None:
    """The server prefers the copy of gitmoor-secret its own last write returned
    until its watch catches up. When the Secret is then deleted (an operator
    revoking everything), the watch's answer is "gone", and the written copy must
    not keep the tokens in it alive."""
    token = await _apikey_user(server, "bot")
    bot = server.bearer(token)
    assert (await bot.get(f"{API}/session/userinfo")).status_code == 200
    ref = ObjectRef("", "v1", "Secret", server.namespace, accounts.SETTINGS_SECRET)

    tid = token.split(".")[0][len(accounts.TOKEN_PREFIX) :]
    tokens_key = accounts.key_of("bot", "tokens")

    async def watched() -> bool:  # the watch has seen the write that issued the token
        data = accounts.secret_data(server.state.secret(accounts.SETTINGS_SECRET))
        return tid in data.get(tokens_key, "")

    await wait_for(watched, within=10, what="the token's write seen by the watch")
    await server.kube.delete(ref)

    async def gone() -> bool:
        return server.state.secret(accounts.SETTINGS_SECRET) is None

    await wait_for(gone, within=10, what="gitmoor-secret's deletion seen by the watch")
    assert (await bot.get(f"{API}/session/userinfo")).status_code == 401


async def test_an_event_stream_ends_when_its_api_token_is_revoked(server: Server) -> None:
    """A stream authenticated by an API token ends (``logout``) once the token is
    revoked, as a session's stream ends at logout: revocation is in force on
    open streams too, not only on new requests."""
    token = await _apikey_user(server, "watcher")
    tid = token.split(".")[0][len(accounts.TOKEN_PREFIX) :]
    bot = server.bearer(token)
    admin = await server.login()
    lines: list[str] = []
    async with asyncio.timeout(30), bot.stream("GET", f"{API}/stream/applications") as r:
        assert r.status_code == 200
        revoked = False
        async for line in r.aiter_lines():
            lines.append(line)
            if not revoked and line.startswith("retry:"):
                d = await admin.delete(f"{API}/accounts/watcher/tokens/{tid}")
                assert d.status_code == 200, d.text
                revoked = True
    assert "event: logout" in lines, lines


async def test_credentials_in_an_apps_repo_url_never_reach_a_reader(server: Server) -> None:
    """gitmoor refuses credentials in ``repoURL`` when it writes an app, but an
    Application applied with kubectl (or by an app of apps) can carry
    ``https://user:TOKEN@host/...``. Whoever may read the app (role:readonly)
    must not get the token from the list, the app or the stream; the URL shows
    without its userinfo, as ``gitmoor app`` and the repositories API show it."""
    secret = "review-ghp-Zq81xw0token"
    server.guard.add(secret, "a token in an Application's repoURL")
    manifest = application_manifest(
        "creds-in-url",
        server.namespace,
        AppSource(repo_url=f"https://ci:{secret}@git.example/team/app.git", path="."),
        Destination(namespace="default"),
    )
    await server.kube.create(manifest)

    async def listed() -> bool:
        return server.state.apps.get("creds-in-url") is not None

    await wait_for(listed, within=10, what="the app in the server's watch")
    admin = await server.login()
    items = (await admin.get(f"{API}/applications")).json()["items"]
    assert [i["repoURL"] for i in items if i["name"] == "creds-in-url"] == [
        "https://git.example/team/app.git"
    ]
    r = await admin.get(f"{API}/applications/creds-in-url")
    assert r.status_code == 200 and r.json()["repoURL"] == "https://git.example/team/app.git"
    async with asyncio.timeout(20), admin.stream("GET", f"{API}/stream/applications") as s:
        async for line in s.aiter_lines():
            if "creds-in-url" in line:
                assert "git.example/team/app.git" in line
                break
    await server.kube.delete(store.app_ref("creds-in-url", server.namespace))


async def test_an_oversized_body_is_refused_before_it_is_read(server: Server) -> None:
    """FastAPI reads a body before authentication: an anonymous client must not
    be able to make the server hold any amount of memory. A body over the cap
    (the kube-apiserver's 3 MiB) is a 413, declared or streamed without a
    length (that the app stops reading early is shown in the unit test)."""
    c = server.anonymous()
    big = b" " * (MAX_BODY_BYTES + 1)
    r = await c.post(
        f"{API}/applications", content=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):  # no Content-Length: 8 MiB, chunked
            yield b" " * (1 << 20)

    r = await c.post(
        f"{API}/session", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text
    ok = await c.post(
        f"{API}/session", json={"username": "admin", "password": server.admin_password}
    )
    assert ok.status_code == 200, ok.text


async def test_parallel_wrong_passwords_are_limited_like_sequential_ones(server: Server) -> None:
    """The limit (10 failures per account and address in 5 minutes) holds for 40
    guesses sent at once: checking first and counting only after the argon2
    verify let all 40 be tried. At most 10 are checked; the rest get 429 with
    ``Retry-After``."""
    c = server.anonymous()
    guesses = [{"username": "admin", "password": f"guess-{i:02d}-wrong"} for i in range(40)]
    answers = await asyncio.gather(*(c.post(f"{API}/session", json=g) for g in guesses))
    codes = [r.status_code for r in answers]
    assert codes.count(401) <= 10 and codes.count(401) + codes.count(429) == 40, codes
    assert all(r.headers.get("retry-after") for r in answers if r.status_code == 429)
