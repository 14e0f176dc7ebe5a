"""The controller goes through the same project checks as the CLI, and watches
projects: narrowing one stops its apps at once, not at their next interval."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gitmoor.controller import Controller
from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from gitmoor.model.project import AppProject, ProjectDestination
from gitmoor.settings import create_project, patch_project
from support.apps import cm_ref, configmap, dump
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from gitmoor.kube import KubeClient


async def test_the_controller_enforces_a_project_narrowed_while_it_runs(
    kube: KubeClient,
    apps_namespace: str,
    tmp_path: Path,
    team_namespace: Callable[[], Awaitable[str]],
) -> None:
    ns = await team_namespace()
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"app/cm.yaml": dump(configmap("settings"))})
    await create_project(
        kube,
        AppProject(
            name="team-a",
            namespace=apps_namespace,
            source_repos=(repo.url,),
            destinations=(ProjectDestination(namespace="team-a-*"),),
        ),
    )
    manifest = application_manifest(
        "web",
        apps_namespace,
        AppSource(repo.url, "app", "main"),
        Destination(ns),
        project="team-a",
        automated=Automated(prune=True, self_heal=True),
    )
    await store.save_app(kube, manifest)
    stop = asyncio.Event()
    # A long interval: only the project watch can make it look again in time.
    ctrl = Controller(kube, apps_namespace, interval=600.0, workers=2)
    task = asyncio.create_task(ctrl.run(stop))
    try:

        async def status() -> dict[str, Any]:
            return (await store.get_app(kube, "web", apps_namespace)).status

        async def synced() -> bool:
            return (await status()).get("sync", {}).get("status") == "Synced"

        await wait_for(synced, within=30, what="the permitted app Synced")
        assert await kube.get(cm_ref(ns, "settings")) is not None

        # The admin takes the repository away from the project.
        await patch_project(kube, "team-a", apps_namespace, {"sourceRepos": []})

        async def refused() -> dict[str, Any] | None:
            conditions = (await status()).get("conditions") or []
            return next((c for c in conditions if c.get("type") == "InvalidSpecError"), None)

        condition = await wait_for(refused, within=15, what="InvalidSpecError")
        assert "project team-a" in condition["message"]
        assert "spec.sourceRepos" in condition["message"]
        # What was applied stays as it was: a refused app is neither synced nor pruned.
        live = await kube.get(cm_ref(ns, "settings"))
        assert live is not None and live["data"] == {"key": "value"}
    finally:
        stop.set()
        await task
