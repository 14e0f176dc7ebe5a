"""Ownership under pressure: a hook never takes over a foreign object, two apps
never take one object from each other, and prune re-checks ownership at the
moment it deletes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gitmoor.engine.sync import SyncOptions
from gitmoor.kube import wait_for
from gitmoor.model.application import TRACKING_ANNOTATION
from support.apps import actions, configmap, dump, job, job_ref

if TYPE_CHECKING:
    from support.apps import AppEnv

HOOK = "gitmoor.io/hook"


async def test_a_hook_never_replaces_or_deletes_an_object_it_does_not_own(env: AppEnv) -> None:
    foreign = configmap("foreign", {"owner": "someone else"})
    foreign["metadata"]["namespace"] = env.namespace
    await env.kube.create(foreign)
    hook = configmap(
        "foreign",
        {"from": "hook"},
        annotations={HOOK: "PreSync", "gitmoor.io/hook-delete-policy": "HookSucceeded"},
    )
    env.repo.commit(
        {"app/hook.yaml": dump(hook), "app/cm.yaml": dump(configmap("app", {"k": "v"}))}
    )
    await env.create("hooked", path="app")
    result = await env.sync("hooked")
    assert result.phase.value == "Failed"
    assert "does not own" in result.message
    live = await env.get(env.cm("foreign"))
    assert live is not None and live["data"] == {"owner": "someone else"}
    assert TRACKING_ANNOTATION not in (live["metadata"].get("annotations") or {})
    assert await env.get(env.cm("app")) is None, "nothing after a failed PreSync hook"


async def test_two_apps_declaring_one_object_never_take_it_from_each_other(env: AppEnv) -> None:
    env.repo.commit(
        {
            "a/shared.yaml": dump(configmap("shared", {"from": "a"})),
            "b/shared.yaml": dump(configmap("shared", {"from": "b"})),
            "b/own.yaml": dump(configmap("b-own", {"k": "v"})),
        }
    )
    await env.create("app-a", path="a")
    await env.create("app-b", path="b")
    assert (await env.sync("app-a")).ok
    result = await env.sync("app-b")
    assert result.phase.value == "Failed"
    assert actions(result)["ConfigMap/shared"] == "failed"
    assert "owned by application" in result.message
    live = await env.get(env.cm("shared"))
    assert live is not None and live["data"] == {"from": "a"}
    assert (live["metadata"]["annotations"][TRACKING_ANNOTATION]).startswith(
        f"{env.apps_namespace}_app-a:"
    )
    # b stops declaring it and prunes: a's object stays.
    env.repo.commit({"b/own.yaml": dump(configmap("b-own", {"k": "v"}))}, remove=("b/shared.yaml",))
    assert (await env.sync("app-b", SyncOptions(prune=True, timeout=60))).ok
    assert await env.get(env.cm("shared")) is not None


async def test_prune_spares_an_object_adopted_while_the_sync_ran(env: AppEnv) -> None:
    env.repo.commit(
        {
            "a/keep.yaml": dump(configmap("keep", {"k": "v"})),
            "a/moving.yaml": dump(configmap("moving", {"k": "v"})),
        }
    )
    await env.create("app-a", path="a")
    assert (await env.sync("app-a")).ok
    # The next commit drops `moving` from a and adds a PreSync hook that runs 3 s:
    # the window in which another app adopts the object.
    slow = job("slow-hook", seconds=3, annotations={HOOK: "PreSync"})
    env.repo.commit({"a/hook.yaml": dump(slow)}, remove=("a/moving.yaml",))
    sync = asyncio.create_task(env.sync("app-a", SyncOptions(prune=True, timeout=60)))
    await wait_for(
        lambda: _exists(env, job_ref(env.namespace, "slow-hook")), within=20, what="hook running"
    )
    adopted = f"{env.apps_namespace}_app-b:/ConfigMap:{env.namespace}/moving"
    await env.kube.merge_patch(
        env.cm("moving"), {"metadata": {"annotations": {TRACKING_ANNOTATION: adopted}}}
    )
    result = await sync
    assert result.ok, result.message
    # Each step of the sync judges prune candidates from the live state it reads
    # then: once adopted, the object is no candidate at all.
    assert actions(result).get("ConfigMap/moving") != "pruned"
    assert await env.get(env.cm("moving")) is not None, "adopted meanwhile: never pruned"


async def _exists(env: AppEnv, ref: object) -> bool:
    return await env.get(ref) is not None  # type: ignore[arg-type]
