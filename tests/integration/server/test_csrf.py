"""CSRF: a browser holding a gitmoor session cookie is made to post a form by
another site (issue 12, "Must show: CSRF").

The session cookie is SameSite=Lax, which already keeps it off a cross-site
POST in today's browsers; the server does not rely on that alone (older
browsers, and Lax's two-minute exception in Chrome): a cookie request that
changes state must come from our own origin and carry the session's CSRF token
(OWASP's synchronizer token plus origin check). These tests send what such a
page makes a browser send: the cookie, ``Origin`` and ``Sec-Fetch-Site`` of the
other site, a form-encoded body, and no token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from gitmoor.engine.store import app_ref
from gitmoor.kube import wait_for
from gitmoor.server.auth.sessions import CSRF_FIELD, CSRF_HEADER
from support.api_routes import fill_path, state_changing
from support.apps import configmap, dump

if TYPE_CHECKING:
    import httpx

    from conftest import Server
    from support.apps import AppEnv

EVIL = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _resource_versions(server: Server) -> dict[str, str]:
    """Everything a forged request could change: Applications, projects, the settings."""
    kube, ns = server.kube, server.namespace
    out: dict[str, str] = {}
    for group, version, kind in (
        ("gitmoor.io", "v1alpha1", "Application"),
        ("gitmoor.io", "v1alpha1", "AppProject"),
        ("", "v1", "Secret"),
        ("", "v1", "ConfigMap"),
    ):
        for obj in (await kube.list(await kube.resource(group, version, kind), ns)).items:
            out[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return out


@pytest.fixture
async def browser(server: Server, env: AppEnv) -> httpx.AsyncClient:
    """An admin's browser: the session cookie, and (unlike the UI's own pages) no
    CSRF token sent by default."""
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("web")

    async def seen() -> bool:
        return server.state.apps.get("web") is not None

    await wait_for(seen, within=15, what="web in the server's watch")
    client = await server.login()
    csrf = client.headers.pop(CSRF_HEADER)
    client.headers["X-Test-Csrf"] = csrf  # kept aside for the test that sends it
    return client


def _forged(**fields: str) -> dict[str, Any]:
    """What a hidden form on the other site posts: form fields, its own origin."""
    body = {"prune": "true", "dryRun": "false", **fields}
    return {"headers": {**EVIL, **FORM}, "content": urlencode(body)}


async def test_a_cross_site_form_post_is_refused_on_every_state_changing_route(
    server: Server, browser: httpx.AsyncClient
) -> None:
    """Every state-changing route (and the login: a login CSRF signs the victim
    into the attacker's account) refuses the forged post with 403, and nothing
    in the namespace changes."""
    doc = (await browser.get("/api/openapi.json")).json()
    before = await _resource_versions(server)
    values = {"name": "web", "token_id": "t1"}
    wrong = []
    routes = state_changing(doc)
    assert routes
    for route in routes:
        url = fill_path(route.path, {p: values.get(p, "x") for p in route.path_params})
        r = await browser.request(route.method, url, **_forged())
        if r.status_code != 403 or "cross-site" not in r.text:
            wrong.append(f"{route}: {r.status_code} {r.text[:200]}")
    r = await browser.post("/api/v1/session", **_forged(username="admin", password="x"))
    if r.status_code != 403 or "cross-site" not in r.text:
        wrong.append(f"POST /api/v1/session: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await _resource_versions(server) == before


async def _operation(server: Server) -> Any:
    """The operation the Application asks for now (None: none)."""
    return (await server.kube.get(app_ref("web", server.namespace)) or {}).get("operation")


async def test_a_cross_site_post_with_a_wrong_or_the_right_token_is_refused(
    server: Server, browser: httpx.AsyncClient
) -> None:
    """A guessed token is refused, and even the right one (leaked, say) does not
    let another origin through, in a form field or in the header."""
    token = browser.headers["X-Test-Csrf"]
    sync = "/api/v1/applications/web/sync"
    for forged in (
        _forged(**{CSRF_FIELD: "guessed-" + token[:8]}),
        _forged(**{CSRF_FIELD: token}),
        {"headers": {**EVIL, CSRF_HEADER: token}, "json": {}},
    ):
        r = await browser.post(sync, **forged)
        assert r.status_code == 403, r.text
    assert await _operation(server) is None


async def test_a_wrong_or_missing_csrf_token_is_refused_from_our_own_origin(
    server: Server, browser: httpx.AsyncClient
) -> None:
    same_site = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    r = await browser.post(
        "/api/v1/applications/web/sync", json={}, headers={**same_site, CSRF_HEADER: "wrong"}
    )
    assert r.status_code == 403, r.text
    assert "CSRF" in r.json()["detail"]
    r = await browser.post("/api/v1/applications/web/sync", json={}, headers=same_site)
    assert r.status_code == 403, r.text
    assert await _operation(server) is None


async def test_the_right_csrf_header_passes(server: Server, browser: httpx.AsyncClient) -> None:
    """What the UI's own pages send: the cookie, our origin, the token header."""
    token = browser.headers["X-Test-Csrf"]
    r = await browser.post(
        "/api/v1/applications/web/sync",
        json={},
        headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin", CSRF_HEADER: token},
    )
    assert r.status_code == 202, r.text
    assert await _operation(server) is not None
