"""Sync semantics as Argo CD's and Flux's users expect, on the real control plane:
a sync takes back the fields Git declares from other field managers and says
which; ``force_conflicts=False`` and ``ForceConflicts=false`` refuse instead;
``RespectIgnoreDifferences=true`` leaves ignored fields to whoever set them; and
each object written records the commit (and tag) of the sync that wrote it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.engine.sync import Phase, SyncOptions, TakenField
from gitmoor.kube import FIELD_MANAGER
from gitmoor.model.application import REVISION_ANNOTATION, VERSION_ANNOTATION
from support.apps import (
    actions,
    annotations_of,
    configmap,
    deploy_ref,
    deployment,
    dump,
    kubectl,
)

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv

JSON = dict[str, Any]


def replicas_owners(live: JSON) -> list[str]:
    return [
        m["manager"]
        for m in live["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    ]


async def scaled_app(env: AppEnv, kubeconfig: Path, name: str, **create: Any) -> None:
    """An app whose Deployment (replicas 1 in Git) `kubectl scale` set to 3."""
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=1))})
    await env.create(name, **create)
    first = await env.sync(name)
    assert first.ok, first.message
    kubectl(kubeconfig, "-n", env.namespace, "scale", "deployment/web", "--replicas=3")
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert live is not None
    assert live["spec"]["replicas"] == 3
    assert "kubectl" in replicas_owners(live)


async def test_sync_takes_the_field_kubectl_scale_set_and_reports_it(
    env: AppEnv, kubeconfig: Path
) -> None:
    await scaled_app(env, kubeconfig, "taker")

    result = await env.sync("taker")

    assert result.ok, result.message
    assert actions(result) == {"Deployment/web": "configured"}
    (web,) = result.resources
    assert web.taken == (TakenField("spec.replicas", "kubectl"),)
    assert web.message == "took spec.replicas from kubectl"
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert live is not None
    assert live["spec"]["replicas"] == 1
    assert replicas_owners(live) == [FIELD_MANAGER]
    app = await env.app("taker")
    assert app.status["sync"]["status"] == "Synced"
    assert app.status["operationState"]["phase"] == "Succeeded"
    (recorded,) = app.status["operationState"]["syncResult"]["resources"]
    assert recorded["takenFields"] == [{"field": "spec.replicas", "manager": "kubectl"}]


async def test_force_conflicts_off_refuses_naming_field_and_manager(
    env: AppEnv, kubeconfig: Path
) -> None:
    await scaled_app(env, kubeconfig, "refuser")

    result = await env.sync("refuser", SyncOptions(force_conflicts=False, timeout=60))

    assert result.phase is Phase.FAILED
    assert actions(result) == {"Deployment/web": "failed"}
    assert 'spec.replicas is managed by "kubectl"' in result.resources[0].message
    assert 'spec.replicas is managed by "kubectl"' in result.message
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert (live or {})["spec"]["replicas"] == 3
    app = await env.app("refuser")
    assert app.status["operationState"]["phase"] == "Failed"
    assert app.status["sync"]["status"] == "OutOfSync"


async def test_force_conflicts_false_sync_option_refuses_until_forced(
    env: AppEnv, kubeconfig: Path
) -> None:
    await scaled_app(env, kubeconfig, "optout", sync_options=("ForceConflicts=false",))

    refused = await env.sync("optout")

    assert refused.phase is Phase.FAILED
    assert 'spec.replicas is managed by "kubectl"' in refused.message
    assert "ForceConflicts=false" in refused.message
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert (live or {})["spec"]["replicas"] == 3

    # An explicit force (`app sync --force-conflicts`) overrides the app's option.
    forced = await env.sync("optout", SyncOptions(force_conflicts=True, timeout=60))
    assert forced.ok, forced.message
    assert forced.resources[0].taken == (TakenField("spec.replicas", "kubectl"),)


async def test_respect_ignore_differences_keeps_the_other_managers_value(
    env: AppEnv, kubeconfig: Path
) -> None:
    ignore = {
        "ignoreDifferences": [
            {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
        ]
    }
    await scaled_app(
        env, kubeconfig, "respectful", sync_options=("RespectIgnoreDifferences=true",), spec=ignore
    )
    # A change Git makes elsewhere in the object: the sync must write it.
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=1, image="nginx:1.28"))})

    result = await env.sync("respectful")

    assert result.ok, result.message
    assert actions(result) == {"Deployment/web": "configured"}
    assert result.resources[0].taken == ()
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert live["spec"]["replicas"] == 3
    assert "kubectl" in replicas_owners(live)
    assert (await env.app("respectful")).status["sync"]["status"] == "Synced"


async def test_written_objects_record_commit_and_tag_unchanged_ones_keep_theirs(
    env: AppEnv,
) -> None:
    c1 = env.repo.commit(
        {"a.yaml": dump(configmap("a", {"v": "1"})), "b.yaml": dump(configmap("b"))}
    )
    env.repo.tag("v1.0.0")
    source = {"repoURL": env.repo.url, "path": ".", "targetRevision": "^1"}
    await env.create("versioned", spec={"source": source})

    first = await env.sync("versioned")

    assert first.ok, first.message
    for name in ("a", "b"):
        notes = annotations_of(await env.get(env.cm(name)))
        assert notes[REVISION_ANNOTATION] == c1
        assert notes[VERSION_ANNOTATION] == "v1.0.0"

    # A new release changes only a: only a is written, and only a records it.
    before = await env.snapshot()
    c2 = env.repo.commit({"a.yaml": dump(configmap("a", {"v": "2"}))})
    env.repo.tag("v1.1.0")

    second = await env.sync("versioned")

    assert second.ok, second.message
    assert actions(second) == {"ConfigMap/a": "configured", "ConfigMap/b": "unchanged"}
    a, b = await env.get(env.cm("a")), await env.get(env.cm("b"))
    assert (annotations_of(a)[REVISION_ANNOTATION], annotations_of(a)[VERSION_ANNOTATION]) == (
        c2,
        "v1.1.0",
    )
    assert (annotations_of(b)[REVISION_ANNOTATION], annotations_of(b)[VERSION_ANNOTATION]) == (
        c1,
        "v1.0.0",
    )
    after = await env.snapshot()
    assert after[("ConfigMap", "b")] == before[("ConfigMap", "b")]
    # The annotations differ from the commit compared for b, yet b is Synced.
    app, comparison = await env.refresh("versioned")
    assert comparison is not None
    assert app.status["sync"]["status"] == "Synced"
    assert app.status["sync"]["revision"] == c2

    # A re-sync with nothing changed writes nothing.
    again = await env.sync("versioned")

    assert again.ok, again.message
    assert set(actions(again).values()) == {"unchanged"}
    assert await env.snapshot() == after
    assert (await env.app("versioned")).status["sync"]["status"] == "Synced"


async def test_a_sync_by_commit_after_resolving_the_target_records_the_tag(env: AppEnv) -> None:
    # The controller resolves the target, then syncs that commit.
    env.repo.commit({"a.yaml": dump(configmap("a"))})
    env.repo.tag("v2.0.0")
    source = {"repoURL": env.repo.url, "path": ".", "targetRevision": "v2.0.0"}
    await env.create("bycommit", spec={"source": source})
    commit = await env.engine.resolve(await env.app("bycommit"))

    result = await env.sync("bycommit", revision=commit)

    assert result.ok, result.message
    notes = annotations_of(await env.get(env.cm("a")))
    assert notes[REVISION_ANNOTATION] == commit
    assert notes[VERSION_ANNOTATION] == "v2.0.0"

    # A branch target has no tag: the next object written drops gitmoor.io/version.
    c2 = env.repo.commit({"a.yaml": dump(configmap("a", {"k": "2"}))})
    await env.kube.merge_patch(
        env.app_ref("bycommit"), {"spec": {"source": {"targetRevision": "main"}}}
    )
    result = await env.sync("bycommit")
    assert result.ok, result.message
    notes = annotations_of(await env.get(env.cm("a")))
    assert notes[REVISION_ANNOTATION] == c2
    assert VERSION_ANNOTATION not in notes
