"""One redaction policy for every output of the server (issue 13), through the real
server, the real control plane and a real git repository.

The app ``vault`` holds a Secret and a ConfigMap, and names a redaction rule for
the ConfigMap (``spec.redactions: [{kind: ConfigMap, fields: ["data.*token*"]}]``).
After a sync, git moves on: one value of the Secret and the ConfigMap's token
change, the others stay. Then every view of the app, in the API and in the web
UI (Chromium), shows ``<redacted:…>`` masks and never a plaintext: the resource
manifests, the diff, the Events (one quoting a value), the app's JSON and its SSE
message (a condition quoting a value), the tree, the history. A changed value
shows two different masks, an unchanged one the same mask on both sides, and a
field no rule names stays readable. ``showSecrets`` on the rendered manifests
needs the right to read each hidden object and is audited.

Every plaintext here is added to the server tests' ``SecretGuard``, which fails
the test if one reaches any response, SSE message, log line or Event.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import TYPE_CHECKING, Any

import httpx
from playwright.async_api import expect

from gitmoor.engine import status_of, store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.secrets.redact import is_mask
from support.apps import configmap, diff_changes, dump, secret
from support.browser import ui_login

if TYPE_CHECKING:
    from conftest import Server
    from support.apps import AppEnv
    from support.browser import PageFactory

API = "/api/v1"
APP = "vault"
#: waits for the page: generous, two cores serve the control plane too
UI_TIMEOUT = 20_000

PASSWORD_OLD = "redaction-pw-old-71c2e9"
PASSWORD_NEW = "redaction-pw-new-0d5b38"
USER = "redaction-user-e4a613"
TOKEN_OLD = "redaction-token-old-5a90fd"
TOKEN_NEW = "redaction-token-new-b81c47"
PLAINTEXTS = (PASSWORD_OLD, PASSWORD_NEW, USER, TOKEN_OLD, TOKEN_NEW)
RULES = [{"kind": "ConfigMap", "fields": ["data.*token*"]}]


def _manifests(password: str, token: str) -> str:
    return dump(
        secret("creds", {"password": password, "user": USER}),
        configmap("settings", {"api-token": token, "color": "blue"}),
    )


def _clean(text: str) -> None:
    for value in PLAINTEXTS:
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text


async def _vault(server: Server, env: AppEnv) -> None:
    """``vault`` synced at the old values, then git at the new ones."""
    for value in PLAINTEXTS:
        server.guard.add(value, "a value the redaction policy hides")
    env.repo.commit({"vault/all.yaml": _manifests(PASSWORD_OLD, TOKEN_OLD)})
    await env.create(APP, path="vault", spec={"redactions": RULES})
    result = await env.sync(APP)
    assert result.ok, result.message

    async def synced() -> bool:
        app = server.state.apps.get(APP)
        return app is not None and status_of(app).sync_status == "Synced"

    await wait_for(synced, within=15, what=f"{APP} synced in the server's watch")
    env.repo.commit({"vault/all.yaml": _manifests(PASSWORD_NEW, TOKEN_NEW)})


async def _resource(client: httpx.AsyncClient, env: AppEnv, kind: str, name: str) -> Any:
    r = await client.get(
        f"{API}/applications/{APP}/resource",
        params={"kind": kind, "namespace": env.namespace, "name": name},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _quoting_event(server: Server, env: AppEnv, uid: str) -> ObjectRef:
    """An Event on the ConfigMap that quotes its token, as a controller echoing a
    refused value would write it."""
    name = f"settings.{secrets.token_hex(6)}"
    await server.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": env.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "namespace": env.namespace,
                "name": "settings",
                "uid": uid,
            },
            "reason": "TokenRefused",
            "message": f"token {TOKEN_OLD} was refused",
            "type": "Warning",
            "source": {"component": "some-operator"},
        }
    )
    return ObjectRef("", "v1", "Event", env.namespace, name)


async def _quoting_condition(server: Server, value: str = TOKEN_OLD) -> None:
    """A condition that quotes ``value``, as a tool's error echoing it would
    (status is writable by more than gitmoor)."""
    await server.kube.merge_patch(
        store.app_ref(APP, server.namespace),
        {
            "status": {
                "conditions": [
                    {
                        "type": "ComparisonError",
                        "message": f"the tool said: bad token {value}",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            }
        },
        subresource="status",
    )

    async def seen() -> bool:
        app = server.state.apps.get(APP)
        return app is not None and any(value in c.message for c in status_of(app).conditions)

    await wait_for(seen, within=15, what="the condition in the server's watch")


async def test_every_api_view_masks_and_shows_a_change_as_a_change(
    server: Server, env: AppEnv
) -> None:
    await _vault(server, env)
    admin = server.bearer(await server.token())

    # ---- one object's manifests: live (old values) and desired (new values)
    s = await _resource(admin, env, "Secret", "creds")
    live, desired = s["live"]["data"], s["desired"]["data"]
    assert all(is_mask(v) for v in (*live.values(), *desired.values())), s
    assert live["password"] != desired["password"], "a changed value shows as changed"
    assert live["user"] == desired["user"], "an unchanged value shows as unchanged"
    assert f"password: {live['password']}" in s["liveYaml"]
    pw_old, pw_new = live["password"], desired["password"]

    c = await _resource(admin, env, "ConfigMap", "settings")
    assert is_mask(c["live"]["data"]["api-token"])
    assert c["live"]["data"]["api-token"] != c["desired"]["data"]["api-token"]
    assert c["live"]["data"]["color"] == c["desired"]["data"]["color"] == "blue"
    tk_old, tk_new = c["live"]["data"]["api-token"], c["desired"]["data"]["api-token"]
    assert "last-applied-configuration" not in json.dumps(c["live"]["metadata"])

    # ---- the diff: the same masks, on the lines that changed only
    r = await admin.get(f"{API}/applications/{APP}/diff")
    assert r.status_code == 200, r.text
    diffs = {i["kind"]: i["diff"] for i in r.json()["items"]}
    removed, added = diff_changes(diffs["Secret"])
    assert f"password: {pw_old}" in removed and f"password: {pw_new}" in added
    assert not any(line.startswith("user:") for line in removed + added)
    removed, added = diff_changes(diffs["ConfigMap"])
    assert removed == [f"api-token: {tk_old}"] and added == [f"api-token: {tk_new}"]

    # ---- Events: one quoting the token shows its mask
    event = await _quoting_event(server, env, c["live"]["metadata"]["uid"])
    try:
        r = await admin.get(f"{API}/applications/{APP}/events")
        assert r.status_code == 200, r.text
        (quoted,) = [e for e in r.json()["items"] if e["reason"] == "TokenRefused"]
        assert quoted["message"] == f"token {tk_old} was refused"
    finally:
        await server.kube.delete(event)

    # ---- the app's JSON, its list entry and its SSE message: the condition scrubbed
    await _quoting_condition(server)
    expected = f"ComparisonError: the tool said: bad token {tk_old}"
    r = await admin.get(f"{API}/applications/{APP}")
    assert r.status_code == 200, r.text
    assert r.json()["conditions"] == [expected]
    listed = (await admin.get(f"{API}/applications")).json()["items"]
    assert [a["conditions"] for a in listed if a["name"] == APP] == [[expected]]
    async with admin.stream("GET", f"{API}/stream/applications", params={"name": APP}) as sse:
        async for line in sse.aiter_lines():
            if line.startswith("data:"):
                assert json.loads(line[5:])["conditions"] == [expected]
                break

    # ---- the tree and the history answer too (the guard reads every byte)
    for part in ("tree", "history"):
        r = await admin.get(f"{API}/applications/{APP}/{part}")
        assert r.status_code == 200, r.text


async def test_a_value_only_the_cluster_holds_is_scrubbed_from_the_status(
    server: Server, env: AppEnv
) -> None:
    """A token changed in the cluster by hand (drift no gitmoor code has read yet)
    and quoted by a condition: the app's JSON reads the app's redacted objects
    before it shows the status, so the value shows as its mask all the same."""
    await _vault(server, env)
    drifted = f"redaction-token-drift-{secrets.token_hex(4)}"
    server.guard.add(drifted, "a value set in the cluster by hand")
    await server.kube.merge_patch(env.cm("settings"), {"data": {"api-token": drifted}})
    await _quoting_condition(server, drifted)
    admin = server.bearer(await server.token())
    r = await admin.get(f"{API}/applications/{APP}")
    assert r.status_code == 200, r.text
    (condition,) = r.json()["conditions"]
    mask = condition.rsplit(" ", 1)[1]
    assert is_mask(mask), condition
    c = await _resource(admin, env, "ConfigMap", "settings")
    assert c["live"]["data"]["api-token"] == mask, "the mask the live manifest shows"


async def test_show_secrets_needs_the_right_to_read_each_hidden_object_and_is_audited(
    server: Server, env: AppEnv
) -> None:
    await _vault(server, env)
    await server.add_user("viewer", "viewer-password-1")
    await server.add_user("reader", "reader-password-1")
    await server.set_policy(
        "g, viewer, role:readonly\n"
        "g, reader, role:readonly\n"
        # Secrets of the app, but not the redacted ConfigMap
        "p, reader, applications, get//Secret/*/*, */*, allow\n"
    )
    url = f"{API}/applications/{APP}/manifests"
    viewer = await server.login("viewer", "viewer-password-1")
    r = await viewer.get(url)
    assert r.status_code == 200, r.text
    assert not r.json()["secretsShown"]
    shown = {m["kind"]: m for m in r.json()["manifests"]}
    assert is_mask(shown["Secret"]["data"]["password"])
    assert is_mask(shown["ConfigMap"]["data"]["api-token"])
    assert shown["ConfigMap"]["data"]["color"] == "blue"
    r = await viewer.get(url, params={"showSecrets": "true"})
    assert r.status_code == 403, r.text
    assert "get//Secret/" in r.json()["detail"]

    reader = await server.login("reader", "reader-password-1")
    r = await reader.get(url, params={"showSecrets": "true"})
    assert r.status_code == 403, r.text
    assert "get//ConfigMap/" in r.json()["detail"], "the redacted ConfigMap needs its right too"

    # admin may: the values as rendered, read by a client the guard does not watch
    token = await server.token()
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as raw:
        r = await raw.get(url, params={"showSecrets": "true"})
    assert r.status_code == 200, r.text
    shown = {m["kind"]: m for m in r.json()["manifests"]}
    assert shown["Secret"]["stringData"]["password"] == PASSWORD_NEW
    assert shown["ConfigMap"]["data"]["api-token"] == TOKEN_NEW
    assert r.json()["secretsShown"]

    async def audited() -> list[dict[str, Any]]:
        ar = await server.kube.resource("", "v1", "Event")
        return [
            e
            for e in (await server.kube.list(ar, server.namespace)).items
            if e.get("reason") == "AuditShowSecrets" and e["involvedObject"]["name"] == APP
        ]

    events = await wait_for(audited, within=10, what="the show-secrets audit Event")
    assert events[0]["message"].startswith("admin show-secrets (ok)"), events[0]["message"]


async def test_the_ui_shows_masks_and_never_a_value(
    server: Server, env: AppEnv, page_factory: PageFactory
) -> None:
    await _vault(server, env)
    await _quoting_condition(server)
    page = await page_factory()
    page.set_default_timeout(UI_TIMEOUT)
    expect.set_options(timeout=UI_TIMEOUT)
    await ui_login(page, server.url, "admin", server.admin_password, next=f"/applications/{APP}")
    status = page.locator("#app-status")
    await expect(status.locator(".app-conditions")).to_contain_text("bad token <redacted:")

    tree = page.locator("#tree")
    panel = page.locator("#node-panel")
    body = panel.locator("#panel-body")
    await tree.locator('.node[data-kind="Secret"]').get_by_role("button").first.click()
    await expect(panel).to_be_visible()
    for tab in ("Live manifest", "Desired manifest"):
        await panel.get_by_role("tab", name=tab).click()
        await expect(body.locator("pre")).to_contain_text("password: <redacted:")
        await expect(body.locator("pre")).to_contain_text("user: <redacted:")
        _clean(await page.content())
    await panel.get_by_role("tab", name="Diff").click()
    await expect(body.locator(".dl-del")).to_contain_text(["password: <redacted:"])
    await expect(body.locator(".dl-add")).to_contain_text(["password: <redacted:"])
    deleted = await body.locator(".dl-del").all_inner_texts()
    added = await body.locator(".dl-add").all_inner_texts()
    assert set(deleted).isdisjoint(added), "the changed password shows two masks"
    _clean(await page.content())
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()

    live_cm = await env.get(env.cm("settings"))
    assert live_cm is not None
    event = await _quoting_event(server, env, live_cm["metadata"]["uid"])
    try:
        await tree.locator('.node[data-kind="ConfigMap"]').get_by_role("button").first.click()
        await panel.get_by_role("tab", name="Live manifest").click()
        await expect(body.locator("pre")).to_contain_text("api-token: <redacted:")
        await expect(body.locator("pre")).to_contain_text("color: blue")
        await panel.get_by_role("tab", name="Events").click()
        await expect(body.locator(".event-message").first).to_contain_text("token <redacted:")
        _clean(await page.content())
    finally:
        await server.kube.delete(event)
