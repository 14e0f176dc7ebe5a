"""The browser scenario of the web UI (issue 12, "Must show: a real browser"),
in Debian's Chromium driven by Playwright, against a real ``gitmoor server``,
a real controller, a real git repository and the local control plane:

1. log in; 2. see the apps; 3. open one and see its tree with Pods; 4. commit a
change to Git, press Refresh and watch the app go OutOfSync live (no reload),
and read the change in the diff; 5. sync from the dialog and watch it become
Synced and Healthy; 6. open the diff (now empty) and a pod's log; 7. roll back
from history (automated sync switched off, as the dialog says); 8. log out,
after which the old cookie no longer works.

Each step is photographed in the light and the dark theme (the page follows
``prefers-color-scheme``; Playwright emulates it) into
``test-artifacts/ui/scenario/``. A second test checks that a team-a user cannot
open a team-b app's page nor read its diff or logs through the UI's routes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from playwright.async_api import Page, expect

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import GitmoorError
from gitmoor.server.auth.sessions import SESSION_COOKIE
from gitmoor.testenv.controlplane import POD_LOG
from support.apps import SYNC_WAVE, configmap, deployment, dump, secret, service, slow_deployment
from support.browser import ui_login
from support.secret_values import SECRET_VALUE

if TYPE_CHECKING:
    from gitmoor.controller import Controller
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.browser import PageFactory

    from .conftest import Server

REPO_ROOT = Path(__file__).resolve().parents[3]
SHOTS = REPO_ROOT / "test-artifacts" / "ui" / "scenario"
#: every wait for the page: generous, since two cores serve the control plane too
UI_TIMEOUT = 30_000

APP = "guestbook"
OTHER = "notes"


def guestbook(greeting: str, replicas: int) -> str:
    web = deployment("web", replicas=replicas)
    return dump(
        configmap("settings", {"greeting": greeting}),
        secret("db", {"password": SECRET_VALUE}),
        web,
        service("web"),
    )


async def shoot(page: Page, step: str, *, full_page: bool = True) -> None:
    """The page as it is now, in the light and the dark theme (a dialog is shot
    in the viewport it covers, not the whole page)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        await page.screenshot(path=str(SHOTS / f"{step}-{scheme}.png"), full_page=full_page)
    await page.emulate_media(color_scheme="light")


async def app_status(server: Server, name: str) -> dict[str, Any]:
    """The app's status as the API reports it."""
    app = server.state.apps.get(name)
    assert app is not None
    return app.status


async def test_browser_scenario(
    server: Server, env: AppEnv, kube: KubeClient, controller: Controller, page_factory: PageFactory
) -> None:
    first = env.repo.commit(
        {
            "guestbook/all.yaml": guestbook("hello", replicas=2),
            "notes/cm.yaml": dump(configmap("notes", {"text": "n"})),
        },
        "first",
    )
    await env.create(APP, path="guestbook")
    await env.create(OTHER, path="notes")
    admin = await server.login()
    # The starting point: guestbook synced once (its history entry 0, what step 7
    # goes back to), with its pods running.
    r = await admin.post(f"/api/v1/applications/{APP}/sync", json={})
    assert r.status_code == 202, r.text

    async def settled(name: str, history: int) -> bool:
        st = await app_status(server, name)
        return (
            (st.get("sync") or {}).get("status") == "Synced"
            and (st.get("health") or {}).get("status") == "Healthy"
            and len(st.get("history") or []) == history
            and (st.get("operationState") or {}).get("phase") == "Succeeded"
        )

    await wait_for(lambda: settled(APP, 1), within=60, what=f"{APP} synced and healthy")
    page = await page_factory()
    page.set_default_timeout(UI_TIMEOUT)
    expect.set_options(timeout=UI_TIMEOUT)

    # ---- 1. log in
    await page.goto(f"{server.url}/applications/{APP}")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await shoot(page, "1-login")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill(server.admin_password)
    await page.get_by_role("button", name="Log in").click()
    # The login page sends the browser back where it wanted to go: the app page.
    await expect(page).to_have_url(re.compile(rf"/applications/{APP}$"))

    # ---- 2. see the apps
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Applications").click()
    )
    await expect(page).to_have_url(re.compile(r"/applications$"))
    for name in (APP, OTHER):
        await expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    await shoot(page, "2-applications")

    # ---- 3. open one: its tree, with Pods under the Deployment's ReplicaSet
    await page.get_by_role("link", name=APP, exact=True).first.click()
    await expect(page).to_have_url(re.compile(rf"/applications/{APP}$"))
    tree = page.locator("#tree")
    pods = tree.locator('.node[data-kind="Pod"]')
    await expect(pods).to_have_count(2)
    await expect(tree.locator('.node[data-kind="ReplicaSet"]')).to_have_count(1)
    await expect(tree.locator('.node[data-kind="Deployment"] .badge.health')).to_have_text(
        "Healthy"
    )
    # Collapsible: the Deployment's toggle hides its ReplicaSet and Pods.
    toggle = tree.get_by_role("button", name="Collapse Deployment web")
    await toggle.click()
    await expect(tree.get_by_role("button", name="Expand Deployment web")).to_have_attribute(
        "aria-expanded", "false"
    )
    await expect(pods.first).to_be_hidden()
    await tree.get_by_role("button", name="Expand Deployment web").click()
    await expect(pods.first).to_be_visible()
    status = page.locator("#app-status")
    await expect(status.locator(".badge.sync")).to_have_text("Synced")
    await shoot(page, "3-app-tree")

    # ---- 4. a commit; Refresh; OutOfSync arrives over SSE, without a reload
    await page.evaluate("window.__sameDocument = true")
    second = env.repo.commit({"guestbook/all.yaml": guestbook("hello again", replicas=3)}, "more")
    await page.get_by_role("button", name="Refresh", exact=True).click()
    await expect(page.locator("#app-notice")).to_have_text("normal refresh requested")
    await expect(status.locator(".badge.sync")).to_have_text("OutOfSync")
    await expect(tree.locator('.node[data-kind="ConfigMap"] .badge.sync')).to_have_text("OutOfSync")
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    # The diff of the ConfigMap, from its panel.
    await tree.locator('.node[data-kind="ConfigMap"]').get_by_role("button").first.click()
    panel = page.locator("#node-panel")
    await expect(panel).to_be_visible()
    await panel.get_by_role("tab", name="Diff").click()
    body = panel.locator("#panel-body")
    await expect(body.locator(".dl-del")).to_contain_text(["greeting: hello"])
    await expect(body.locator(".dl-add")).to_contain_text(["greeting: hello again"])
    await shoot(page, "4-out-of-sync-diff", full_page=False)
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()

    # ---- 5. sync from the dialog; Synced and Healthy arrive live
    await page.get_by_role("button", name="Sync…").click()
    dialog = page.locator("#sync-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Prune")).to_be_visible()
    await expect(dialog.get_by_label("Dry run")).not_to_be_checked()
    await shoot(page, "5a-sync-dialog", full_page=False)
    await dialog.get_by_role("button", name="Synchronize").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#app-notice")).to_contain_text("sync")
    await expect(status.locator(".badge.sync")).to_have_text("Synced")
    await expect(status.locator(".badge.health")).to_have_text("Healthy")
    await expect(status.locator(".badge.phase")).to_have_text("Succeeded")
    await expect(pods).to_have_count(3)
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    assert (await app_status(server, APP))["sync"]["revision"] == second
    await shoot(page, "5b-synced")

    # ---- 6. the diff (nothing left), a Secret's manifests (masked) and a pod's log
    await page.locator('.node[data-kind="Application"]').get_by_role("button").first.click()
    await panel.get_by_role("tab", name="Diff").click()
    await expect(body.locator("[data-diff-empty]")).to_contain_text("No difference")
    # the app's Events: the audit trail of what this scenario asked for
    await panel.get_by_role("tab", name="Events").click()
    await expect(body.locator(".event").first).to_be_visible()
    await page.keyboard.press("Escape")
    await tree.locator('.node[data-kind="Secret"]').get_by_role("button").first.click()
    for tab in ("Live manifest", "Desired manifest"):
        await panel.get_by_role("tab", name=tab).click()
        await expect(body.locator("pre")).to_contain_text("password: <redacted:")
        assert SECRET_VALUE not in await body.inner_text()
    await page.keyboard.press("Escape")
    await pods.first.get_by_role("button").first.click()
    await expect(panel.get_by_role("tab", name="Logs")).to_be_visible()
    await panel.get_by_role("tab", name="Logs").click()
    await expect(body.get_by_role("combobox", name="Container")).to_have_value("main")
    # The log goes API server → node (kwok serves a fixed log for every container,
    # testenv ClusterLogs). A control plane started before that configuration
    # sends pods/log to port 10250, where nothing listens: then the panel must
    # show the API server's own answer, which is what a user needs to read.
    pod_name = await pods.first.get_attribute("data-name")
    assert pod_name
    try:
        served = await kube.logs(env.namespace, pod_name, container="main", tail_lines=200)
    except GitmoorError as e:
        served = None
        refusal = str(e)
    if served is not None:
        await expect(body.locator(".logs-text")).to_contain_text(POD_LOG[-1])
    else:
        error = body.locator(".logs-error")
        await expect(error).to_contain_text("the API server could not serve the log")
        await expect(error).to_contain_text(refusal.split(": ", 1)[-1][:60])
    await shoot(page, "6-pod-log", full_page=False)
    await page.keyboard.press("Escape")

    # ---- 7. roll back to the first sync from history. Automation is on first (a
    # spec change the page shows live), and the rollback switches it off.
    await store.patch_spec(
        kube, await env.app(APP), {"syncPolicy": {"automated": {"prune": False}}}
    )
    automation = status.locator(".fact-automation dd")
    await expect(automation).to_have_text("on")
    history = page.locator("#history")
    await expect(history.locator(".history-entry")).to_have_count(2)
    await history.get_by_role("button", name=re.compile(rf"Roll back to .*\({first[:8]}\)")).click()
    confirm = page.locator("#confirm-dialog")
    await expect(confirm).to_contain_text("Automated sync will be switched off")
    await shoot(page, "7a-rollback-confirm", full_page=False)
    await confirm.get_by_role("button", name="Confirm").click()
    await expect(confirm).to_be_hidden()
    await expect(history.locator(".history-entry")).to_have_count(3)
    await expect(history.locator(".history-entry").first).to_contain_text(first[:8])
    await expect(status.locator(".badge.phase")).to_have_text("Succeeded")
    await expect(pods).to_have_count(2)
    await expect(automation).to_have_text("off (manual)")
    cm = await env.get(env.cm("settings"))
    assert cm is not None and cm["data"]["greeting"] == "hello"
    await shoot(page, "7b-rolled-back")

    # ---- 8. log out; the old cookie is dead
    cookie = next(c for c in await page.context.cookies() if c["name"] == SESSION_COOKIE)
    await page.get_by_role("link", name=re.compile("User info")).click()
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login"))
    await shoot(page, "8-logged-out")
    async with httpx.AsyncClient(
        base_url=server.url, cookies={SESSION_COOKIE: cookie["value"]}, timeout=30
    ) as old:
        r = await old.get(f"/api/v1/applications/{APP}")
        assert r.status_code == 401, r.text
        r = await old.get(f"/applications/{APP}", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")


async def test_app_page_on_a_phone_and_by_keyboard(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    """390 px wide: the page never scrolls sideways, the graph scrolls in its own
    box, the node panel takes the screen. Every control is reached with Tab,
    visibly focused and named; the sync dialog keeps the focus inside while open
    and gives it back to its button when closed."""
    env.repo.commit({"guestbook/all.yaml": guestbook("hello", replicas=2)})
    await env.create(APP, path="guestbook")
    await env.sync(APP)
    await env.healthy(APP)
    page = await page_factory(width=390, height=844)
    page.set_default_timeout(UI_TIMEOUT)
    expect.set_options(timeout=UI_TIMEOUT)
    await ui_login(page, server.url, "admin", server.admin_password, next=f"/applications/{APP}")
    tree = page.locator("#tree")
    await expect(tree.locator('.node[data-kind="Pod"]')).to_have_count(2)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the app page is {width} px wide at a 390 px viewport"
    box = await tree.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert box[0] > box[1], f"the graph should scroll inside its box: {box}"
    await shoot(page, "phone-app-page")
    await tree.locator('.node[data-kind="Pod"]').first.get_by_role("button").first.click()
    panel = page.locator("#node-panel")
    await expect(panel.locator("#panel-body pre")).to_contain_text("kind: Pod")
    assert (await panel.bounding_box() or {}).get("width") == 390
    await shoot(page, "phone-node-panel", full_page=False)
    await page.keyboard.press("Escape")

    # Tab through the page: each stop visibly focused, with an accessible name.
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto(f"{server.url}/applications/{APP}")
    stops: list[str] = []
    for _ in range(80):
        await page.keyboard.press("Tab")
        focused = page.locator(":focus")
        if await focused.count() == 0:
            break
        info = await focused.evaluate(
            """el => { const s = getComputedStyle(el);
                 return { key: el.id || el.getAttribute('href') || el.textContent.trim(),
                          visible: el.matches(':focus-visible') && s.outlineStyle !== 'none'
                                   && parseFloat(s.outlineWidth) >= 2 }; }"""
        )
        if stops and info["key"] == stops[0]:
            break
        stops.append(info["key"])
        assert info["visible"], f"no visible focus on {info['key']}"
        await expect(focused).to_have_accessible_name(re.compile(r"\S"))
    for wanted in ("sync-button", "refresh-button", "hard-refresh-button", "tree"):
        assert wanted in stops, f"{wanted} not reachable with Tab: {stops}"
    assert any(k.startswith("toggle-") for k in stops), stops
    assert any(k.startswith("open-") for k in stops), stops

    # The sync dialog by keyboard: opens on Enter, holds the focus, Escape gives it back.
    await page.locator("#sync-button").focus()
    await page.keyboard.press("Enter")
    dialog = page.locator("#sync-dialog")
    await expect(dialog).to_be_visible()
    # showModal() makes the page behind inert: Tab cycles through the dialog (and
    # the browser's own UI, where the document has no focused element).
    visited: set[str] = set()
    for _ in range(12):
        await page.keyboard.press("Tab")
        where = await page.evaluate(
            """() => { const a = document.activeElement;
                 if (!a || a === document.body) return 'browser';
                 return document.getElementById('sync-dialog').contains(a)
                   ? 'dialog:' + (a.id || a.name || a.value) : 'page:' + (a.id || a.tagName); }"""
        )
        assert not where.startswith("page:"), f"the focus left the open sync dialog: {where}"
        visited.add(where)
    assert {"dialog:sync-revision", "dialog:sync-prune", "dialog:sync-submit"} <= visited
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#sync-button")).to_be_focused()


async def test_a_team_cannot_open_another_teams_app_in_the_ui(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    """alice (team-a) gets the 403 page for a team-b app, and the UI's own routes
    for its diff, manifests and logs answer 403 too; her own team's page works."""
    env.repo.commit({"a/cm.yaml": dump(configmap("a")), "b/cm.yaml": dump(configmap("b"))})
    await env.create("team-a-web", path="a", spec={"project": "default"})
    await env.create("team-b-web", path="b", spec={"project": "team-b"})

    async def seen() -> bool:
        return all(server.state.apps.get(n) is not None for n in ("team-a-web", "team-b-web"))

    await wait_for(seen, within=10, what="both apps seen by the server")
    await server.add_user("alice", "alice-password-1")
    await server.set_policy(
        "p, role:team-a, applications, get, default/*, allow\n"
        "p, role:team-a, logs, get, default/*, allow\n"
        "g, alice, role:team-a\n"
    )
    page = await page_factory()
    page.set_default_timeout(UI_TIMEOUT)
    await ui_login(page, server.url, "alice", "alice-password-1")

    response = await page.goto(f"{server.url}/applications/team-b-web")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("403 Forbidden")
    assert "cm.yaml" not in await page.content()
    await shoot(page, "team-b-forbidden")
    for path in (
        "panel/diff?kind=ConfigMap&name=b",
        "panel/live?kind=ConfigMap&name=b",
        "panel/logs?kind=Pod&name=b-pod",
        "part/tree",
        "part/history",
    ):
        r = await page.request.get(f"{server.url}/applications/team-b-web/{path}")
        assert r.status == 403, f"{path}: {r.status}"
        assert "permission denied" in await r.text()

    # the control: her own team's page and its diff panel
    response = await page.goto(f"{server.url}/applications/team-a-web")
    assert response is not None and response.status == 200
    await expect(page.locator(".node[data-kind='Application']")).to_have_count(1)
    r = await page.request.get(
        f"{server.url}/applications/team-a-web/panel/diff?group=gitmoor.io&kind=Application"
        f"&namespace={env.apps_namespace}&name=team-a-web"
    )
    assert r.status == 200, await r.text()
    # she may not sync: no Sync button, no rollback
    await expect(page.get_by_role("button", name="Sync…")).to_have_count(0)


async def test_terminate_a_running_sync_from_the_page(
    server: Server, env: AppEnv, controller: Controller, page_factory: PageFactory
) -> None:
    """A sync that waits (wave 0's Deployment turns Ready only after two minutes)
    shows a Terminate button live; terminating stops it before wave 1."""
    env.repo.commit(
        {
            "slow/all.yaml": dump(
                slow_deployment("slow", 120, wave="0"),
                configmap("after", annotations={SYNC_WAVE: "1"}),
            )
        }
    )
    await env.create("slow", path="slow")
    page = await page_factory()
    page.set_default_timeout(UI_TIMEOUT)
    expect.set_options(timeout=UI_TIMEOUT)
    await ui_login(page, server.url, "admin", server.admin_password, next="/applications/slow")
    terminate = page.get_by_role("button", name="Terminate")
    await expect(terminate).to_be_hidden()
    await page.get_by_role("button", name="Sync…").click()
    await page.locator("#sync-dialog").get_by_role("button", name="Synchronize").click()
    status = page.locator("#app-status")
    await expect(status.locator(".badge.phase")).to_have_text("Running")
    await expect(terminate).to_be_visible()
    await terminate.click()
    confirm = page.locator("#confirm-dialog")
    await expect(confirm).to_contain_text("Terminate the operation on slow?")
    await confirm.get_by_role("button", name="Confirm").click()
    await expect(status.locator(".badge.phase")).to_have_text("Failed")
    await expect(status.locator("#operation-message")).to_contain_text("operation terminated")
    await expect(terminate).to_be_hidden()
    assert await env.get(env.cm("after")) is None, "wave 1 ran after the terminate"


async def test_selective_sync_from_the_dialog(
    server: Server, env: AppEnv, controller: Controller, page_factory: PageFactory
) -> None:
    """The dialog lists the app's objects; unchecking one syncs only the others."""
    env.repo.commit({"two/all.yaml": dump(configmap("wanted"), configmap("left-out"))})
    await env.create("two", path="two")
    page = await page_factory()
    page.set_default_timeout(UI_TIMEOUT)
    expect.set_options(timeout=UI_TIMEOUT)
    await ui_login(page, server.url, "admin", server.admin_password, next="/applications/two")
    status = page.locator("#app-status")
    # the controller's first comparison arrives live, and with it the object list
    await expect(status.locator(".badge.sync")).to_have_text("OutOfSync")
    dialog = page.locator("#sync-dialog")
    await page.get_by_role("button", name="Sync…").click()
    boxes = dialog.locator("[data-sync-resource]")
    await expect(boxes).to_have_count(2)
    await dialog.get_by_label(re.compile(r"ConfigMap left-out")).uncheck()
    await expect(dialog.get_by_label(re.compile(r"All objects"))).not_to_be_checked()
    await dialog.get_by_role("button", name="Synchronize").click()
    await expect(dialog).to_be_hidden()
    await expect(status.locator(".badge.phase")).to_have_text("Succeeded")
    assert await env.get(env.cm("wanted")) is not None
    assert await env.get(env.cm("left-out")) is None
