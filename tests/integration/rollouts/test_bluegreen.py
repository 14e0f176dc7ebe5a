"""A blueGreen Rollout run by gitmoor's Rollout controller on the real control
plane (the ReplicaSet controller makes the pods, the simulated nodes make them
Ready), with the pre-promotion analysis a web metric against a local HTTP server
(the AnalysisRun controller runs it for real).

The Rollout is the seed's 7.4 shape: activeService and previewService,
autoPromotionEnabled false, scaleDownDelaySeconds, prePromotionAnalysis with the
``success-rate`` template and an arg."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gitmoor.engine.normalize import IgnoreRule
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.rollouts.replicasets import FIELD_MANAGER
from support.rollouts import (
    HASH,
    RateServer,
    pod_template,
    promote,
    rs_by_hash,
    running_rollouts,
    selector_hash,
    service,
    set_image,
    status,
    success_rate_template,
    wait_healthy,
    wait_status,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

JSON = dict[str, Any]


def blue_green(namespace: str, image: str) -> JSON:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": pod_template(image),
            "strategy": {
                "blueGreen": {
                    "activeService": "web-active",
                    "previewService": "web-preview",
                    "autoPromotionEnabled": False,
                    "scaleDownDelaySeconds": 3,
                    "abortScaleDownDelaySeconds": 2,
                    "prePromotionAnalysis": {
                        "templates": [{"templateName": "success-rate"}],
                        "args": [{"name": "service-name", "value": "web-preview"}],
                    },
                }
            },
        },
    }


async def _apply_as_app(kube: KubeClient, obj: JSON) -> None:
    """What an app's sync does: server-side apply by manager ``gitmoor``, forced."""
    await kube.apply(obj, force=True)


async def test_blue_green_promote_then_abort_on_failed_analysis(
    kube: KubeClient, namespace: str, rollout_crds: None
) -> None:
    rate = RateServer()
    with rate.serving():
        for svc in ("web-active", "web-preview"):
            await _apply_as_app(kube, service(namespace, svc))
        await _apply_as_app(kube, success_rate_template(namespace, rate.url))
        await _apply_as_app(kube, blue_green(namespace, "registry.local/web:1"))
        async with running_rollouts(kube, namespace):
            # 1. The first version goes straight to active: no analysis, no pause.
            st = await wait_healthy(kube, namespace, "web", what="the first version Healthy")
            v1 = st["currentPodHash"]
            assert st["stableRS"] == v1
            assert st["blueGreen"]["activeSelector"] == v1
            assert await selector_hash(kube, namespace, "web-active") == v1
            assert await selector_hash(kube, namespace, "web-preview") == v1
            rs1 = await rs_by_hash(kube, namespace, v1)
            assert rs1 is not None and rs1["metadata"]["name"] == f"web-{v1}"
            owner = rs1["metadata"]["ownerReferences"][0]
            assert (owner["kind"], owner["name"], owner["controller"]) == ("Rollout", "web", True)
            assert rs1["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "1"
            assert not (
                await kube.list(
                    await kube.resource("argoproj.io", "v1alpha1", "AnalysisRun"), namespace
                )
            ).items

            # 2. A new image: a preview ReplicaSet, the preview Service on it, the
            #    analysis run (passing), then the pause for a promote.
            await set_image(kube, namespace, "web", "registry.local/web:2")
            st = await wait_status(
                kube,
                namespace,
                "web",
                lambda s: (
                    s.get("phase") == "Paused"
                    and (s.get("blueGreen", {}).get("prePromotionAnalysisRunStatus") or {}).get(
                        "status"
                    )
                    == "Successful"
                ),
                within=60,
                what="the preview analysed and paused",
            )
            v2 = st["currentPodHash"]
            assert v2 != v1
            assert st["message"] == "BlueGreenPause"
            assert st["pauseConditions"][0]["reason"] == "BlueGreenPause"
            assert st["controllerPause"] is True
            assert st["blueGreen"]["prePromotionAnalysisRunStatus"]["name"] == f"web-{v2}-2-pre"
            assert await selector_hash(kube, namespace, "web-preview") == v2
            assert await selector_hash(kube, namespace, "web-active") == v1
            rs2 = await rs_by_hash(kube, namespace, v2)
            assert rs2 is not None and rs2["spec"]["replicas"] == 2

            # 3. Promote as the kubectl plugin does: the active Service switches.
            await promote(kube, namespace, "web")
            st = await wait_status(
                kube,
                namespace,
                "web",
                lambda s: s.get("stableRS") == v2 and s.get("phase") == "Healthy",
                within=60,
                what="the promotion",
            )
            assert st["blueGreen"]["activeSelector"] == v2
            assert await selector_hash(kube, namespace, "web-active") == v2

            # 4. The old ReplicaSet is scaled down after scaleDownDelaySeconds,
            #    by the deadline written on it.
            old = await rs_by_hash(kube, namespace, v1)
            assert old is not None
            if old["spec"]["replicas"] > 0:
                assert "scale-down-deadline" in old["metadata"].get("annotations", {})

            async def old_down() -> bool:
                rs = await rs_by_hash(kube, namespace, v1)
                return rs is not None and rs["spec"]["replicas"] == 0

            await wait_for(old_down, within=30, what="the old ReplicaSet scaled down")

            # 5. A failing analysis: the Rollout aborts, the active Service never
            #    leaves the stable ReplicaSet, the phase is Degraded naming the metric.
            rate.rate = 0.5
            await set_image(kube, namespace, "web", "registry.local/web:3")
            seen_active: set[str] = set()

            async def aborted() -> JSON | None:
                seen_active.add(await selector_hash(kube, namespace, "web-active"))
                s = await status(kube, namespace, "web")
                return s if s.get("phase") == "Degraded" else None

            st = await wait_for(aborted, within=60, interval=0.25, what="the abort")
            v3 = st["currentPodHash"]
            assert seen_active == {v2}
            assert st["abort"] is True and st["abortedAt"]
            assert st["message"].startswith(
                "RolloutAborted: Rollout aborted update to revision 3: "
            )
            assert "success-rate" in st["message"]
            assert st["blueGreen"]["prePromotionAnalysisRunStatus"]["status"] == "Failed"
            assert await selector_hash(kube, namespace, "web-preview") == v2

            async def preview_down() -> bool:
                rs = await rs_by_hash(kube, namespace, v3)
                return rs is not None and rs["spec"]["replicas"] == 0

            await wait_for(preview_down, within=30, what="the aborted preview scaled down")
            assert await selector_hash(kube, namespace, "web-active") == v2
            stable = await rs_by_hash(kube, namespace, v2)
            assert stable is not None and stable["spec"]["replicas"] == 2


async def test_selector_key_and_the_apps_forced_apply(kube: KubeClient, namespace: str) -> None:
    """GitOps-safety against the real API server. A Service's ``spec.selector`` is
    an atomic map under server-side apply: the app's forced apply of its Git
    Service (manager ``gitmoor``) replaces the whole selector, dropping the hash
    key the Rollout controller added (its own manager). The app keeps the key by
    ignoring ``/spec/selector/rollouts-pod-template-hash`` in its diff and sending
    the live value back (Argo CD's RespectIgnoreDifferences, gitmoor's
    ``IgnoreRule.keep_live``): the dry-run then predicts no change and the
    forced apply leaves the key."""
    svc_ref = ObjectRef("", "v1", "Service", namespace, "web-active")
    git_svc = service(namespace, "web-active")
    await kube.apply(git_svc, force=True)
    rs_hash = "abc123"
    # What the Rollout controller writes (context.point_service).
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web-active", "namespace": namespace},
            "spec": {"selector": {"app": "web", HASH: rs_hash}},
        },
        field_manager=FIELD_MANAGER,
        force=True,
    )
    live = await kube.get(svc_ref)
    assert live is not None and live["spec"]["selector"] == {"app": "web", HASH: rs_hash}

    # The plain Git manifest: the dry-run predicts the key's removal (OutOfSync).
    dry = await kube.apply(git_svc, force=True, dry_run=True)
    assert dry["spec"]["selector"] == {"app": "web"}

    # With the key ignored and respected, nothing differs and nothing is removed.
    rule = IgnoreRule(group="", kind="Service", json_pointers=(f"/spec/selector/{HASH}",))
    desired = json.loads(json.dumps(git_svc))
    rule.keep_live(desired, live)
    dry = await kube.apply(desired, force=True, dry_run=True)
    assert dry["spec"]["selector"] == {"app": "web", HASH: rs_hash}
    await kube.apply(desired, force=True)
    live = await kube.get(svc_ref)
    assert live is not None and live["spec"]["selector"] == {"app": "web", HASH: rs_hash}
