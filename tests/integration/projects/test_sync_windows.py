"""Sync windows on the real control plane: a project's deny window refuses a
manual sync (CLI, --async, rollback, the engine's request) unless the window
says manualSync, `gitmoor proj windows list` shows which windows are active,
and an automated app waits out a deny window and syncs the pushed commit once
it closes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine import SyncWindowClosed
from gitmoor.kube import wait_for
from gitmoor.model.application import Automated
from gitmoor.model.project import AppProject, ProjectDestination, SyncWindow
from gitmoor.model.status import SyncOperation
from gitmoor.settings import create_project
from support.apps import configmap, dump
from support.controller import running_controller

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.cli import Gitmoor

PROJECT = "frozen"


def ok(result: object) -> str:
    assert getattr(result, "returncode", None) == 0, (
        getattr(result, "stdout", ""),
        getattr(result, "stderr", ""),
    )
    return str(getattr(result, "stdout", ""))


def frozen(env: AppEnv, *windows: SyncWindow) -> AppProject:
    return AppProject(
        name=PROJECT,
        namespace=env.apps_namespace,
        source_repos=(env.repo.url,),
        destinations=(ProjectDestination(namespace=env.namespace),),
        sync_windows=windows,
    )


async def test_a_deny_window_refuses_manual_syncs_unless_it_allows_them(
    gitmoor: Gitmoor, env: AppEnv, kube: KubeClient
) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await create_project(kube, frozen(env))
    ok(
        gitmoor(
            "proj",
            "windows",
            "add",
            PROJECT,
            "--kind",
            "deny",
            "--schedule",
            "* * * * *",
            "--duration",
            "1h",
            "--applications",
            "*",
        )
    )
    table = ok(gitmoor("proj", "windows", "list", PROJECT))
    assert "Active" in table and "deny" in table and "always open" in table
    listed = json.loads(ok(gitmoor("proj", "windows", "list", PROJECT, "-o", "json")))
    assert listed == [
        {
            "id": 0,
            "active": True,
            "closesAt": None,
            "kind": "deny",
            "schedule": "* * * * *",
            "duration": "1h",
            "applications": ["*"],
        }
    ]
    assert "active now: deny * * * * * (1h, UTC)" in ok(gitmoor("proj", "get", PROJECT))

    await env.create("web", spec={"project": PROJECT})
    refused = gitmoor("app", "sync", "web")
    assert refused.returncode == 2, refused.stdout
    assert (
        "cannot sync web: sync window deny * * * * * (1h, UTC) forbids manual sync; "
        "it is always active" in refused.stderr
    )
    refused_async = gitmoor("app", "sync", "web", "--async")
    assert refused_async.returncode == 2 and "forbids manual sync" in refused_async.stderr
    # Nothing was applied, nothing was started, nothing was requested.
    assert await env.get(env.cm("settings")) is None
    app = await env.app("web")
    assert "operationState" not in app.status
    assert "operation" not in app.raw

    # The API server's path (request_sync) refuses too, before writing.
    with pytest.raises(SyncWindowClosed):
        await env.engine.request_sync(app, SyncOperation(initiated_by="tests"))
    assert "operation" not in (await env.app("web")).raw
    # A dry run applies nothing, and is let through.
    assert (await env.engine.sync(app, None, record=False)).ok

    ok(gitmoor("proj", "windows", "enable-manual-sync", PROJECT, "0"))
    ok(gitmoor("app", "sync", "web"))
    assert await env.get(env.cm("settings")) is not None

    # The rollback is refused before it touches the app (automation stays on).
    ok(gitmoor("proj", "windows", "disable-manual-sync", PROJECT, "0"))
    await kube.merge_patch(env.app_ref("web"), {"spec": {"syncPolicy": {"automated": {}}}})
    rollback = gitmoor("app", "rollback", "web", "1")
    assert rollback.returncode == 2 and "forbids manual sync" in rollback.stderr
    assert (await env.app("web")).spec.sync_policy.automated is not None

    ok(gitmoor("proj", "windows", "delete", PROJECT, "0"))
    assert "no sync windows" in ok(gitmoor("proj", "windows", "list", PROJECT))


async def test_outside_every_allow_window_a_sync_is_refused_with_the_next_opening(
    env: AppEnv, kube: KubeClient
) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    # A one-minute allow window that opened five minutes ago: closed now, and
    # next open at the same time tomorrow.
    opened = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    allow = SyncWindow(
        kind="allow",
        schedule=f"{opened.minute} {opened.hour} * * *",
        duration="1m",
        namespaces=(env.namespace,),
    )
    await create_project(kube, frozen(env, allow))
    await env.create("web", spec={"project": PROJECT})
    with pytest.raises(SyncWindowClosed) as e:
        await env.sync("web")
    tomorrow = opened + timedelta(days=1)
    assert f"the next opens at {tomorrow.strftime('%Y-%m-%dT%H:%M:%SZ')}" in str(e.value)
    assert e.value.until == tomorrow
    assert await env.get(env.cm("settings")) is None


async def test_an_automated_app_waits_out_a_deny_window_then_syncs(
    env: AppEnv, kube: KubeClient
) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("settings", {"v": "1"}))})
    now = datetime.now(UTC)
    # A deny window that fired at the start of this minute and closes 25 s from now.
    fired = now.replace(second=0, microsecond=0)
    closes = now + timedelta(seconds=25)
    seconds = int((closes - fired).total_seconds())
    deny = SyncWindow(
        kind="deny",
        schedule=f"{fired.minute} {fired.hour} {fired.day} {fired.month} *",
        duration=f"{seconds}s",
        applications=("web",),
    )
    await create_project(kube, frozen(env, deny))
    await env.create("web", spec={"project": PROJECT}, automated=Automated())
    async with running_controller(kube, env.apps_namespace, interval=600):

        async def waiting() -> str | None:
            status = (await env.app("web")).status
            for c in status.get("conditions") or []:
                if c.get("type") == "SyncWaiting" and "sync window deny" in c.get("message", ""):
                    return str(c["message"])
            return None

        message = await wait_for(waiting, within=30, interval=0.3, what="the window's condition")
        assert message.startswith(f"sync window deny {deny.schedule} ({seconds}s, UTC)")
        looked = datetime.now(UTC)
        live = await env.get(env.cm("settings"))
        if looked < fired + deny.length - timedelta(seconds=2):
            assert live is None  # not applied while the window is active

        async def applied() -> bool:
            return await env.get(env.cm("settings")) is not None

        await wait_for(applied, within=90, interval=0.5, what="the sync after the window")
        assert datetime.now(UTC) >= fired + deny.length
