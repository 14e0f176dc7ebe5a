"""Argo CD's sync-options and compare-options annotations, and gitmoor's winning
over Argo CD's, on the real control plane (engine/plan.py lists what each does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.engine.sync import SyncOptions
from gitmoor.model import ObjectRef
from support.apps import SYNC_WAVE, actions, annotations_of, configmap, dump

if TYPE_CHECKING:
    from gitmoor.engine.sync import SyncEvent
    from support.apps import AppEnv

ARGO_OPTIONS = "argocd.argoproj.io/sync-options"
ARGO_WAVE = "argocd.argoproj.io/sync-wave"
PRUNE = SyncOptions(prune=True, timeout=60)


async def test_delete_false_keeps_the_object_when_the_app_is_deleted(env: AppEnv) -> None:
    env.repo.commit(
        {
            "kept.yaml": dump(configmap("kept", annotations={ARGO_OPTIONS: "Delete=false"})),
            "gone.yaml": dump(configmap("gone")),
        }
    )
    await env.create("retained")
    assert (await env.sync("retained")).ok

    deleted = (await env.engine.delete(await env.app("retained"), cascade=True)).deleted

    assert [r.name for r in deleted] == ["gone"]
    assert await env.get(env.cm("kept")) is not None


async def test_ignore_extraneous_leaves_the_app_synced(env: AppEnv) -> None:
    extra = configmap(
        "generated", annotations={"argocd.argoproj.io/compare-options": "IgnoreExtraneous"}
    )
    env.repo.commit({"cfg.yaml": dump(configmap("cfg")), "generated.yaml": dump(extra)})
    await env.create("tolerant")
    assert (await env.sync("tolerant")).ok
    env.repo.commit(remove=("generated.yaml",))

    app, _ = await env.refresh("tolerant")

    # Listed as requiring pruning, yet the app is Synced (Argo CD's rule)...
    entry = next(r for r in app.status["resources"] if r["name"] == "generated")
    assert entry["requiresPruning"] is True
    assert app.status["sync"]["status"] == "Synced"
    # ... and a sync with prune still deletes it.
    assert actions(await env.sync("tolerant", PRUNE))["ConfigMap/generated"] == "pruned"


async def test_prune_false_from_argocd_keeps_the_object(env: AppEnv) -> None:
    env.repo.commit(
        {
            "cfg.yaml": dump(configmap("cfg")),
            "pvc-like.yaml": dump(configmap("precious", annotations={ARGO_OPTIONS: "Prune=false"})),
        }
    )
    await env.create("keeper")
    assert (await env.sync("keeper")).ok
    env.repo.commit(remove=("pvc-like.yaml",))

    result = await env.sync("keeper", PRUNE)

    assert result.ok, result.message
    assert actions(result)["ConfigMap/precious"] == "prune-skipped"
    assert await env.get(env.cm("precious")) is not None


async def test_replace_true_writes_with_put_and_drops_foreign_fields(env: AppEnv) -> None:
    cfg = configmap("replaced", {"a": "1"}, annotations={ARGO_OPTIONS: "Replace=true"})
    env.repo.commit({"cfg.yaml": dump(cfg)})
    await env.create("replacer")
    first = await env.sync("replacer")
    assert first.ok, first.message
    assert actions(first) == {"ConfigMap/replaced": "created"}
    # Someone else adds a key; a replace (unlike an apply) removes it.
    await env.kube.merge_patch(env.cm("replaced"), {"data": {"b": "2"}})
    cfg["data"] = {"a": "3"}
    env.repo.commit({"cfg.yaml": dump(cfg)})

    result = await env.sync("replacer")

    assert result.ok, result.message
    assert actions(result) == {"ConfigMap/replaced": "configured"}
    live = await env.get(env.cm("replaced"))
    assert live is not None
    assert live["data"] == {"a": "3"}
    managers = {f["manager"] for f in live["metadata"]["managedFields"]}
    assert "gitmoor-replace" in managers
    # Unchanged: nothing written.
    again = await env.sync("replacer")
    assert actions(again) == {"ConfigMap/replaced": "unchanged"}


async def test_skip_dry_run_on_missing_resource_compares_instead_of_failing(
    env: AppEnv,
) -> None:
    group = f"{env.namespace}.example.org"
    widget: dict[str, Any] = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {
            "name": "w",
            "annotations": {ARGO_OPTIONS: "SkipDryRunOnMissingResource=true"},
        },
        "spec": {"size": 1},
    }
    env.repo.commit({"cfg.yaml": dump(configmap("cfg")), "widget.yaml": dump(widget)})
    await env.create("ahead")

    app, _ = await env.refresh("ahead")

    assert not [c for c in app.status.get("conditions") or [] if c["type"] == "ComparisonError"]
    assert app.status["sync"]["status"] == "OutOfSync"
    entry = next(r for r in app.status["resources"] if r["kind"] == "Widget")
    assert entry["namespace"] == env.namespace
    assert entry["health"]["status"] == "Missing"
    # The sync applies what it can and names the kind that is still not served.
    result = await env.sync("ahead")
    assert not result.ok
    failed = next(r for r in result.resources if r.ref.kind == "Widget")
    assert "Widget" in failed.message
    assert await env.get(env.cm("cfg")) is not None


async def test_gitmoor_annotation_wins_and_the_warning_is_shown(env: AppEnv) -> None:
    both = configmap("cfg", annotations={SYNC_WAVE: "1", ARGO_WAVE: "-3"})
    env.repo.commit({"cfg.yaml": dump(both), "early.yaml": dump(configmap("early"))})
    await env.create("both")
    events: list[SyncEvent] = []

    result = await env.engine.sync(
        await env.app("both"), SyncOptions(timeout=60), progress=events.append
    )

    assert result.ok, result.message
    # Wave 1 (gitmoor's), so after "early" in wave 0; Argo CD's -3 would put it first.
    assert [(r.ref.name, r.wave) for r in result.resources] == [("early", 0), ("cfg", 1)]
    warnings = [e.message for e in events if e.kind == "warning"]
    assert len(warnings) == 1
    assert "gitmoor.io/sync-wave (1)" in warnings[0]
    assert "argocd.argoproj.io/sync-wave" in warnings[0]
    assert "gitmoor's wins" in warnings[0]
    # The same warning stands as the app's condition after the sync's refresh.
    app = await env.app("both")
    (condition,) = app.status["conditions"]
    assert condition["type"] == "ComparisonWarning"
    assert warnings[0] in condition["message"]
    # Both annotations reach the cluster as written.
    live = await env.get(ObjectRef("", "v1", "ConfigMap", env.namespace, "cfg"))
    assert annotations_of(live)[ARGO_WAVE] == "-3"
