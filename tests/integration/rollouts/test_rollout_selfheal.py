"""A blue-green Rollout in a gitmoor app that declares nothing for it: no
``ignoreDifferences``, no ``RespectIgnoreDifferences`` (what an Argo CD user
writes, since Argo CD's client-side apply never shows the controller's selector
key). The engine's built-in rule (``normalize.BUILTIN_RULES``) keeps the Rollout
controller's ``rollouts-pod-template-hash`` out of the diff and in every apply,
so, with the app controller running automated sync with self-heal:

- mid-rollout the app is Synced (and Suspended, waiting for the promote);
- a self-heal of real drift on a Service (its Git selector key changed by hand)
  restores Git's key and leaves the rollout's key where the controller put it;
- a forced sync of the same commit does the same;
- the promote switches the active Service, and the app stays Synced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import Automated
from support.controller import running_controller
from support.rollouts import (
    HASH,
    blue_green_app_manifests,
    promote,
    running_rollouts,
    selector_hash,
    wait_status,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from support.apps import AppEnv

JSON = dict[str, Any]


async def selector(kube: KubeClient, namespace: str, name: str) -> dict[str, str]:
    obj = await kube.get(ObjectRef("", "v1", "Service", namespace, name))
    assert obj is not None
    return dict((obj.get("spec") or {}).get("selector") or {})


async def test_self_heal_mid_rollout_keeps_the_rollouts_selectors_without_any_rule(
    env: AppEnv, rollout_crds: None
) -> None:
    ns, kube = env.namespace, env.kube
    first = env.repo.commit({"app.yaml": blue_green_app_manifests("registry.local/web:1")})
    await env.create("shop", automated=Automated(prune=True, self_heal=True))
    app = await env.app("shop")
    assert not app.spec.ignore_differences
    assert "RespectIgnoreDifferences=true" not in app.spec.sync_policy.sync_options

    async def app_status(sync: str, health: str, revision: str) -> JSON | None:
        st = (await env.app("shop")).status
        ok = (
            (st.get("sync") or {}).get("status") == sync
            and (st.get("sync") or {}).get("revision") == revision
            and (st.get("health") or {}).get("status") == health
        )
        return st if ok else None

    async with (
        running_rollouts(kube, ns),
        running_controller(kube, env.apps_namespace, interval=1) as ctrl,
    ):
        ctrl.self_heal_debounce = 1.0
        # 1. Automated sync of the first version; the Rollout makes it active.
        await wait_for(
            lambda: app_status("Synced", "Healthy", first),
            within=60,
            interval=0.3,
            what="the app Synced and Healthy at v1 (the selector key is no drift)",
        )
        st = await wait_status(
            kube, ns, "web", lambda s: s.get("phase") == "Healthy", within=10, what="v1"
        )
        v1 = st["stableRS"]
        assert await selector_hash(kube, ns, "web-active") == v1

        # 2. A new image: the automated sync applies it, the Rollout previews it.
        second = env.repo.commit({"app.yaml": blue_green_app_manifests("registry.local/web:2")})
        st = await wait_status(
            kube,
            ns,
            "web",
            lambda s: s.get("phase") == "Paused" and s.get("currentPodHash") != v1,
            within=60,
            what="v2 previewed and paused",
        )
        v2 = st["currentPodHash"]
        assert await selector_hash(kube, ns, "web-preview") == v2
        assert await selector_hash(kube, ns, "web-active") == v1
        st = await wait_for(
            lambda: app_status("Synced", "Suspended", second),
            within=60,
            interval=0.3,
            what="the app Synced and Suspended mid-rollout",
        )
        synced_at = len(st.get("history") or [])

        # 3. Real drift on a Service: Git's own selector key changed by hand. A
        #    Service selector is an atomic map under server-side apply, so
        #    self-heal writes the whole selector: Git's key back, and the
        #    rollout's key as the Rollout controller left it.
        await kube.merge_patch(
            ObjectRef("", "v1", "Service", ns, "web-active"), {"spec": {"selector": {"app": "x"}}}
        )

        async def healed() -> dict[str, str] | None:
            sel = await selector(kube, ns, "web-active")
            return sel if sel.get("app") == "web" else None

        sel = await wait_for(healed, within=60, interval=0.3, what="self-heal of web-active")
        assert sel == {"app": "web", HASH: v1}
        assert await selector(kube, ns, "web-preview") == {"app": "web", HASH: v2}
        st = await wait_for(
            lambda: app_status("Synced", "Suspended", second),
            within=60,
            interval=0.3,
            what="Synced again after the self-heal",
        )
        assert len(st.get("history") or []) > synced_at, "self-heal recorded no sync"
        # The Rollout did not move: still paused on the same preview.
        st = await wait_status(
            kube, ns, "web", lambda s: s.get("phase") == "Paused", within=10, what="still paused"
        )
        assert (st["currentPodHash"], st["stableRS"]) == (v2, v1)

    # 4. A forced sync of the same commit over the same drift (what `gitmoor app
    #    sync` does by hand), with the Rollout controller still running.
    async with running_rollouts(kube, ns):
        await kube.merge_patch(
            ObjectRef("", "v1", "Service", ns, "web-preview"), {"spec": {"selector": {"app": "y"}}}
        )
        app, _ = await env.refresh("shop")
        assert app.status["sync"]["status"] == "OutOfSync"  # Git's key drifted, not the hash
        result = await env.sync("shop")
        assert result.ok, result.message
        assert await selector(kube, ns, "web-preview") == {"app": "web", HASH: v2}
        assert await selector(kube, ns, "web-active") == {"app": "web", HASH: v1}
        app, _ = await env.refresh("shop")
        assert app.status["sync"]["status"] == "Synced"

        # 5. The promote switches the active Service; the app stays Synced.
        await promote(kube, ns, "web")
        await wait_status(
            kube,
            ns,
            "web",
            lambda s: s.get("phase") == "Healthy" and s.get("stableRS") == v2,
            within=60,
            what="v2 promoted",
        )
        assert await selector_hash(kube, ns, "web-active") == v2
        app, _ = await env.refresh("shop")
        assert app.status["sync"]["status"] == "Synced"
        assert app.status["health"]["status"] == "Healthy"
