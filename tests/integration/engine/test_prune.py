"""Prune deletes only what this app can prove it created and Git no longer declares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.engine.sync import Phase, SyncOptions
from gitmoor.kube import wait_for
from gitmoor.model.application import TRACKING_ANNOTATION
from support.apps import SYNC_OPTIONS, actions, annotations_of, configmap, dump, gone

if TYPE_CHECKING:
    from support.apps import AppEnv

PRUNE = SyncOptions(prune=True, timeout=60)


async def _resources(env: AppEnv, name: str) -> dict[str, dict[str, object]]:
    app = await env.app(name)
    return {r["name"]: r for r in app.status.get("resources") or []}


async def test_prune_deletes_what_git_no_longer_declares(env: AppEnv) -> None:
    env.repo.commit({"keep.yaml": dump(configmap("keep")), "drop.yaml": dump(configmap("drop"))})
    await env.create("pruner")
    assert (await env.sync("pruner")).ok
    env.repo.commit(remove=("drop.yaml",))

    result = await env.sync("pruner", PRUNE)

    assert result.ok, result.message
    assert actions(result) == {"ConfigMap/keep": "unchanged", "ConfigMap/drop": "pruned"}
    await wait_for(lambda: gone(env.kube, env.cm("drop")), within=30, what="drop pruned")
    assert await env.get(env.cm("keep")) is not None
    app = await env.app("pruner")
    assert app.status["sync"]["status"] == "Synced"
    assert set(await _resources(env, "pruner")) == {"keep"}


async def test_without_prune_the_object_is_reported_and_kept(env: AppEnv) -> None:
    env.repo.commit({"keep.yaml": dump(configmap("keep")), "old.yaml": dump(configmap("old"))})
    await env.create("lazy")
    assert (await env.sync("lazy")).ok
    env.repo.commit(remove=("old.yaml",))

    result = await env.sync("lazy")  # prune off

    assert result.ok, result.message
    assert actions(result)["ConfigMap/old"] == "prune-skipped"
    assert await env.get(env.cm("old")) is not None
    app = await env.app("lazy")
    assert app.status["sync"]["status"] == "OutOfSync"
    old = (await _resources(env, "lazy"))["old"]
    assert old["requiresPruning"] is True
    assert old["status"] == "OutOfSync"
    # Still in the inventory: a later sync with prune deletes it.
    assert actions(await env.sync("lazy", PRUNE))["ConfigMap/old"] == "pruned"


async def test_prune_false_annotation_keeps_the_object(env: AppEnv) -> None:
    env.repo.commit(
        {
            "keep.yaml": dump(configmap("keep")),
            "precious.yaml": dump(configmap("precious", annotations={SYNC_OPTIONS: "Prune=false"})),
        }
    )
    await env.create("careful")
    assert (await env.sync("careful")).ok
    env.repo.commit(remove=("precious.yaml",))

    result = await env.sync("careful", PRUNE)

    assert result.ok, result.message
    (precious,) = [r for r in result.resources if r.ref.name == "precious"]
    assert precious.action.value == "prune-skipped"
    assert "Prune=false" in precious.message
    assert await env.get(env.cm("precious")) is not None
    entry = (await _resources(env, "careful"))["precious"]
    assert entry["requiresPruning"] is True
    assert "Prune=false" in str(entry["message"])


async def test_hand_made_object_with_a_formerly_managed_name_is_never_pruned(
    env: AppEnv,
) -> None:
    env.repo.commit(
        {"keep.yaml": dump(configmap("keep")), "shared.yaml": dump(configmap("shared"))}
    )
    await env.create("owner")
    assert (await env.sync("owner")).ok
    # Someone replaces the object by hand: same name, no tracking id. The app's
    # inventory still lists the name.
    await env.kube.delete(env.cm("shared"))
    await wait_for(lambda: gone(env.kube, env.cm("shared")), within=30, what="shared deleted")
    await env.kube.create(configmap("shared", {"by": "hand"}, namespace=env.namespace))
    # An unrelated object in the same namespace.
    await env.kube.create(configmap("bystander", namespace=env.namespace))
    env.repo.commit(remove=("shared.yaml",))

    result = await env.sync("owner", PRUNE)

    assert result.ok, result.message
    assert actions(result) == {"ConfigMap/keep": "unchanged"}
    hand_made = await env.get(env.cm("shared"))
    assert hand_made is not None
    assert hand_made["data"] == {"by": "hand"}
    assert await env.get(env.cm("bystander")) is not None


async def test_object_taken_over_by_another_app_is_never_pruned(env: AppEnv) -> None:
    env.repo.commit(
        {"a/keep.yaml": dump(configmap("a-keep")), "a/moved.yaml": dump(configmap("moved"))}
    )
    await env.create("first", path="a")
    assert (await env.sync("first")).ok
    # The object moves to another app (its tracking id is rewritten), and the
    # first app's git drops it, in one commit.
    env.repo.commit({"b/moved.yaml": dump(configmap("moved"))}, remove=("a/moved.yaml",))
    await env.create("second", path="b")
    assert (await env.sync("second")).ok
    second = await env.app("second")
    moved = await env.get(env.cm("moved"))
    assert annotations_of(moved)[TRACKING_ANNOTATION].startswith(second.tracking_prefix)

    result = await env.sync("first", PRUNE)

    assert result.ok, result.message
    assert actions(result) == {"ConfigMap/a-keep": "unchanged"}
    assert await env.get(env.cm("moved")) is not None
    first, _ = await env.refresh("first")
    assert first.status["sync"]["status"] == "Synced"


async def test_empty_render_is_refused_and_nothing_is_deleted(env: AppEnv) -> None:
    env.repo.commit(
        {"README.md": "the app\n", "a.yaml": dump(configmap("a")), "b.yaml": dump(configmap("b"))}
    )
    await env.create("empty")
    assert (await env.sync("empty")).ok
    before = await env.snapshot()
    env.repo.commit(remove=("a.yaml", "b.yaml"))

    result = await env.sync("empty", PRUNE)

    assert result.phase is Phase.FAILED
    assert "no objects" in result.message
    assert "allowEmpty" in result.message
    assert await env.snapshot() == before
    app = await env.app("empty")
    assert app.status["operationState"]["phase"] == "Failed"
    assert "allowEmpty" in app.status["operationState"]["message"]
    assert [c["type"] for c in app.status.get("conditions") or []] == ["ComparisonWarning"]

    allowed = await env.sync("empty", SyncOptions(prune=True, allow_empty=True, timeout=60))

    assert allowed.ok, allowed.message
    assert actions(allowed) == {"ConfigMap/a": "pruned", "ConfigMap/b": "pruned"}
    for name in ("a", "b"):
        await wait_for(lambda n=name: gone(env.kube, env.cm(n)), within=30, what=f"{name} gone")
