"""A blue-green Rollout in a gitmoor app: the controller's writes (Service
selectors, ReplicaSets) leave the app Synced, and a sync of the same commit in
the middle of an update (what self-heal does) does not move the Services back.

The app declares what Argo CD's users declare for Argo Rollouts under
server-side apply: ``ignoreDifferences`` on the selector's
``rollouts-pod-template-hash`` key with ``RespectIgnoreDifferences=true``
(a Service's selector is an atomic map under SSA; see test_bluegreen.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from support.rollouts import (
    blue_green_app_manifests,
    running_rollouts,
    selector_hash,
    wait_status,
)

if TYPE_CHECKING:
    from support.apps import AppEnv

JSON = dict[str, Any]


IGNORE_HASH = {
    "ignoreDifferences": [
        {"kind": "Service", "jsonPointers": ["/spec/selector/rollouts-pod-template-hash"]}
    ]
}


async def test_resync_mid_rollout_keeps_the_selectors_and_the_app_synced(
    env: AppEnv, rollout_crds: None
) -> None:
    env.repo.commit({"app.yaml": blue_green_app_manifests("registry.local/web:1")})
    await env.create("shop", sync_options=("RespectIgnoreDifferences=true",), spec=IGNORE_HASH)
    assert (await env.sync("shop")).ok
    ns = env.namespace
    async with running_rollouts(env.kube, ns):
        st = await wait_status(
            env.kube, ns, "web", lambda s: s.get("phase") == "Healthy", within=60, what="v1"
        )
        v1 = st["stableRS"]
        app = await env.healthy("shop")
        assert app.status["sync"]["status"] == "Synced"

        env.repo.commit({"app.yaml": blue_green_app_manifests("registry.local/web:2")})
        assert (await env.sync("shop")).ok
        st = await wait_status(
            env.kube, ns, "web", lambda s: s.get("phase") == "Paused", within=60, what="paused"
        )
        v2 = st["currentPodHash"]
        assert await selector_hash(env.kube, ns, "web-preview") == v2
        assert await selector_hash(env.kube, ns, "web-active") == v1

        # The app is Synced (the controller's writes are not drift) and Suspended.
        app, _ = await env.refresh("shop")
        assert app.status["sync"]["status"] == "Synced"
        assert app.status["health"]["status"] == "Suspended"

        # A sync of the same commit (self-heal's write) leaves both Services alone.
        result = await env.sync("shop")
        assert result.ok, result.message
        assert await selector_hash(env.kube, ns, "web-preview") == v2
        assert await selector_hash(env.kube, ns, "web-active") == v1
        app, _ = await env.refresh("shop")
        assert app.status["sync"]["status"] == "Synced"
