"""An API server outage in the middle of a sync: the app converges once it is back.

"The middle" is a state the operation reports, not a moment a poll hopes to
catch: wave 0 holds a Deployment that turns ready 45 s after it starts, so the
sync waits at wave 0's gate, with wave 1 (300 ConfigMaps) not applied yet, and
the outage is injected while ``operationState.progress`` says so. (45 s, not
less: the local cluster's kwok marks the pod Ready on a timer, and a timer that
fires while the API server is down is lost with its write.)"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.controller.loop import Controller
from gitmoor.engine import store
from gitmoor.engine.operation import status_of
from gitmoor.kube import KubeClient, load_kubeconfig, wait_for
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from gitmoor.testenv import ControlPlane
from support.apps import dump, slow_deployment
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CM = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, annotations: "
    "{{gitmoor.io/sync-wave: '1'}}}}\ndata: {{value: '{value}'}}\n"
)


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
    files = {f"app/cm-{i:03}.yaml": CM.format(name=f"cm-{i:03}", value="v1") for i in range(n)}
    files["app/slow.yaml"] = dump(slow_deployment("slow", 45, wave="0"))
    commit = repo.commit(files)
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

            async def waiting_at_wave_0() -> bool:
                app = await store.get_app(kube, "big", "gitmoor")
                state = status_of(app).operation_state
                p = state.progress if state is not None else None
                return bool(p and (p.stage, p.wave, p.part) == ("wave", 0, "gate") and p.waiting)

            await wait_for(waiting_at_wave_0, within=60, what="the sync waiting at wave 0")
            assert await applied() == 0, "wave 1 waits for wave 0"
            await asyncio.to_thread(private_cluster.restart_apiserver, down_for=2.0)

            async def converged() -> dict[str, Any] | None:
                st = (await store.get_app(kube, "big", "gitmoor")).status
                synced = (st.get("sync") or {}).get("status") == "Synced"
                ok = (st.get("operationState") or {}).get("phase") == "Succeeded"
                return st if synced and ok else None

            try:
                st = await wait_for(converged, within=180, what="Synced after the outage")
            except TimeoutError as e:
                now = (await store.get_app(kube, "big", "gitmoor")).status
                now.pop("resources", None)
                raise AssertionError(f"{e}; status: {now}") from e
            assert await applied() == n
            assert st["sync"]["revision"] == commit
        finally:
            stop.set()
            await task
