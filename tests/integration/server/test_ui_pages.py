"""The web UI's shell and list pages in a real browser (Debian's Chromium driven
by Playwright), against a real ``gitmoor server`` on the local control plane.

What a user relies on: the login page sends them back where they were going;
the application list shows each app with sync and health badges (a word and an
icon, not colour alone), filters and search narrow it, the card view works and
is remembered; a change to an app reaches the open page without a reload; the
page works at 390 px, from the keyboard, in the dark theme; a team sees only
its own apps; logout ends the session for the cookie too. ``page_factory``
(tests/support/browser.py) also fails a test on any script error and on any
test secret value in a page or JSON body the browser got.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Page, expect

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Destination, application_manifest
from gitmoor.server.auth.sessions import SESSION_COOKIE
from support.apps import configmap, dump, secret
from support.browser import screenshot, ui_login
from support.secret_values import CLUSTER_TOKEN, REPO_PASSWORD, SECRET_VALUE

if TYPE_CHECKING:
    from support.apps import AppEnv
    from support.browser import PageFactory

    from .conftest import Server

#: waits for the page: generous, two cores serve the control plane too
TIMEOUT = 20_000


async def _seen(server: Server, *names: str) -> None:
    async def seen() -> bool:
        return all(server.state.apps.get(n) is not None for n in names)

    await wait_for(seen, within=15, what=f"{names} in the server's watch")


async def _apps(server: Server, env: AppEnv) -> None:
    """Three apps: ``web`` Synced and Healthy (with a Secret in it), ``api`` OutOfSync
    (git moved on after its sync), ``batch`` never synced (Unknown)."""
    env.repo.commit(
        {
            "web/cm.yaml": dump(configmap("web"), secret("web-secret", {"token": SECRET_VALUE})),
            "api/cm.yaml": dump(configmap("api")),
            "batch/cm.yaml": dump(configmap("batch")),
        }
    )
    await env.create("web", path="web")
    await env.create("api", path="api")
    await env.create("batch", path="batch")
    assert (await env.sync("web")).ok
    assert (await env.sync("api")).ok
    await env.healthy("web")
    env.repo.commit({"api/cm.yaml": dump(configmap("api", {"key": "changed"}))})
    await env.refresh("api")
    await _seen(server, "web", "api", "batch")


def row(page: Page, name: str) -> Any:
    return page.locator(f'#app-items [data-app="{name}"]')


async def visible_apps(page: Page) -> list[str]:
    names: list[str] = await page.locator("#app-items [data-app]").evaluate_all(
        "els => els.map(e => e.dataset.app)"
    )
    return names


async def tab_through(page: Page, limit: int = 60) -> list[str]:
    """Press Tab from the top of the page until the focus comes round again; each
    stop must show a focus outline (on itself, or on the label of a hidden radio)
    and have an accessible name. Returns the stops (id, href or name)."""
    stops: list[str] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = page.locator(":focus")
        if await focused.count() == 0:
            break
        info = await focused.evaluate(
            """el => {
              const visible = e => { const s = getComputedStyle(e);
                return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; };
              const label = el.labels && el.labels[0];
              return { key: el.id || el.getAttribute('href') || el.getAttribute('aria-label')
                            || el.textContent.trim(),
                       focusVisible: el.matches(':focus-visible'),
                       outline: visible(el) || (label !== undefined && label !== null && visible(label)) };
            }"""
        )
        if stops and info["key"] == stops[0]:
            break
        stops.append(info["key"])
        assert info["focusVisible"] and info["outline"], f"no visible focus on {info['key']}"
        await expect(focused).to_have_accessible_name(re.compile(r"\S"))
    return stops


async def test_login_redirects_back_and_list_shows_badges(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    await _apps(server, env)
    page = await page_factory()
    # A page without a session goes to the login page, which sends it back after login.
    await page.goto(f"{server.url}/settings/clusters")
    assert re.search(r"/login\?next=%2Fsettings%2Fclusters$", page.url), page.url
    await ui_login(page, server.url, "admin", server.admin_password, next="/settings/clusters")
    await expect(page.get_by_role("heading", name="Clusters")).to_be_visible()

    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Applications").click()
    )
    await page.wait_for_url(f"{server.url}/applications")
    assert await visible_apps(page) == ["api", "batch", "web"]
    # each badge: a word, an icon of its own, and a tone; never colour alone
    for name, sync, sync_icon, health, health_icon in (
        ("web", "Synced", "synced", "Healthy", "healthy"),
        ("api", "OutOfSync", "outofsync", "Healthy", "healthy"),
        ("batch", "Unknown", "unknown", "Unknown", "unknown"),
    ):
        badge = row(page, name).locator(".badge.sync")
        await expect(badge).to_have_text(sync)
        assert (await badge.locator("use").get_attribute("href") or "").endswith(f"#{sync_icon}")
        badge = row(page, name).locator(".badge.health")
        await expect(badge).to_have_text(health)
        assert (await badge.locator("use").get_attribute("href") or "").endswith(f"#{health_icon}")
    # the counts by status
    counts = page.locator("#app-counts")
    await expect(counts.locator(".count-total")).to_have_text("3 applications")
    await expect(counts.get_by_role("list", name="Counts by sync status")).to_contain_text(
        "Synced1"
    )
    await expect(counts.get_by_role("list", name="Counts by sync status")).to_contain_text(
        "OutOfSync1"
    )
    # the link goes to the application page
    assert await row(page, "web").get_by_role("link", name="web").get_attribute("href") == (
        "/applications/web"
    )
    await screenshot(page, "list-light")


async def test_filters_search_and_card_view(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    await _apps(server, env)
    page = await page_factory()
    await ui_login(page, server.url, "admin", server.admin_password)

    await page.get_by_label("Sync", exact=True).select_option("OutOfSync")
    await expect(page.locator("#app-items [data-app]")).to_have_count(1)
    assert await visible_apps(page) == ["api"]
    assert "sync=OutOfSync" in page.url  # the filter is in the address, to share or reload
    await expect(page.locator("#app-counts .count-total")).to_have_text("1 application match")

    await page.get_by_label("Sync", exact=True).select_option("")
    await page.get_by_label("Search", exact=True).fill("bat")
    await expect(page.locator("#app-items [data-app]")).to_have_count(1)
    assert await visible_apps(page) == ["batch"]
    await page.get_by_label("Search", exact=True).fill("no-such-app")
    await expect(page.locator("#app-empty")).to_be_visible()
    await expect(page.locator("#app-empty")).to_have_text("No application matches these filters.")
    await page.get_by_label("Search", exact=True).fill("")
    await expect(page.locator("#app-items [data-app]")).to_have_count(3)

    # the card view, and the browser remembers it
    await page.get_by_text("Cards", exact=True).click()
    await expect(page.locator("#app-items li.card")).to_have_count(3)
    await expect(page.locator("table.apps")).to_have_count(0)
    card = page.locator('#app-items [data-app="web"]')
    await expect(card.locator(".badge.sync")).to_have_text("Synced")
    await expect(card.locator(".badge.health")).to_have_text("Healthy")
    await page.goto(f"{server.url}/applications")
    await expect(page.locator("#app-items li.card")).to_have_count(3)
    await expect(page.get_by_label("Cards", exact=True)).to_be_checked()


async def test_changes_reach_the_open_list_without_reload(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    await _apps(server, env)
    page = await page_factory()
    fetched: list[list[str]] = []  # the names each live-update request asked for
    page.on(
        "request",
        lambda r: (
            fetched.append(parse_qs(urlsplit(r.url).query).get("name", []))
            if "/ui/app-rows" in r.url
            else None
        ),
    )
    await ui_login(page, server.url, "admin", server.admin_password)
    await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    await page.evaluate("window.__notReloaded = true")

    # git moves on; a refresh (the engine writing the status through the kube client) shows it
    env.repo.commit({"web/cm.yaml": dump(configmap("web", {"key": "new"}))})
    await env.refresh("web")
    await expect(row(page, "web").locator(".badge.sync")).to_have_text("OutOfSync", timeout=TIMEOUT)
    # Only the changed app was fetched: the stream's opening snapshot matched what the
    # page showed (the rows' signatures agree with the script's), so it cost nothing.
    assert fetched and all(names == ["web"] for names in fetched), fetched
    # a new app appears in name order, a deleted one goes, and the counts follow
    await store.save_app(
        server.kube,
        application_manifest(
            "aaa-new",
            env.apps_namespace,
            AppSource(repo_url=env.repo.url, path="batch"),
            Destination(namespace=env.namespace),
        ),
    )
    env.created.append("aaa-new")
    await expect(page.locator("#app-items [data-app]").first).to_have_attribute(
        "data-app", "aaa-new", timeout=TIMEOUT
    )
    await server.kube.delete(env.app_ref("batch"))
    await expect(row(page, "batch")).to_have_count(0, timeout=TIMEOUT)
    assert await visible_apps(page) == ["aaa-new", "api", "web"]
    await expect(page.locator("#app-counts .count-total")).to_have_text("3 applications")

    # under a filter, an app that stops matching leaves and one that starts matching comes
    await page.get_by_label("Sync", exact=True).select_option("OutOfSync")
    await expect(page.locator("#app-items [data-app]")).to_have_count(2)
    assert (await env.sync("api")).ok
    await expect(row(page, "api")).to_have_count(0, timeout=TIMEOUT)
    assert await visible_apps(page) == ["web"]
    assert await page.evaluate("window.__notReloaded") is True


async def test_phone_width_keyboard_and_dark_theme(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    await _apps(server, env)
    page = await page_factory(width=390, height=844)
    await ui_login(page, server.url, "admin", server.admin_password)
    for path, view in (
        ("/applications?view=table", "table"),
        ("/applications?view=cards", "cards"),
        ("/settings/repositories", ""),
        ("/settings/clusters", ""),
        ("/settings/projects", ""),
        ("/user", ""),
    ):
        await page.goto(server.url + path)
        if view:
            await expect(page.locator("#app-list")).to_have_attribute("data-view", view)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide at a 390 px viewport"
        if view:
            await screenshot(page, f"list-phone-{view}")

    # Tab through the list page: every stop is visibly focused and has a name.
    await page.goto(f"{server.url}/applications?view=table")
    stops = await tab_through(page)
    for wanted in (
        "#main",  # the skip link comes first
        "/applications",
        "/settings/repositories",
        "/user",
        "f-search",
        "f-sync",
        "f-health",
        "view-table",
        "/applications/web",
    ):
        assert wanted in stops, f"{wanted} not reachable with Tab: {stops}"
    assert stops[0] == "#main"

    # the dark theme follows the system
    dark = await page_factory(color_scheme="dark")
    await ui_login(dark, server.url, "admin", server.admin_password)
    rgb = await dark.evaluate("getComputedStyle(document.body).backgroundColor")
    r, g, b = (int(v) for v in re.findall(r"\d+", rgb)[:3])
    assert (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.2, rgb
    await expect(row(dark, "web").locator(".badge.sync")).to_have_text("Synced")
    await screenshot(dark, "list-dark")


async def test_a_team_sees_only_its_apps(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    env.repo.commit({"a/cm.yaml": dump(configmap("a")), "b/cm.yaml": dump(configmap("b"))})
    await env.create("team-a-web", path="a", spec={"project": "team-a"})
    await env.create("team-b-web", path="b", spec={"project": "team-b"})
    await _seen(server, "team-a-web", "team-b-web")
    await server.add_user("alice", "alice-password-1")
    await server.set_policy(
        "p, role:team-a, applications, get, team-a/*, allow\ng, alice, role:team-a\n"
    )
    page = await page_factory()
    await ui_login(page, server.url, "alice", "alice-password-1")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    assert await visible_apps(page) == ["team-a-web"]
    await expect(page.get_by_label("Project", exact=True).locator("option")).to_have_text(
        ["All", "team-a"]
    )
    # a team-b app that changes or appears is not pushed to alice's page either
    await server.kube.merge_patch(
        env.app_ref("team-b-web"), {"spec": {"source": {"targetRevision": "other"}}}
    )
    await server.kube.merge_patch(
        env.app_ref("team-a-web"), {"spec": {"source": {"targetRevision": "other"}}}
    )
    await expect(row(page, "team-a-web")).to_contain_text("@ other", timeout=TIMEOUT)
    assert await visible_apps(page) == ["team-a-web"]
    assert "team-b" not in await page.content()
    # and the user page says who alice is
    await page.get_by_role("link", name=re.compile("User info")).click()
    await expect(page.locator("#user-name")).to_have_text("alice")
    await expect(page.locator("#user-roles")).to_contain_text("role:team-a")


async def test_logout_ends_the_session_for_the_old_cookie(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    page = await page_factory()
    await ui_login(page, server.url, "admin", server.admin_password)
    cookie = next(c for c in await page.context.cookies() if c.get("name") == SESSION_COOKIE)
    await page.goto(f"{server.url}/user")
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(r"/login"))
    # the page is gone for the browser ...
    await page.goto(f"{server.url}/applications")
    assert "/login" in page.url
    # ... and the old cookie, replayed, opens nothing
    old = {SESSION_COOKIE: str(cookie.get("value", ""))}
    async with httpx.AsyncClient(base_url=server.url, cookies=old) as client:
        r = await client.get("/applications")
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), r.status_code
        assert (await client.get("/api/v1/applications")).status_code == 401
        # an htmx swap is told to move the whole tab to the login page, not to swap it in
        r = await client.get(
            "/ui/app-rows?name=web",
            headers={
                "HX-Request": "true",
                "HX-Current-URL": f"{server.url}/applications?sync=Synced",
            },
        )
        assert r.status_code == 401
        assert r.headers["hx-redirect"] == "/login?next=%2Fapplications%3Fsync%3DSynced"


@pytest.mark.parametrize(
    "path", ["/login?next=//evil.example/x", "/login?next=https://evil.example/"]
)
async def test_login_never_sends_the_browser_to_another_site(
    server: Server, env: AppEnv, page_factory: PageFactory, path: str
) -> None:
    page = await page_factory()
    await page.goto(server.url + path)
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill(server.admin_password)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await page.wait_for_url(f"{server.url}/applications")


async def test_admin_writes_settings_and_readonly_only_reads(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    page = await page_factory()
    page.on("dialog", lambda d: d.accept())  # the confirmation of each delete
    await ui_login(page, server.url, "admin", server.admin_password)

    # a repository's credentials: stored through the form, listed without the password
    await page.goto(f"{server.url}/settings/repositories")
    await page.get_by_label("Repository URL").fill("https://git.example.com/team/")
    await page.get_by_label("Username (https)").fill("git")
    await page.get_by_label("Password or token (https)").fill(REPO_PASSWORD)
    await page.get_by_role("button", name="Add repository").click()
    repo_row = page.locator('[data-repo="https://git.example.com/team/"]')
    await expect(repo_row).to_contain_text("username and password", timeout=TIMEOUT)
    await expect(page.locator("#toast")).to_have_text("Credentials stored.")
    await expect(page.get_by_label("Password or token (https)")).to_have_value("")
    assert REPO_PASSWORD not in await page.content()
    await page.get_by_role(
        "button", name="Remove the credentials for https://git.example.com/team/"
    ).click()
    await expect(repo_row).to_have_count(0, timeout=TIMEOUT)

    # a project, with its lists and destinations
    await page.goto(f"{server.url}/settings/projects")
    await page.get_by_label("Name", exact=True).fill("team-a")
    await page.get_by_label("Source repositories").fill("https://git.example.com/team-a/*")
    await page.get_by_label("Destinations").fill("team-a-* in-cluster\nshared")
    await page.get_by_role("button", name="Create project").click()
    card = page.locator('[data-project="team-a"]')
    await expect(card).to_contain_text("https://git.example.com/team-a/*", timeout=TIMEOUT)
    await expect(card).to_contain_text("team-a-* on in-cluster")
    await expect(card).to_contain_text("shared on *")
    # a refusal says why
    await page.get_by_label("Name", exact=True).fill("team-a")
    await page.get_by_role("button", name="Create project").click()
    await expect(page.locator("#toast")).to_contain_text("already exists", timeout=TIMEOUT)
    await card.get_by_role("button", name="Delete project team-a").click()
    await expect(card).to_have_count(0, timeout=TIMEOUT)

    # a cluster, whose token no page shows
    await page.goto(f"{server.url}/settings/clusters")
    await page.get_by_label("Name", exact=True).fill("edge")
    await page.get_by_label("API server URL").fill("https://127.0.0.1:6553")
    await page.get_by_label("Bearer token").fill(CLUSTER_TOKEN)
    await page.get_by_label("Skip TLS verification").check()
    await page.get_by_role("button", name="Register cluster").click()
    cluster_row = page.locator('[data-cluster="edge"]')
    await expect(cluster_row).to_contain_text("https://127.0.0.1:6553", timeout=TIMEOUT)
    assert CLUSTER_TOKEN not in await page.content()
    # the icon-only remove button and the form are reachable by keyboard, with names
    await page.reload()
    await screenshot(page, "settings-clusters")
    stops = await tab_through(page)
    for wanted in ("Remove cluster edge", "cluster-name", "cluster-token", "cluster-insecure"):
        assert wanted in stops, f"{wanted} not reachable with Tab: {stops}"

    # role:readonly reads the same lists and gets no write control
    await server.add_user("ro", "ro-password-1")
    await server.set_policy("g, ro, role:readonly\n")
    ro = await page_factory()
    await ui_login(ro, server.url, "ro", "ro-password-1", next="/settings/clusters")
    await expect(ro.locator('[data-cluster="edge"]')).to_be_visible()
    for path in ("/settings/clusters", "/settings/repositories", "/settings/projects"):
        await ro.goto(server.url + path)
        await expect(ro.locator("form.settings-form")).to_have_count(0)
        await expect(ro.locator("[hx-delete]")).to_have_count(0)

    await cluster_row.get_by_role("button", name="Remove cluster edge").click()
    await expect(cluster_row).to_have_count(0, timeout=TIMEOUT)


async def test_login_page_offers_the_configured_oidc_provider(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    page = await page_factory()
    await page.goto(f"{server.url}/login?next=/settings/projects")
    await expect(page.get_by_role("link", name=re.compile("Log in with"))).to_have_count(0)

    await server.kube.merge_patch(
        ObjectRef("", "v1", "ConfigMap", server.namespace, "gitmoor-cm"),
        {
            "data": {
                "oidc.config": "name: Corp SSO\nissuer: https://sso.example.test\nclientID: gitmoor\n"
            }
        },
    )

    async def configured() -> bool:
        return server.state.oidc is not None

    await wait_for(configured, within=10, what="the OIDC provider loaded by the server")
    await page.reload()
    button = page.get_by_role("link", name="Log in with Corp SSO")
    # the OIDC login returns to the page the user was going to
    assert await button.get_attribute("href") == "/auth/login?return_url=%2Fsettings%2Fprojects"
