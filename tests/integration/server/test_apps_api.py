"""The applications API: list, get, diff, the SSE stream, and operations run by
a real controller (the server only asks, as Argo CD's API server does)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model.application import REFRESH_ANNOTATION, Automated
from support.apps import configmap, dump

if TYPE_CHECKING:
    import httpx

    from conftest import Server
    from gitmoor.controller.loop import Controller
    from support.apps import AppEnv


async def _app(c: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await c.get(f"/api/v1/applications/{name}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_list_filters_search_and_counts(server: Server, env: AppEnv) -> None:
    env.repo.commit({"a/cm.yaml": dump(configmap("one")), "b/cm.yaml": dump(configmap("two"))})
    await env.create("alpha", path="a")
    await env.create("beta", path="b")
    await env.sync("alpha")
    await env.refresh("beta")  # OutOfSync: never synced
    admin = await server.login()

    async def listed() -> dict[str, Any] | None:
        r = await admin.get("/api/v1/applications")
        body: dict[str, Any] = r.json()
        by = {i["name"]: i for i in body["items"]}
        ok = by.get("alpha", {}).get("sync") == "Synced" and by.get("beta", {}).get("sync")
        return body if ok == "OutOfSync" else None

    body = await wait_for(listed, within=20, what="both apps listed with their status")
    assert body["counts"]["sync"] == {"Synced": 1, "OutOfSync": 1}
    alpha = next(i for i in body["items"] if i["name"] == "alpha")
    assert alpha["project"] == "default"
    assert alpha["path"] == "a"
    assert alpha["namespace"] == env.namespace
    assert alpha["revision"] == env.repo.rev("HEAD")

    r = await admin.get("/api/v1/applications", params={"sync": "OutOfSync"})
    assert [i["name"] for i in r.json()["items"]] == ["beta"]
    r = await admin.get("/api/v1/applications", params={"search": "ALP"})
    assert [i["name"] for i in r.json()["items"]] == ["alpha"]
    r = await admin.get("/api/v1/applications", params=[("sync", "Synced"), ("sync", "OutOfSync")])
    assert len(r.json()["items"]) == 2
    r = await admin.get("/api/v1/applications", params={"project": "nope"})
    assert r.json() == {"items": [], "counts": {"sync": {}, "health": {}}}


async def test_get_history_and_diff(server: Server, env: AppEnv) -> None:
    first = env.repo.commit({"app/cm.yaml": dump(configmap("settings", {"mode": "one"}))})
    await env.create("web", path="app")
    await env.sync("web")
    admin = await server.login()

    async def synced() -> dict[str, Any] | None:
        body = await _app(admin, "web")
        return body if body["history"] else None

    body = await wait_for(synced, within=20, what="the server sees the sync")
    assert [(i["kind"], i["name"], i["status"]) for i in body["items"]] == [
        ("ConfigMap", "settings", "Synced")
    ]
    assert body["history"][0]["revision"] == first
    assert body["history"][0]["initiatedBy"] == "tests"
    assert body["operation"]["phase"] == "Succeeded"
    r = await admin.get("/api/v1/applications/web/history")
    assert [h["revision"] for h in r.json()] == [first]

    r = await admin.get("/api/v1/applications/web/diff")
    assert r.json()["items"] == []
    second = env.repo.commit({"app/cm.yaml": dump(configmap("settings", {"mode": "two"}))})
    r = await admin.get("/api/v1/applications/web/diff")
    diff = r.json()
    assert diff["revision"] == second
    assert [(i["kind"], i["name"], i["status"]) for i in diff["items"]] == [
        ("ConfigMap", "settings", "OutOfSync")
    ]
    assert "-  mode: one" in diff["items"][0]["diff"]
    assert "+  mode: two" in diff["items"][0]["diff"]

    r = await admin.get("/api/v1/applications/missing")
    assert r.status_code == 404


class Lines:
    """One SSE response's lines, read across several waits."""

    def __init__(self, response: httpx.Response) -> None:
        self.it = response.aiter_lines()

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> str:
        return await self.it.__anext__()


async def _events(
    stream: Lines, until: Any, within: float = 20
) -> list[tuple[str, dict[str, Any]]]:
    """SSE messages until ``until(messages)`` holds (or a deadline)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    event = ""

    async def read() -> None:
        nonlocal event
        async for line in stream:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                seen.append((event, json.loads(line[6:])))
                if until(seen):
                    return

    await asyncio.wait_for(read(), within)
    return seen


async def test_stream_sends_a_snapshot_then_changes_and_deletions(
    server: Server, env: AppEnv
) -> None:
    env.repo.commit({"a/cm.yaml": dump(configmap("one"))})
    await env.create("alpha", path="a")
    await env.create("beta", path="a")
    admin = await server.login()
    async with admin.stream("GET", "/api/v1/stream/applications") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Lines(response)
        snapshot = await _events(stream, lambda s: len(s) == 2)
        assert sorted(d["name"] for _, d in snapshot) == ["alpha", "beta"]
        # A sync made elsewhere (here the engine; the CLI or the controller alike)
        # reaches the open stream from the watch.
        await env.sync("alpha")
        changed = await _events(
            stream, lambda s: any(d.get("name") == "alpha" and d["sync"] == "Synced" for _, d in s)
        )
        assert all(e == "application" for e, _ in changed)
        await server.kube.delete(store.app_ref("beta", server.namespace))
        gone = await _events(stream, lambda s: ("deleted", {"name": "beta"}) in s)
        assert ("deleted", {"name": "beta"}) in gone


async def test_stream_of_one_app_and_logout_ends_it(server: Server, env: AppEnv) -> None:
    env.repo.commit({"a/cm.yaml": dump(configmap("one"))})
    await env.create("alpha", path="a")
    await env.create("beta", path="a")
    admin = await server.login()
    async with admin.stream("GET", "/api/v1/stream/applications", params={"name": "beta"}) as r:
        s = Lines(r)
        first = await _events(s, lambda seen: len(seen) == 1)
        assert first[0][1]["name"] == "beta"
        other = await server.login()
        assert (await other.get("/api/v1/session/userinfo")).status_code == 200
        assert (await admin.delete("/api/v1/session")).status_code in (200, 204)
        ended = await _events(s, lambda seen: any(e == "logout" for e, _ in seen))
        assert ended[-1][0] == "logout"
        assert all(d.get("name") in (None, "beta") for _, d in ended)


async def test_sync_request_runs_in_the_controller(
    server: Server, env: AppEnv, controller: Controller
) -> None:
    first = env.repo.commit({"app/cm.yaml": dump(configmap("settings", {"mode": "one"}))})
    await env.create("web", path="app")
    admin = await server.login()
    await wait_for(lambda: _has(admin, "web"), within=20, what="app listed")

    r = await admin.post("/api/v1/applications/web/sync", json={"prune": True})
    assert r.status_code == 202, r.text
    raw = (await env.app("web")).raw
    assert raw["operation"]["initiatedBy"]["username"] == "admin"
    assert raw["operation"]["sync"]["prune"] is True

    async def done() -> dict[str, Any] | None:
        body = await _app(admin, "web")
        ok = body["operation"] and body["operation"]["phase"] == "Succeeded"
        return body if ok and body["sync"] == "Synced" else None

    body = await wait_for(done, within=60, what="the controller ran the requested sync")
    assert body["history"][0]["revision"] == first
    assert body["history"][0]["initiatedBy"] == "admin"
    assert (await env.get(env.cm("settings")))["data"] == {"mode": "one"}  # type: ignore[index]

    # Refresh: the controller sees the new commit at once (its own interval is 10 min).
    second = env.repo.commit({"app/cm.yaml": dump(configmap("settings", {"mode": "two"}))})
    r = await admin.post("/api/v1/applications/web/refresh", json={"type": "hard"})
    assert r.status_code == 202

    async def out_of_sync() -> dict[str, Any] | None:
        body = await _app(admin, "web")
        return body if body["sync"] == "OutOfSync" and body["revision"] == second else None

    await wait_for(out_of_sync, within=30, what="OutOfSync at the new commit after refresh")

    async def annotation_removed() -> bool:
        meta = (await env.app("web")).raw["metadata"]
        return REFRESH_ANNOTATION not in (meta.get("annotations") or {})

    await wait_for(annotation_removed, within=10, what="the refresh request removed")

    # Rollback to the first sync: the app goes back and automation is switched off.
    r = await admin.post("/api/v1/applications/web/sync", json={})
    assert r.status_code == 202
    await wait_for(lambda: _phase_and_revision(admin, "web", second), within=60, what="second sync")
    await store.patch_spec(
        server.kube,
        await env.app("web"),
        {"syncPolicy": {"automated": {"prune": False, "selfHeal": False}}},
    )
    history = (await admin.get("/api/v1/applications/web/history")).json()
    first_id = next(h["id"] for h in history if h["revision"] == first)
    r = await admin.post("/api/v1/applications/web/rollback", json={"id": first_id})
    assert r.status_code == 202, r.text
    assert "automated sync is off" in r.json()["message"]
    assert (await env.app("web")).spec.sync_policy.automated is None
    await wait_for(lambda: _phase_and_revision(admin, "web", first), within=60, what="rolled back")
    assert (await env.get(env.cm("settings")))["data"] == {"mode": "one"}  # type: ignore[index]

    r = await admin.post("/api/v1/applications/web/terminate")
    assert r.status_code == 409
    assert "no operation is running" in r.json()["detail"]


async def test_a_second_sync_while_one_is_asked_is_refused(server: Server, env: AppEnv) -> None:
    env.repo.commit({"app/cm.yaml": dump(configmap("settings"))})
    await env.create("web", path="app", automated=None)
    admin = await server.login()
    await wait_for(lambda: _has(admin, "web"), within=20, what="app listed")
    assert (await admin.post("/api/v1/applications/web/sync", json={})).status_code == 202

    async def refused() -> httpx.Response | None:
        r = await admin.post("/api/v1/applications/web/sync", json={})
        return r if r.status_code == 409 else None

    # No controller runs here: the first request stays pending, and the server
    # sees it as soon as its watch does.
    r = await wait_for(refused, within=10, what="409 for a second sync")
    assert "already in progress" in r.json()["detail"]


async def test_sync_body_is_checked(server: Server, env: AppEnv) -> None:
    env.repo.commit({"app/cm.yaml": dump(configmap("settings"))})
    await env.create("web", path="app", automated=Automated())
    admin = await server.login()
    await wait_for(lambda: _has(admin, "web"), within=20, what="app listed")
    r = await admin.post("/api/v1/applications/web/sync", json={"prune": "yes please"})
    assert r.status_code == 422
    r = await admin.post("/api/v1/applications/web/sync", json={"surprise": 1})
    assert r.status_code == 422
    r = await admin.post("/api/v1/applications/web/rollback", json={"id": 99})
    assert r.status_code == 400
    assert "no history entry 99" in r.json()["detail"]
    assert (await env.app("web")).operation is None


async def _has(c: httpx.AsyncClient, name: str) -> bool:
    return (await c.get(f"/api/v1/applications/{name}")).status_code == 200


async def _phase_and_revision(c: httpx.AsyncClient, name: str, revision: str) -> bool:
    body = await _app(c, name)
    op = body["operation"] or {}
    return (
        op.get("phase") == "Succeeded"
        and bool(body["history"])
        and body["history"][0]["revision"] == revision
    )
