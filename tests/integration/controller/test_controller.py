"""The controller executes requested operations and keeps status current."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gitmoor.controller import Controller
from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Destination, application_manifest
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient

CM = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
data: {{value: "{value}"}}
"""


async def test_requested_sync_runs_and_status_follows_git(
    kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    apps_ns = f"{namespace}-apps"
    await store.install(kube, apps_ns)
    repo = GitRepo(tmp_path / "repo")
    first = repo.commit({"app/cm.yaml": CM.format(name="settings", value="one")})
    await store.save_app(
        kube,
        application_manifest(
            "web", apps_ns, AppSource(repo.url, "app", "main"), Destination(namespace)
        ),
    )
    stop = asyncio.Event()
    ctrl = Controller(kube, apps_ns, interval=1.0, workers=2)
    task = asyncio.create_task(ctrl.run(stop))
    try:
        # Without an operation the controller only reports: the app is OutOfSync, nothing applied.
        async def reported(want: str) -> dict[str, Any] | None:
            a = await store.get_app(kube, "web", apps_ns)
            sync = a.status.get("sync") or {}
            return a.status if sync.get("status") == want else None

        st = await wait_for(lambda: reported("OutOfSync"), within=30, what="OutOfSync")
        assert st["sync"]["revision"] == first
        cm_ref = ObjectRef("", "v1", "ConfigMap", namespace, "settings")
        assert await kube.get(cm_ref) is None

        app = await store.get_app(kube, "web", apps_ns)
        await store.set_operation(
            kube, app, {"sync": {"revision": "main"}, "initiatedBy": {"username": "alice"}}
        )

        async def done() -> dict[str, Any] | None:
            a = await store.get_app(kube, "web", apps_ns)
            op = a.status.get("operationState") or {}
            return a.raw if op.get("phase") == "Succeeded" and a.operation is None else None

        raw = await wait_for(done, within=30, what="operation Succeeded and cleared")
        assert raw["status"]["history"][-1]["initiatedBy"] == "alice"
        assert (await kube.get(cm_ref))["data"]["value"] == "one"  # type: ignore[index]
        await wait_for(lambda: reported("Synced"), within=30, what="Synced")

        # A new commit is noticed by the periodic refresh (no CLI call): OutOfSync at the new SHA.
        second = repo.commit({"app/cm.yaml": CM.format(name="settings", value="two")})

        async def out_of_sync_at_second() -> bool:
            st = await reported("OutOfSync")
            return bool(st and st["sync"]["revision"] == second)

        await wait_for(out_of_sync_at_second, within=30, what="OutOfSync at the new commit")
    finally:
        stop.set()
        await task
        await kube.delete(store.app_ref("web", apps_ns))
        await kube.delete(ObjectRef("", "v1", "Namespace", "", apps_ns))
