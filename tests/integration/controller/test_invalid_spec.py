"""A refreshInterval or retry backoff below its floor is refused with a sentence on
the app's status (an InvalidSpecError condition), and nothing is applied; fixing
the spec brings the app back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gitmoor.controller import Controller
from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {value: one}\n"


async def test_policy_below_the_floors_is_a_condition_and_applies_nothing(
    kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    apps_ns = f"{namespace}-apps"
    await store.install(kube, apps_ns)
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"app/cm.yaml": CM})
    manifest = application_manifest(
        "hasty",
        apps_ns,
        AppSource(repo.url, "app", "main"),
        Destination(namespace),
        automated=Automated(prune=True),
    )
    manifest["spec"]["syncPolicy"]["refreshInterval"] = "10ms"
    # Through the API server directly, as kubectl apply would: the CLI validates first.
    await kube.apply(manifest, force=True)
    app_ref = store.app_ref("hasty", apps_ns)
    cm_ref = ObjectRef("", "v1", "ConfigMap", namespace, "settings")
    stop = asyncio.Event()
    task = asyncio.create_task(Controller(kube, apps_ns, interval=1.0, workers=2).run(stop))

    async def condition(kind: str) -> dict[str, Any] | None:
        obj = await kube.get(app_ref)
        conds = ((obj or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c.get("type") == kind), None)

    try:
        cond = await wait_for(
            lambda: condition("InvalidSpecError"), within=30, what="InvalidSpecError"
        )
        assert "spec.syncPolicy.refreshInterval" in cond["message"]
        assert "1s" in cond["message"] and "\n" not in cond["message"]
        assert await kube.get(cm_ref) is None

        await kube.merge_patch(
            app_ref,
            {
                "spec": {
                    "syncPolicy": {
                        "refreshInterval": "1s",
                        "retry": {"limit": 2, "backoff": {"duration": "1ms"}},
                    }
                }
            },
        )

        async def message_about_backoff() -> str | None:
            c = await condition("InvalidSpecError")
            text = str((c or {}).get("message", ""))
            return text if "backoff.duration" in text else None

        text = await wait_for(message_about_backoff, within=30, what="backoff condition")
        assert "100ms" in text
        assert await kube.get(cm_ref) is None

        await kube.merge_patch(
            app_ref, {"spec": {"syncPolicy": {"retry": {"backoff": {"duration": "1s"}}}}}
        )

        async def applied() -> bool:
            return (
                await kube.get(cm_ref) is not None and await condition("InvalidSpecError") is None
            )

        await wait_for(applied, within=30, what="the fixed app synced")
    finally:
        stop.set()
        await task
        await kube.delete(app_ref)
        await kube.delete(ObjectRef("", "v1", "Namespace", "", apps_ns))
