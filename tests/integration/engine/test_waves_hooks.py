"""Order: PreSync hooks, then waves lowest first (each healthy before the next),
PostSync hooks last; a failing PreSync hook stops the sync before any resource;
CRDs are Established before their custom resources.

Order is read from the cluster, not from the engine's own account: an object
created after a Job completed has a creationTimestamp no earlier than the Job's
completionTime. Both have one-second resolution, and a Job here takes at least
one second (``sleep N``, README "How pods behave"), so an object created while
the Job still ran would carry an earlier second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.engine.sync import Phase
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from support.apps import (
    HOOK,
    HOOK_DELETE_POLICY,
    SYNC_WAVE,
    actions,
    configmap,
    dump,
    gone,
    job,
    job_ref,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv


def _created(obj: dict[str, Any] | None) -> str:
    assert obj is not None
    return str(obj["metadata"]["creationTimestamp"])


def _completed(obj: dict[str, Any] | None) -> str:
    assert obj is not None
    done = obj["status"].get("completionTime")
    assert done, obj["status"]
    return str(done)


async def test_presync_then_waves_then_postsync(env: AppEnv) -> None:
    env.repo.commit(
        {
            "pre.yaml": dump(job("pre", seconds=1, annotations={HOOK: "PreSync"})),
            "migrate.yaml": dump(job("migrate", seconds=1, annotations={SYNC_WAVE: "-1"})),
            "app.yaml": dump(configmap("app-config")),
            "post.yaml": dump(
                configmap("post-marker", annotations={HOOK: "PostSync"}),
                job(
                    "smoke",
                    seconds=1,
                    annotations={HOOK: "PostSync", HOOK_DELETE_POLICY: "HookSucceeded"},
                ),
            ),
        }
    )
    await env.create("ordered")

    result = await env.sync("ordered")

    assert result.ok, result.message
    assert actions(result) == {
        "Job/pre": "hook-succeeded",
        "Job/migrate": "created",
        "ConfigMap/app-config": "created",
        "ConfigMap/post-marker": "hook-succeeded",
        "Job/smoke": "hook-succeeded",
    }
    pre = await env.get(job_ref(env.namespace, "pre"))
    migrate = await env.get(job_ref(env.namespace, "migrate"))
    app_config = await env.get(env.cm("app-config"))
    post = await env.get(env.cm("post-marker"))
    # PreSync completed before wave -1 started.
    assert _created(migrate) >= _completed(pre)
    # Wave -1 completed (healthy) before wave 0 started.
    assert _created(app_config) >= _completed(migrate)
    # PostSync ran after every wave was applied and healthy.
    assert _created(post) >= _completed(migrate)
    assert _created(post) >= _created(app_config)
    # HookSucceeded: the smoke test is deleted once it passed; the others stay.
    await wait_for(lambda: gone(env.kube, job_ref(env.namespace, "smoke")), within=30, what="smoke")
    assert pre is not None
    # Hooks are not the app's resources: they are out of its status and never pruned.
    app = await env.app("ordered")
    assert {r["name"] for r in app.status["resources"]} == {"migrate", "app-config"}
    assert app.status["sync"]["status"] == "Synced"
    assert app.status["health"]["status"] == "Healthy"

    # Hooks run on every sync: BeforeHookCreation (the default) replaces the old
    # PreSync Job; the resources, unchanged, are not written.
    again = await env.sync("ordered")

    assert again.ok, again.message
    assert actions(again) == {
        "Job/pre": "hook-succeeded",
        "Job/migrate": "unchanged",
        "ConfigMap/app-config": "unchanged",
        "ConfigMap/post-marker": "hook-succeeded",
        "Job/smoke": "hook-succeeded",
    }
    pre_again = await env.get(job_ref(env.namespace, "pre"))
    assert pre_again is not None
    assert pre_again["metadata"]["uid"] != pre["metadata"]["uid"]
    assert _created(pre_again) >= _created(post)
    assert ((await env.get(env.cm("app-config"))) or {})["metadata"]["resourceVersion"] == (
        app_config or {}
    )["metadata"]["resourceVersion"]


async def test_failing_presync_hook_fails_the_sync_before_any_resource(env: AppEnv) -> None:
    env.repo.commit(
        {
            "pre.yaml": dump(
                job(
                    "pre-fail",
                    image="busybox:fail",
                    annotations={HOOK: "PreSync", HOOK_DELETE_POLICY: "HookFailed"},
                )
            ),
            "app.yaml": dump(configmap("never")),
            "hooks.yaml": dump(
                configmap("post-marker", annotations={HOOK: "PostSync"}),
                configmap("fail-marker", annotations={HOOK: "SyncFail"}),
            ),
        }
    )
    await env.create("doomed")

    result = await env.sync("doomed")

    assert result.phase is Phase.FAILED
    assert "pre-fail" in result.message
    assert "Degraded" in result.message
    assert actions(result) == {
        "Job/pre-fail": "hook-failed",
        "ConfigMap/fail-marker": "hook-succeeded",
    }
    assert await env.get(env.cm("never")) is None
    assert await env.get(env.cm("post-marker")) is None
    assert await env.get(env.cm("fail-marker")) is not None
    # HookFailed: the failed hook is deleted.
    await wait_for(
        lambda: gone(env.kube, job_ref(env.namespace, "pre-fail")), within=30, what="pre-fail"
    )
    app = await env.app("doomed")
    assert app.status["operationState"]["phase"] == "Failed"
    assert "history" not in app.status


# ---------------------------------------------------------------- CRD and custom resource


@pytest.fixture
async def crd_group(kube: KubeClient, namespace: str) -> AsyncIterator[str]:
    """An API group of this test's own; its CRD (cluster-scoped) is deleted afterwards."""
    group = f"{namespace}.example.org"
    yield group
    await kube.delete(
        ObjectRef("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "", f"widgets.{group}")
    )
    kube.invalidate_discovery()


def _crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


async def test_crd_and_custom_resource_in_one_sync(env: AppEnv, crd_group: str) -> None:
    widget = {
        "apiVersion": f"{crd_group}/v1",
        "kind": "Widget",
        "metadata": {"name": "gizmo"},
        "spec": {"size": 3},
    }
    # The CR sorts before the CRD by file name: the plan, not the files, orders them.
    env.repo.commit({"a-widget.yaml": dump(widget), "crd.yaml": dump(_crd(crd_group))})
    await env.create("custom")

    result = await env.sync("custom")

    assert result.ok, result.message
    assert actions(result) == {
        "CustomResourceDefinition/widgets." + crd_group: "created",
        "Widget/gizmo": "created",
    }
    live = await env.get(ObjectRef(crd_group, "v1", "Widget", env.namespace, "gizmo"))
    assert live is not None
    assert live["spec"] == {"size": 3}
    app = await env.healthy("custom")
    assert app.status["sync"]["status"] == "Synced"
    again = await env.sync("custom")
    assert {r.action.value for r in again.resources} == {"unchanged"}
