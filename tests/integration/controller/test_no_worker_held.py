"""A sync that waits holds no worker: with two workers and four apps waiting on
slow rollouts, a fifth app's drift and pushes are still handled within seconds.

The 2-second bounds are the issue's own ("drift corrected within 2 s, a push
applied within 2 s"); the moment they are measured from is one the operations
report (every slow app waiting at its wave gate), not a guess."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from gitmoor.controller import Controller
from gitmoor.engine import store
from gitmoor.engine.operation import status_of
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from support.apps import SYNC_WAVE, configmap, dump, slow_deployment
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient

SLOW = [f"slow{i}" for i in range(4)]


def _slow_app(name: str) -> str:
    d = slow_deployment(name, 60, wave="0")
    after = configmap(f"{name}-after")
    after["metadata"]["annotations"] = {SYNC_WAVE: "1"}
    return dump(d, after)


async def test_four_waiting_syncs_do_not_stop_a_fifth_app(
    kube: KubeClient, namespace: str, apps_namespace: str, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "repo")
    files = {f"{n}/app.yaml": _slow_app(n) for n in SLOW}
    files["fast/cm.yaml"] = dump(configmap("fast", {"value": "one"}))
    repo.commit(files)
    for name in [*SLOW, "fast"]:
        await store.save_app(
            kube,
            application_manifest(
                name,
                apps_namespace,
                AppSource(repo.url, name, "main"),
                Destination(namespace),
                automated=Automated(prune=True, self_heal=True),
            ),
        )
    stop = asyncio.Event()
    ctrl = Controller(kube, apps_namespace, interval=300, workers=2, self_heal_debounce=1.0)
    task = asyncio.create_task(ctrl.run(stop))
    fast = ObjectRef("", "v1", "ConfigMap", namespace, "fast")
    try:

        async def all_waiting() -> bool:
            for name in SLOW:
                state = status_of(await store.get_app(kube, name, apps_namespace)).operation_state
                p = state.progress if state is not None else None
                if p is None or (p.stage, p.part) != ("wave", "gate") or not p.waiting:
                    return False
            return True

        await wait_for(all_waiting, within=60, what="four syncs waiting at their wave gate")

        async def fast_value(want: str) -> bool:
            live = await kube.get(fast)
            return bool(live and live["data"]["value"] == want)

        await wait_for(lambda: fast_value("one"), within=30, what="the fifth app synced")
        # Past the self-heal debounce since its sync.
        await asyncio.sleep(1.0)

        await kube.merge_patch(fast, {"data": {"value": "drifted"}})
        t0 = time.monotonic()
        await wait_for(lambda: fast_value("one"), within=10, interval=0.05, what="drift reverted")
        healed = time.monotonic() - t0
        assert healed < 2.0, f"drift corrected after {healed:.2f}s"

        repo.commit({"fast/cm.yaml": dump(configmap("fast", {"value": "two"}))})
        t0 = time.monotonic()
        # What the webhook does once it has matched a push to the app.
        assert ctrl.refresh_apps(["fast"], first=["fast"]) == 1
        await wait_for(lambda: fast_value("two"), within=10, interval=0.05, what="push applied")
        pushed = time.monotonic() - t0
        assert pushed < 2.0, f"push applied after {pushed:.2f}s"

        # And the slow ones still wait, holding nothing.
        assert await all_waiting()
        states: dict[str, Any] = {
            n: status_of(await store.get_app(kube, n, apps_namespace)).operation_state for n in SLOW
        }
        for name, state in states.items():
            assert state is not None and state.message.startswith(
                f"waiting for wave 0: Deployment {name}:"
            ), state
    finally:
        stop.set()
        await task
