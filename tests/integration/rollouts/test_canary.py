"""A basic canary (no traffic router) run by gitmoor's Rollout controller on the
real control plane: ``setWeight: 25``, ``pause: {duration: 5s}``,
``setWeight: 50``, ``pause: {}``, moved through by replica counts; a promote
finishes it; an abort returns every replica to the stable ReplicaSet; a retry
starts the update over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gitmoor.kube import wait_for
from gitmoor.rollouts.actions import undo
from support.rollouts import (
    HASH,
    abort,
    pod_template,
    promote,
    replicasets,
    ro_ref,
    rollout,
    rs_by_hash,
    running_rollouts,
    selector_hash,
    service,
    set_image,
    wait_healthy,
    wait_status,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

JSON = dict[str, Any]


def canary(namespace: str, image: str) -> JSON:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": pod_template(image, app="shop"),
            "strategy": {
                "canary": {
                    "canaryService": "shop-canary",
                    "stableService": "shop-stable",
                    "steps": [
                        {"setWeight": 25},
                        {"pause": {"duration": "5s"}},
                        {"setWeight": 50},
                        {"pause": {}},
                    ],
                }
            },
        },
    }


async def _counts(kube: KubeClient, namespace: str, new: str, stable: str) -> tuple[int, int]:
    n = await rs_by_hash(kube, namespace, new)
    s = await rs_by_hash(kube, namespace, stable)
    return (
        int((n or {}).get("spec", {}).get("replicas") or 0),
        int((s or {}).get("spec", {}).get("replicas") or 0),
    )


async def _new_image_to_first_pause(kube: KubeClient, namespace: str, image: str) -> str:
    """Set ``image`` and wait for its first pause (step 1); its pod-template hash."""
    await set_image(kube, namespace, "shop", image)
    st = await wait_status(
        kube,
        namespace,
        "shop",
        lambda s: s.get("currentStepIndex") == 1 and s.get("pauseConditions"),
        within=60,
        what=f"{image} at its first pause",
    )
    return str(st["currentPodHash"])


async def test_canary_steps_promote_abort_retry(
    kube: KubeClient, namespace: str, rollout_crds: None
) -> None:
    for svc in ("shop-canary", "shop-stable"):
        await kube.apply(service(namespace, svc, app="shop"), force=True)
    await kube.apply(canary(namespace, "registry.local/shop:1"), force=True)
    async with running_rollouts(kube, namespace) as ctrl:
        st = await wait_healthy(kube, namespace, "shop", what="the first version Healthy")
        v1 = st["stableRS"]
        assert st["currentStepIndex"] == 4

        await set_image(kube, namespace, "shop", "registry.local/shop:2")
        # Step 1/2: 25% of 4 replicas is one canary; then the 5 s pause.
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("currentStepIndex") == 1 and s.get("pauseConditions"),
            within=60,
            what="the timed pause after setWeight 25",
        )
        v2 = st["currentPodHash"]
        assert st["pauseConditions"][0]["reason"] == "CanaryPauseStep"
        assert st["phase"] == "Paused"
        assert await _counts(kube, namespace, v2, v1) == (1, 3)
        assert await selector_hash(kube, namespace, "shop-canary") == v2
        assert await selector_hash(kube, namespace, "shop-stable") == v1

        # The timed pause ends by itself; setWeight 50 makes it two and two; then
        # the indefinite pause holds until a promote.
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("currentStepIndex") == 3 and s.get("pauseConditions"),
            within=60,
            what="the indefinite pause after setWeight 50",
        )
        assert await _counts(kube, namespace, v2, v1) == (2, 2)
        assert st["stableRS"] == v1
        # Held at the pause, a reconcile (the 5 s resync here) writes nothing.
        rv = (await rollout(kube, namespace, "shop"))["metadata"]["resourceVersion"]
        done = ctrl.reconciles.get("ok", 0)

        async def reconciled_twice() -> bool:
            return ctrl.reconciles.get("ok", 0) >= done + 2

        await wait_for(reconciled_twice, within=30, what="two more reconciles")
        assert (await rollout(kube, namespace, "shop"))["metadata"]["resourceVersion"] == rv

        await promote(kube, namespace, "shop")
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("stableRS") == v2 and s.get("phase") == "Healthy",
            within=60,
            what="the promotion to the end",
        )
        assert st["currentStepIndex"] == 4
        assert await _counts(kube, namespace, v2, v1) == (4, 0)
        assert await selector_hash(kube, namespace, "shop-stable") == v2
        assert await selector_hash(kube, namespace, "shop-canary") == v2

        # Abort at the timed pause: everything back on the stable ReplicaSet.
        v3 = await _new_image_to_first_pause(kube, namespace, "registry.local/shop:3")
        await abort(kube, namespace, "shop")
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("phase") == "Degraded",
            within=60,
            what="the abort",
        )
        assert st["message"].startswith("RolloutAborted: Rollout aborted update to revision 3")

        async def back_on_stable() -> bool:
            return await _counts(kube, namespace, v3, v2) == (0, 4)

        await wait_for(back_on_stable, within=60, what="all replicas back on stable")
        assert await selector_hash(kube, namespace, "shop-canary") == v2
        assert await selector_hash(kube, namespace, "shop-stable") == v2

        # Retry (what the plugin's retry sends): the update starts over.
        await kube.merge_patch(
            ro_ref(namespace, "shop"), {"status": {"abort": False}}, subresource="status"
        )
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("currentStepIndex") == 1 and s.get("phase") == "Paused",
            within=60,
            what="the retried update at its first pause",
        )
        assert not st.get("abortedAt")
        assert await _counts(kube, namespace, v3, v2) == (1, 3)


async def test_progress_deadline_and_restart(
    kube: KubeClient, namespace: str, rollout_crds: None
) -> None:
    """An image whose pods never become Ready (the ``fail`` tag, by the simulated
    kubelet's rules) runs into progressDeadlineSeconds: Degraded with upstream's
    reason. ``spec.restartAt`` recreates the pods, one at a time, and is recorded."""
    obj = canary(namespace, "registry.local/shop:1")
    obj["spec"]["replicas"] = 2
    obj["spec"]["progressDeadlineSeconds"] = 3
    await kube.apply(obj, force=True)
    async with running_rollouts(kube, namespace):
        st = await wait_healthy(kube, namespace, "shop", what="the first version Healthy")
        v1 = st["stableRS"]
        pods = await kube.resource("", "v1", "Pod")

        async def pod_uids() -> set[str]:
            items = (
                await kube.list(pods, namespace, label_selector=f"rollouts-pod-template-hash={v1}")
            ).items
            return {
                p["metadata"]["uid"] for p in items if not p["metadata"].get("deletionTimestamp")
            }

        before = await pod_uids()
        assert len(before) == 2
        # A second ahead: pods of this very second are older than it (the timestamps
        # have whole seconds), and the controller wakes when it comes.
        stamp = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        await kube.merge_patch(ro_ref(namespace, "shop"), {"spec": {"restartAt": stamp}})
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("restartedAt") == stamp and s.get("phase") == "Healthy",
            within=60,
            what="the restart recorded",
        )
        after = await pod_uids()
        assert len(after) == 2 and not (after & before)

        await set_image(kube, namespace, "shop", "registry.local/shop:fail")
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("phase") == "Degraded",
            within=60,
            what="the progress deadline",
        )
        assert st["message"].startswith("ProgressDeadlineExceeded: ReplicaSet")
        assert st["message"].endswith("has timed out progressing.")


async def test_undo_after_abort_goes_back_to_the_stable_replicaset(
    kube: KubeClient, namespace: str, rollout_crds: None
) -> None:
    """``gitmoor rollout undo`` copies the stable ReplicaSet's (server-defaulted)
    template back into the Rollout: the controller recognises it as the stable
    one, as upstream does, and goes straight back to Healthy without a new
    ReplicaSet or any step."""
    obj = canary(namespace, "registry.local/shop:1")
    obj["spec"]["replicas"] = 2
    await kube.apply(obj, force=True)
    async with running_rollouts(kube, namespace):
        st = await wait_healthy(kube, namespace, "shop", what="v1")
        v1 = st["stableRS"]
        v2 = await _new_image_to_first_pause(kube, namespace, "registry.local/shop:2")
        await abort(kube, namespace, "shop")
        await wait_status(
            kube, namespace, "shop", lambda s: s.get("phase") == "Degraded", within=60, what="abort"
        )
        await undo(kube, namespace, "shop")
        st = await wait_status(
            kube,
            namespace,
            "shop",
            lambda s: s.get("currentPodHash") == v1 and s.get("phase") == "Healthy",
            within=60,
            what="back on v1",
        )
        assert st["stableRS"] == v1 and not st.get("abort")
        hashes = sorted(rs["metadata"]["labels"][HASH] for rs in await replicasets(kube, namespace))
        assert hashes == sorted([v1, v2])

        async def canary_gone() -> bool:
            return await _counts(kube, namespace, v2, v1) == (0, 2)

        await wait_for(canary_gone, within=60, what="the aborted canary at zero")
