"""`gitmoor app why` through the server: `GET /api/v1/applications/NAME/why` answers
the same lines as the engine (what the CLI prints), RBAC refuses an app the caller may
not get, and the app's page in a real browser shows the same text under its status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.async_api import expect

from gitmoor.kube import wait_for
from support.apps import configmap, dump
from support.browser import ui_login

if TYPE_CHECKING:
    from support.apps import AppEnv
    from support.browser import PageFactory

    from .conftest import Server

TIMEOUT = 20_000


async def _apps(server: Server, env: AppEnv) -> str:
    """``web`` Synced and Healthy; ``api`` depends on an app that does not exist."""
    commit = env.repo.commit(
        {"web/cm.yaml": dump(configmap("web")), "api/cm.yaml": dump(configmap("api"))}
    )
    await env.create("web", path="web")
    await env.create("api", path="api", spec={"dependsOn": [{"name": "db"}]})
    assert (await env.sync("web")).ok
    await env.healthy("web")
    await env.refresh("api")

    async def seen() -> bool:
        web, api = server.state.apps.get("web"), server.state.apps.get("api")
        return (
            web is not None
            and api is not None
            and (web.status.get("health") or {}).get("status") == "Healthy"
            and (api.status.get("sync") or {}).get("status") == "OutOfSync"
        )

    await wait_for(seen, within=15, what="both apps' status in the server's watch")
    return commit


async def test_the_api_answers_the_engines_lines_and_checks_rbac(
    server: Server, env: AppEnv
) -> None:
    commit = await _apps(server, env)
    admin = await server.login()
    r = await admin.get("/api/v1/applications/web/why")
    assert r.status_code == 200, r.text
    assert r.json() == {"lines": [f"Synced and Healthy at {commit[:12]}"]}

    r = await admin.get("/api/v1/applications/api/why")
    assert r.status_code == 200, r.text
    assert r.json()["lines"] == await env.engine.why(await env.app("api"))
    assert "waiting for db (db does not exist)" in r.json()["lines"]

    await server.add_user("viewer", "viewer-password-1")
    await server.set_policy("p, viewer, applications, get, default/web, allow")
    viewer = await server.login("viewer", "viewer-password-1")
    assert (await viewer.get("/api/v1/applications/web/why")).status_code == 200
    assert (await viewer.get("/api/v1/applications/api/why")).status_code in (403, 404)


async def test_the_app_page_shows_the_same_text(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    await _apps(server, env)
    lines = await env.engine.why(await env.app("api"))
    page = await page_factory()
    await ui_login(page, server.url, "admin", server.admin_password)
    await page.goto(f"{server.url}/applications/api")
    why = page.locator(".why-lines li")
    await expect(why).to_have_text(lines, timeout=TIMEOUT)
