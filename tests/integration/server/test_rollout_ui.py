"""A Rollout of an app through the server: `GET/POST /api/v1/applications/NAME/rollout`
and the Rollout page of the web UI in a real browser.

The app holds a blue-green Rollout synced from Git; its status (paused before the
switch, as a controller leaves it) is written through the status subresource, so
no Rollout controller runs. Reading needs ``applications, get`` on the app, an
action ``applications, sync``; a Rollout the app does not hold is not reachable.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import expect

from gitmoor.engine import status_of
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.rollouts.crds import install_rollout_crds, rollout_crds_state
from support.apps import dump
from support.browser import ui_login

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.browser import PageFactory

    from .conftest import Server

API = "/api/v1/applications/web/rollout"
TIMEOUT = 20_000
JSON = dict[str, Any]


async def _crds(kube: KubeClient) -> None:
    """gitmoor's Argo Rollouts CRDs, installed if absent (cluster-wide, shared: never removed)."""
    state = await rollout_crds_state(kube)
    if state == "foreign":
        pytest.fail("Argo Rollouts' own CRDs are installed in the test cluster", pytrace=False)
    if state == "absent":
        await install_rollout_crds(kube)


def _rollout() -> JSON:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "web:2"}]},
            },
            "strategy": {
                "blueGreen": {
                    "activeService": "web-active",
                    "previewService": "web-preview",
                    "autoPromotionEnabled": False,
                }
            },
        },
    }


async def _app_with_paused_rollout(server: Server, env: AppEnv) -> ObjectRef:
    await _crds(server.kube)
    env.repo.commit({"rollout.yaml": dump(_rollout())})
    await env.create("web")
    assert (await env.sync("web")).ok
    ref = ObjectRef("argoproj.io", "v1alpha1", "Rollout", env.namespace, "web")
    await server.kube.merge_patch(
        ref,
        {
            "status": {
                "phase": "Paused",
                "message": "BlueGreenPause",
                "pauseConditions": [
                    {"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}
                ],
                "currentPodHash": "bbb",
                "stableRS": "aaa",
                "blueGreen": {"activeSelector": "aaa", "previewSelector": "bbb"},
            }
        },
        subresource="status",
    )

    async def seen() -> bool:
        app = server.state.apps.get("web")
        return app is not None and status_of(app).sync_status == "Synced"

    await wait_for(seen, within=15, what="web synced in the server's watch")
    return ref


async def _pause_conditions(server: Server, ref: ObjectRef) -> Any:
    return ((await server.kube.get(ref) or {}).get("status") or {}).get("pauseConditions")


async def test_the_api_reads_and_acts_with_rbac(
    server: Server, env: AppEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gitmoor.server.audit")
    ref = await _app_with_paused_rollout(server, env)
    where = {"namespace": env.namespace, "name": "web"}
    admin = await server.login()

    r = await admin.get(API, params=where)
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["strategy"], view["status"], view["pauseReasons"]) == (
        "BlueGreen",
        "Paused",
        ["BlueGreenPause"],
    )
    assert [s["role"] for s in view["services"]] == ["active", "preview"]

    # a Rollout the app does not hold is not reachable, even for an admin
    r = await admin.get(API, params={**where, "name": "other"})
    assert r.status_code == 404, r.text
    r = await admin.post(API, params={**where, "name": "other"}, json={"action": "abort"})
    assert r.status_code == 404, r.text

    await server.add_user("viewer", "viewer-password-1")
    await server.add_user("deployer", "deployer-password-1")
    await server.add_user("stranger", "stranger-password-1")
    await server.set_policy(
        "p, viewer, applications, get, default/web, allow\n"
        "p, deployer, applications, get, default/web, allow\n"
        "p, deployer, applications, sync, default/web, allow\n"
    )
    viewer = await server.login("viewer", "viewer-password-1")
    assert (await viewer.get(API, params=where)).status_code == 200
    r = await viewer.post(API, params=where, json={"action": "promote"})
    assert r.status_code == 403, r.text
    assert await _pause_conditions(server, ref)  # unchanged

    stranger = await server.login("stranger", "stranger-password-1")
    assert (await stranger.get(API, params=where)).status_code == 403

    deployer = await server.login("deployer", "deployer-password-1")
    r = await deployer.post(API, params=where, json={"action": "promote"})
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "rollout 'web' promoted"
    assert r.json()["rollout"]["pauseReasons"] == []
    assert await _pause_conditions(server, ref) is None
    # audited as the app's operations are: who, what, on which Rollout
    assert any(
        "who=deployer action=rollout-promote" in m and f"Rollout {env.namespace}/web" in m
        for m in caplog.messages
    ), caplog.messages

    r = await deployer.post(API, params=where, json={"action": "abort"})
    assert r.status_code == 200, r.text
    assert ((await server.kube.get(ref) or {})["status"])["abort"] is True
    r = await deployer.post(API, params=where, json={"action": "abort", "full": True})
    assert r.status_code == 400, r.text


async def test_the_rollout_page_promotes(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    ref = await _app_with_paused_rollout(server, env)
    page = await page_factory()
    await ui_login(page, server.url, "admin", server.admin_password)
    await page.goto(f"{server.url}/applications/web")
    await page.get_by_role("link", name="Rollout view").click()
    await expect(page.get_by_role("heading", name="Rollout web")).to_be_visible(timeout=TIMEOUT)
    await expect(page.locator(".rollout-status")).to_have_text("Paused", timeout=TIMEOUT)
    await expect(page.locator(".rollout-pause")).to_have_text("BlueGreenPause")
    await expect(page.locator('[data-service-role="active"]')).to_contain_text("web-active")

    await page.get_by_role("button", name="Promote", exact=True).click()
    await expect(page.locator("#rollout-notice")).to_have_text(
        "rollout 'web' promoted", timeout=TIMEOUT
    )

    async def promoted() -> bool:
        return await _pause_conditions(server, ref) is None

    await wait_for(promoted, within=10, what="the Rollout's pause conditions cleared")
    # the view reloads and no longer shows the pause
    await expect(page.locator(".rollout-pause")).to_have_count(0, timeout=TIMEOUT)

    # a reader sees the view but no buttons
    await server.add_user("viewer", "viewer-password-1")
    await server.set_policy("p, viewer, applications, get, default/web, allow\n")
    reader = await page_factory()
    await ui_login(reader, server.url, "viewer", "viewer-password-1")
    await reader.goto(f"{server.url}/applications/web/rollouts/{env.namespace}/web")
    await expect(reader.get_by_role("heading", name="Rollout web")).to_be_visible(timeout=TIMEOUT)
    await expect(reader.get_by_role("button", name="Promote", exact=True)).to_have_count(0)
