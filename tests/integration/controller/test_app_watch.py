"""The controller's watch of Applications: apps that exist before it starts, apps
created while it runs, and apps deleted (and created again under the same name)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gitmoor.controller.loop import Controller
from gitmoor.kube import wait_for
from gitmoor.model.application import Automated

if TYPE_CHECKING:
    from support.apps import AppEnv

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '1'}}\n"


async def test_apps_before_and_after_start_are_synced_and_a_deleted_one_is_forgotten(
    env: AppEnv,
) -> None:
    env.repo.commit({f"{d}/cm.yaml": CM.format(name=d) for d in ("early", "late", "again")})
    await env.create("early", path="early", automated=Automated(prune=True))
    # A long interval: only the watch (and the automation it triggers) can explain
    # what happens below within seconds.
    ctrl = Controller(env.kube, env.apps_namespace, interval=600, workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))

    async def exists(name: str) -> bool:
        return await env.get(env.cm(name)) is not None

    async def listed() -> bool:
        return ctrl.synced_apps.is_set()

    try:
        await wait_for(listed, within=30, what="the first list of Applications")
        assert "early" in ctrl.apps
        await wait_for(lambda: exists("early"), within=30, what="the app listed at start synced")

        await env.create("late", path="late", automated=Automated(prune=True))
        await wait_for(lambda: exists("late"), within=30, what="the app created later synced")

        await env.kube.delete(env.app_ref("early"))

        async def forgotten() -> bool:
            return "early" not in ctrl.apps and "early" not in ctrl.state

        await wait_for(forgotten, within=30, what="the deleted app forgotten")
        # Created again, its generation is 1 again: only an app whose deletion was
        # seen is taken for new and synced.
        await env.create("early", path="again", automated=Automated(prune=True))
        await wait_for(lambda: exists("again"), within=30, what="the re-created app synced")
    finally:
        stop.set()
        await task
