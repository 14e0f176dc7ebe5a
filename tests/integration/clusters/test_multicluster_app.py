"""An Application whose destination is a registered second cluster syncs there."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gitmoor.controller.loop import Controller
from gitmoor.engine import store
from gitmoor.kube import load_kubeconfig, wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from gitmoor.settings.clusters import ClusterRegistry, add_cluster
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from gitmoor.testenv import ControlPlane

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {where: git}\n"


async def test_app_on_the_second_cluster_syncs_there_and_not_here(
    kube: KubeClient,
    namespace: str,
    second_plane: ControlPlane,
    second_admin: KubeClient,
    tmp_path: Path,
) -> None:
    apps_ns = f"{namespace}-apps"
    await store.install(kube, apps_ns)
    await add_cluster(kube, "second", load_kubeconfig(second_plane.kubeconfig), namespace=apps_ns)
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"app/cm.yaml": CM})
    target = f"{namespace}-remote"
    await store.save_app(
        kube,
        application_manifest(
            "remote",
            apps_ns,
            AppSource(repo.url, "app", "main"),
            Destination(target, name="second"),
            automated=Automated(prune=True),
            sync_options=("CreateNamespace=true",),
        ),
    )
    registry = ClusterRegistry(kube, namespace=apps_ns)
    ctrl = Controller(kube, apps_ns, interval=600, workers=2, clusters=registry)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ref = ObjectRef("", "v1", "ConfigMap", target, "settings")
    try:

        async def there() -> bool:
            return await second_admin.get(ref) is not None

        await wait_for(there, within=30, what="ConfigMap on the second cluster")

        async def synced() -> bool:
            st = (await store.get_app(kube, "remote", apps_ns)).status
            return (st.get("sync") or {}).get("status") == "Synced"

        await wait_for(synced, within=30, what="app Synced")
        assert await kube.get(ref) is None, "nothing may land on the home cluster"
        assert await kube.get(ObjectRef("", "v1", "Namespace", "", target)) is None
    finally:
        stop.set()
        await task
        await registry.aclose()
        await kube.delete(store.app_ref("remote", apps_ns))
        await second_admin.delete(ObjectRef("", "v1", "Namespace", "", target))
        await kube.delete(ObjectRef("", "v1", "Namespace", "", apps_ns))
