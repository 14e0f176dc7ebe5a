"""The sync and rollback routes refuse what a sync window of the app's project
forbids: a 400 whose detail names the window and says when syncs open, with
nothing requested on the Application (Argo CD's API refuses the same request
with "cannot sync: blocked by sync window")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.kube import wait_for
from gitmoor.model.project import AppProject, ProjectDestination, SyncWindow
from gitmoor.settings import create_project
from support.apps import configmap, dump

if TYPE_CHECKING:
    from conftest import Server
    from support.apps import AppEnv


async def test_sync_and_rollback_refused_in_a_deny_window(server: Server, env: AppEnv) -> None:
    deny = SyncWindow(kind="deny", schedule="* * * * *", duration="1h", applications=("web",))
    await create_project(
        env.kube,
        AppProject(
            name="frozen",
            namespace=env.apps_namespace,
            source_repos=(env.repo.url,),
            destinations=(ProjectDestination(namespace=env.namespace),),
            sync_windows=(deny,),
        ),
    )
    env.repo.commit({"cm.yaml": dump(configmap("settings"))})
    await env.create("web", spec={"project": "frozen"})
    admin = await server.login()

    async def seen() -> bool:
        return (await admin.get("/api/v1/applications/web")).status_code == 200

    await wait_for(seen, within=15, what="web seen by the server")

    r = await admin.post("/api/v1/applications/web/sync", json={})
    assert r.status_code == 400, r.text
    assert (
        "cannot sync web: sync window deny * * * * * (1h, UTC) forbids manual sync"
        in (r.json()["detail"])
    )
    r = await admin.post("/api/v1/applications/web/rollback", json={"id": 1})
    assert r.status_code == 400, r.text
    assert "forbids manual sync" in r.json()["detail"]
    app = await env.app("web")
    assert "operation" not in app.raw
    assert "operationState" not in app.status
    assert await env.get(env.cm("settings")) is None
