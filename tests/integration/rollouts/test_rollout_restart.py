"""A Rollout controller killed mid-rollout: its successor resumes the update
from the Rollout's status and the ReplicaSets' labels, and never creates a
second preview ReplicaSet (the ReplicaSet is found by its hash label first)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gitmoor.kube import wait_for
from support.rollouts import (
    KillableRollouts,
    RateServer,
    pod_template,
    promote,
    replicasets,
    rs_by_hash,
    selector_hash,
    service,
    set_image,
    success_rate_template,
    wait_healthy,
    wait_status,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

JSON = dict[str, Any]


def rollout(namespace: str, image: str) -> JSON:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "api", "namespace": namespace},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "api"}},
            "template": pod_template(image, app="api"),
            "strategy": {
                "blueGreen": {
                    "activeService": "api-active",
                    "previewService": "api-preview",
                    "autoPromotionEnabled": False,
                    "previewReplicaCount": 1,
                    "scaleDownDelaySeconds": 2,
                    "prePromotionAnalysis": {"templates": [{"templateName": "success-rate"}]},
                }
            },
        },
    }


async def test_killed_controller_resumes_without_a_second_preview(
    kube: KubeClient, namespace: str, rollout_crds: None
) -> None:
    rate = RateServer()
    ctrl = KillableRollouts(kube, namespace)
    with rate.serving():
        for svc in ("api-active", "api-preview"):
            await kube.apply(service(namespace, svc, app="api"), force=True)
        tpl = success_rate_template(namespace, rate.url)
        tpl["spec"].pop("args")
        await kube.apply(tpl, force=True)
        await kube.apply(rollout(namespace, "registry.local/api:1"), force=True)
        try:
            ctrl.start()
            st = await wait_healthy(kube, namespace, "api", what="the first version Healthy")
            v1 = st["stableRS"]
            await set_image(kube, namespace, "api", "registry.local/api:2")

            # Kill it the moment the preview ReplicaSet exists, before it has
            # recorded anything else about the update.
            async def preview_created() -> bool:
                return len(await replicasets(kube, namespace)) == 2

            await wait_for(preview_created, within=30, interval=0.05, what="the preview RS")
            await ctrl.kill()
            names_before = sorted(
                rs["metadata"]["name"] for rs in await replicasets(kube, namespace)
            )

            # A new controller, knowing only the cluster, carries on.
            ctrl.start()
            st = await wait_status(
                kube,
                namespace,
                "api",
                lambda s: s.get("phase") == "Paused",
                within=60,
                what="the resumed update paused for promotion",
            )
            v2 = st["currentPodHash"]
            rss = await replicasets(kube, namespace)
            assert sorted(rs["metadata"]["name"] for rs in rss) == names_before
            assert sorted(rs["metadata"]["name"] for rs in rss) == sorted(
                [f"api-{v1}", f"api-{v2}"]
            )
            preview = await rs_by_hash(kube, namespace, v2)
            assert preview is not None and preview["spec"]["replicas"] == 1
            assert await selector_hash(kube, namespace, "api-preview") == v2

            # Killed again while paused: the pause and the analysis verdict are in
            # the status, so the successor neither re-runs nor re-pauses anything.
            await ctrl.kill()
            ctrl.start()
            await asyncio.sleep(0)
            await promote(kube, namespace, "api")
            st = await wait_status(
                kube,
                namespace,
                "api",
                lambda s: s.get("stableRS") == v2 and s.get("phase") == "Healthy",
                within=60,
                what="the promotion after a restart",
            )
            assert await selector_hash(kube, namespace, "api-active") == v2
            assert len(await replicasets(kube, namespace)) == 2
            ar = await kube.resource("argoproj.io", "v1alpha1", "AnalysisRun")
            runs = (await kube.list(ar, namespace)).items
            assert [r["metadata"]["name"] for r in runs] == [f"api-{v2}-2-pre"]
        finally:
            await ctrl.kill()
