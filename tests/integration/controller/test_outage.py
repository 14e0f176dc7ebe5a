"""An API server outage in the middle of a sync: the app converges once it is back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.controller.loop import Controller
from gitmoor.engine import store
from gitmoor.kube import KubeClient, load_kubeconfig, wait_for
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from gitmoor.testenv import ControlPlane
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of this module's own: restarting the shared one would hit other tests."""
    cp = ControlPlane(home=tmp_path_factory.mktemp("outage") / "cp", name="outage")
    cp.start()
    yield cp
    cp.stop()


async def test_apiserver_restarted_mid_sync_then_the_app_converges(
    private_cluster: ControlPlane, tmp_path: Path
) -> None:
    n = 300
    repo = GitRepo(tmp_path / "repo")
    commit = repo.commit(
        {f"app/cm-{i:03}.yaml": CM.format(name=f"cm-{i:03}", value="v1") for i in range(n)}
    )
    async with KubeClient(load_kubeconfig(private_cluster.kubeconfig)) as kube:
        await store.install(kube, "gitmoor")
        await store.save_app(
            kube,
            application_manifest(
                "big",
                "gitmoor",
                AppSource(repo.url, "app", "main"),
                Destination("target"),
                automated=Automated(prune=True, self_heal=True),
                sync_options=("CreateNamespace=true",),
            ),
        )
        cm_res = await kube.resource("", "v1", "ConfigMap")

        async def applied() -> int:
            items = (await kube.list(cm_res, "target")).items
            return sum(1 for o in items if (o.get("data") or {}).get("value") == "v1")

        ctrl = Controller(kube, "gitmoor", interval=600, workers=2)
        stop = asyncio.Event()
        task = asyncio.create_task(ctrl.run(stop))
        try:

            async def under_way() -> bool:
                try:
                    return 0 < await applied() < n
                except Exception:
                    return False

            await wait_for(under_way, within=60, interval=0.05, what="sync under way")
            await asyncio.to_thread(private_cluster.restart_apiserver, down_for=2.0)

            async def converged() -> dict[str, Any] | None:
                st = (await store.get_app(kube, "big", "gitmoor")).status
                synced = (st.get("sync") or {}).get("status") == "Synced"
                ok = (st.get("operationState") or {}).get("phase") == "Succeeded"
                return st if synced and ok else None

            st = await wait_for(converged, within=180, what="Synced after the outage")
            assert await applied() == n
            assert st["sync"]["revision"] == commit
        finally:
            stop.set()
            await task
