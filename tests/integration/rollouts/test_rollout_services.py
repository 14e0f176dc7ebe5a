"""A Service answers to one Rollout: the first to switch its selector marks it
(``argo-rollouts.argoproj.io/managed-by-rollouts``), and a second Rollout naming
it is refused with upstream's InvalidSpec message, so the two never take turns
pointing the Service at their own pods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.model import ObjectRef
from support.rollouts import (
    pod_template,
    running_rollouts,
    selector_hash,
    service,
    wait_healthy,
    wait_status,
)

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

JSON = dict[str, Any]
MANAGED_BY = "argo-rollouts.argoproj.io/managed-by-rollouts"


def blue_green(namespace: str, name: str, image: str) -> JSON:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web", "rollout": name}},
            "template": {
                **pod_template(image),
                "metadata": {"labels": {"app": "web", "rollout": name}},
            },
            "strategy": {"blueGreen": {"activeService": "web-active"}},
        },
    }


async def test_a_second_rollout_cannot_take_a_service_another_one_manages(
    kube: KubeClient, namespace: str, rollout_crds: None
) -> None:
    await kube.apply(service(namespace, "web-active"), force=True)
    await kube.apply(blue_green(namespace, "first", "registry.local/web:1"), force=True)
    async with running_rollouts(kube, namespace):
        st = await wait_healthy(kube, namespace, "first", what="the first Rollout Healthy")
        first_hash = st["currentPodHash"]
        assert await selector_hash(kube, namespace, "web-active") == first_hash
        svc = await kube.get(ObjectRef("", "v1", "Service", namespace, "web-active"))
        assert svc is not None
        assert svc["metadata"]["annotations"][MANAGED_BY] == "first"

        await kube.apply(blue_green(namespace, "second", "registry.local/web:2"), force=True)
        st = await wait_status(
            kube,
            namespace,
            "second",
            lambda s: s.get("phase") == "Degraded",
            within=60,
            what="the second Rollout refused",
        )
        assert st["message"] == ('InvalidSpec: Service "web-active" is managed by another Rollout')
        # the Service stayed with the first Rollout throughout
        assert await selector_hash(kube, namespace, "web-active") == first_hash
