"""A blue-green Rollout in a gitmoor app: the controller's writes (Service
selectors, ReplicaSets) leave the app Synced, and a sync of the same commit in
the middle of an update (what self-heal does) does not move the Services back.

The app declares what Argo CD's users declare for Argo Rollouts under
server-side apply: ``ignoreDifferences`` on the selector's
``rollouts-pod-template-hash`` key with ``RespectIgnoreDifferences=true``
(a Service's selector is an atomic map under SSA; see test_bluegreen.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from support.apps import dump
from support.rollouts import (
    ensure_rollout_crds,
    pod_template,
    running_rollouts,
    selector_hash,
    service,
    wait_status,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv

JSON = dict[str, Any]


@pytest.fixture(scope="session")
async def gitops_crds(kube: KubeClient) -> AsyncIterator[None]:
    await ensure_rollout_crds(kube)
    yield


def manifests(image: str) -> str:
    ro = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": pod_template(image),
            "strategy": {
                "blueGreen": {
                    "activeService": "web-active",
                    "previewService": "web-preview",
                    "autoPromotionEnabled": False,
                }
            },
        },
    }
    svcs = []
    for name in ("web-active", "web-preview"):
        svc = service("", name)
        del svc["metadata"]["namespace"]
        svcs.append(svc)
    return dump(*svcs, ro)


IGNORE_HASH = {
    "ignoreDifferences": [
        {"kind": "Service", "jsonPointers": ["/spec/selector/rollouts-pod-template-hash"]}
    ]
}


async def test_resync_mid_rollout_keeps_the_selectors_and_the_app_synced(
    env: AppEnv, gitops_crds: None
) -> None:
    env.repo.commit({"app.yaml": manifests("registry.local/web:1")})
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

        env.repo.commit({"app.yaml": manifests("registry.local/web:2")})
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
