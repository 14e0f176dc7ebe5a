"""OIDC login and OIDC ID tokens as bearer, against a real provider process.

The provider (``support.oidc_provider``) is authlib's authorization server in
its own process: it signs RS256 ID tokens, requires PKCE S256 and checks the
client secret. gitmoor is configured as a user configures it: ``oidc.config`` in
``gitmoor-cm``, the client secret as ``$oidc.clientSecret`` in ``gitmoor-secret``,
RBAC lines mapping the provider's group to a role.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import RSAKey

from gitmoor.kube import wait_for
from gitmoor.server.auth.oidc import JWKS_REFRESH_INTERVAL, STATE_COOKIE
from gitmoor.server.auth.sessions import CSRF_HEADER, SESSION_COOKIE
from gitmoor.settings.accounts import secret_data
from support.oidc_provider import Provider, launch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from .conftest import Server

CLIENT_ID = "gitmoor"
CLIENT_SECRET = "oidc-client-secret-5f0c2e9a"
OTHER_ID = "other-app"
OTHER_SECRET = "other-app-secret-77b1"
OTHER_REDIRECT = "http://127.0.0.1:9/cb"
ALICE = ("alice", "alice-pw-1", "alice@example.com", "team-a-devs")
BOB = ("bob", "bob-pw-2", "bob@example.com", "")

POLICY = "p, role:team-a-viewer, projects, get, team-a, allow\ng, team-a-devs, role:team-a-viewer\n"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


@pytest.fixture
async def idp(server: Server, tmp_path: Path) -> AsyncIterator[Provider]:
    provider = launch(
        tmp_path,
        clients=[
            f"{CLIENT_ID}:{CLIENT_SECRET}:{server.url}/auth/callback",
            f"{OTHER_ID}:{OTHER_SECRET}:{OTHER_REDIRECT}",
        ],
        users=[":".join(ALICE), ":".join(BOB)],
    )
    try:
        await wait_for(provider.answers, within=30, what="the OIDC provider serving discovery")
        yield provider
    finally:
        provider.stop()


async def configure(server: Server, issuer: str, *, secret: str = CLIENT_SECRET) -> None:
    """Write ``oidc.config`` and ``$oidc.clientSecret`` as an operator would, and wait
    until the server has both."""
    state = server.state
    await server.kube.merge_patch(
        state.secret_ref("gitmoor-secret"), {"data": {"oidc.clientSecret": _b64(secret)}}
    )
    config = (
        "name: Test IdP\n"
        f"issuer: {issuer}\n"
        f"clientID: {CLIENT_ID}\n"
        "clientSecret: $oidc.clientSecret\n"
        "requestedScopes: [openid, profile, email, groups]\n"
    )
    await server.kube.merge_patch(
        state.configmap_ref("gitmoor-cm"), {"data": {"oidc.config": config}}
    )

    async def ready() -> bool:
        seen = secret_data(state.secret("gitmoor-secret")).get("oidc.clientSecret")
        return state.oidc is not None and state.oidc.config.issuer == issuer and seen == secret

    await wait_for(ready, within=10, what="OIDC configuration seen by the server")


def _hidden_fields(page: str) -> dict[str, str]:
    pairs = re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)
    return {html.unescape(k): html.unescape(v) for k, v in pairs}


async def oidc_login(
    server: Server, idp: Provider, user: tuple[str, str, str, str]
) -> tuple[httpx.AsyncClient, httpx.Response]:
    """What a browser does: /auth/login, the provider's form, back to /auth/callback.
    Returns the client (its cookie jar holds the session when it worked) and the
    callback's response."""
    c = server.anonymous(follow_redirects=True)
    form = await c.get("/auth/login", headers={"Accept": "text/html"})
    assert form.status_code == 200, form.text
    assert str(form.url).startswith(f"{idp.issuer}/authorize?")
    sent = parse_qs(urlsplit(str(form.url)).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["nonce"] and sent["state"]
    fields = _hidden_fields(form.text) | {"username": user[0], "password": user[1]}
    done = await c.post(f"{idp.issuer}/authorize", data=fields, headers={"Accept": "text/html"})
    callback = next((r for r in [*done.history, done] if r.url.path == "/auth/callback"), None)
    assert callback is not None, (done.status_code, done.url, done.text[:300])
    return c, callback


async def provider_tokens(
    idp: Provider, client_id: str, secret: str, redirect_uri: str, user: tuple[str, ...]
) -> dict[str, Any]:
    """Tokens issued by the provider to ``client_id`` through the code flow,
    fetched by the test itself (to hold the raw ID token)."""
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile email groups",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            f"{idp.issuer}/authorize",
            data=query | {"username": user[0], "password": user[1]},
        )
        assert r.status_code == 302, r.text
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        r = await c.post(
            f"{idp.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(client_id, secret),
        )
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def _kid(token: str) -> str:
    head = token.split(".")[0]
    header: dict[str, str] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return header["kid"]


def mint(key: RSAKey, issuer: str, **override: Any) -> str:
    """An ID token for alice signed with ``key``; ``override`` changes claims."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "alice",
        "aud": [CLIENT_ID],
        "iat": now,
        "exp": now + 300,
        "email": ALICE[2],
        "groups": [ALICE[3]],
    }
    claims.update(override)
    return jwt.encode({"alg": "RS256", "kid": str(key.kid)}, claims, key)


async def _create_project(server: Server, name: str) -> None:
    admin = await server.login()
    r = await admin.post("/api/v1/projects", json={"name": name})
    assert r.status_code == 201, r.text


async def test_oidc_login_maps_the_group_claim_to_a_role(
    server: Server, idp: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await _create_project(server, "team-a")
    await _create_project(server, "team-b")
    await server.set_policy(POLICY)
    await configure(server, idp.issuer)
    assert server.state.oidc is not None and server.state.oidc.name == "Test IdP"

    c, callback = await oidc_login(server, idp, ALICE)
    assert callback.status_code == 303, callback.text
    assert callback.headers["location"] == "/"
    cookie = next(
        v
        for k, v in callback.headers.multi_items()
        if k == "set-cookie" and v.startswith(f"{SESSION_COOKIE}=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie

    me = await c.get("/api/v1/session/userinfo")
    assert me.status_code == 200, me.text
    info = me.json()
    assert info["username"] == ALICE[2]
    assert info["groups"] == [ALICE[3]]
    assert info["via"] == "oidc"
    assert "role:team-a-viewer" in info["roles"]
    c.headers[CSRF_HEADER] = info["csrf"]

    # What the group's role allows, and what it does not.
    assert (await c.get("/api/v1/projects/team-a")).status_code == 200
    assert (await c.get("/api/v1/projects/team-b")).status_code == 403
    assert (await c.delete("/api/v1/projects/team-a")).status_code == 403
    assert [p["name"] for p in (await c.get("/api/v1/projects")).json()] == ["team-a"]

    # A user without the group gets nothing from the same policy.
    b, callback = await oidc_login(server, idp, BOB)
    assert callback.status_code == 303, callback.text
    assert (await b.get("/api/v1/projects/team-a")).status_code == 403

    # Logout ends the OIDC session like any other.
    assert (await c.delete("/api/v1/session")).status_code == 200
    assert (await c.get("/api/v1/session/userinfo")).status_code == 401

    assert CLIENT_SECRET not in caplog.text


async def test_id_tokens_as_bearer_are_checked(server: Server, idp: Provider) -> None:
    await _create_project(server, "team-a")
    await server.set_policy(POLICY)
    await configure(server, idp.issuer)
    redirect = f"{server.url}/auth/callback"

    async def status(token: str) -> int:
        r = await server.bearer(token).get("/api/v1/projects/team-a")
        return r.status_code

    # The provider's own ID token for gitmoor works as a bearer token...
    mine = await provider_tokens(idp, CLIENT_ID, CLIENT_SECRET, redirect, ALICE)
    assert await status(mine["id_token"]) == 200

    # ...one it issued to another application of the same provider does not (aud).
    other = await provider_tokens(idp, OTHER_ID, OTHER_SECRET, OTHER_REDIRECT, ALICE)
    assert await status(other["id_token"]) == 401

    # The same claims signed with another key (same kid): bad signature.
    claims = jwt.decode(mine["id_token"], idp.private_key()).claims
    real_kid = idp.private_key().kid
    forger = RSAKey.generate_key(2048, parameters={"kid": str(real_kid)})
    assert await status(jwt.encode({"alg": "RS256", "kid": str(real_kid)}, claims, forger)) == 401
    stranger = RSAKey.generate_key(2048, parameters={"kid": "unknown-kid"})
    assert await status(mint(stranger, idp.issuer)) == 401

    # With the provider's real key: valid, expired, wrong issuer, wrong audience.
    key = idp.private_key()
    assert await status(mint(key, idp.issuer)) == 200
    past = int(time.time()) - 3600
    assert await status(mint(key, idp.issuer, iat=past - 300, exp=past)) == 401
    assert await status(mint(key, "http://127.0.0.1:1/not-the-issuer")) == 401
    assert await status(mint(key, idp.issuer, aud=[OTHER_ID])) == 401
    assert await status("not.a.jwt") == 401

    # A provider that rotates its key: the new kid makes gitmoor refetch the JWKS.
    async with httpx.AsyncClient() as c:
        new_kid = (await c.post(f"{idp.issuer}/test/rotate")).json()["kid"]
    assert new_kid != real_kid
    rotated = await provider_tokens(idp, CLIENT_ID, CLIENT_SECRET, redirect, ALICE)
    assert _kid(rotated["id_token"]) == new_kid

    # Refetches are at most one per JWKS_REFRESH_INTERVAL (garbage kids cannot make
    # the server hammer the provider), so the new key is taken within that time.
    async def accepted() -> bool:
        return await status(rotated["id_token"]) == 200

    await wait_for(accepted, within=JWKS_REFRESH_INTERVAL + 10, what="the rotated key accepted")


async def test_a_tampered_state_is_refused(server: Server, idp: Provider) -> None:
    await configure(server, idp.issuer)
    browser = server.anonymous()
    start = await browser.get("/auth/login")
    assert start.status_code == 303
    state_cookie = start.cookies[STATE_COOKIE]
    form = await browser.get(start.headers["location"])
    fields = _hidden_fields(form.text) | {"username": ALICE[0], "password": ALICE[1]}
    back = await browser.post(f"{idp.issuer}/authorize", data=fields)
    assert back.status_code == 302
    params = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["location"]).query).items()}

    async def callback(query: dict[str, str], cookie: str | None, **headers: str) -> httpx.Response:
        if cookie is not None:
            headers["Cookie"] = f"{STATE_COOKIE}={cookie}"
        return await server.anonymous().get(f"/auth/callback?{urlencode(query)}", headers=headers)

    r = await callback(params | {"state": params["state"][:-2] + "xx"}, state_cookie)
    assert r.status_code == 401
    assert "state" in r.json()["detail"]
    assert SESSION_COOKIE not in r.cookies
    r = await callback(params, "x" + state_cookie, Accept="text/html")
    assert r.status_code == 401
    assert "Login failed" in r.text and "tampered" in r.text
    r = await callback(params, None)
    assert r.status_code == 401
    assert "no login in progress" in r.json()["detail"]

    # The same code with the untouched state and cookie logs in: the refusals
    # above were for the tampering, not for the code.
    r = await callback(params, state_cookie)
    assert r.status_code == 303, r.text
    assert SESSION_COOKIE in r.cookies


async def test_the_client_secret_comes_from_gitmoor_secret(server: Server, idp: Provider) -> None:
    await configure(server, idp.issuer, secret="not-the-secret")
    _, callback = await oidc_login(server, idp, ALICE)
    assert callback.status_code == 401
    assert "invalid_client" in callback.text

    await configure(server, idp.issuer, secret=CLIENT_SECRET)
    c, callback = await oidc_login(server, idp, ALICE)
    assert callback.status_code == 303, callback.text
    assert (await c.get("/api/v1/session/userinfo")).json()["via"] == "oidc"


async def test_without_oidc_config_the_routes_say_so(server: Server) -> None:
    assert server.state.oidc is None
    r = await server.anonymous().get("/auth/login")
    assert r.status_code == 404
    assert "not configured" in r.json()["detail"]
    assert (await server.anonymous().get("/auth/callback?code=x&state=y")).status_code == 404
