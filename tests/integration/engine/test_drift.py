"""Drift made in the cluster by hand: refresh reports it, ignoreDifferences hides
what the user says is not gitmoor's, and a sync takes a field another field
manager owns unless forcing is off (then it refuses, naming field and manager)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.engine.sync import Phase, SyncOptions
from gitmoor.kube import FIELD_MANAGER
from support.apps import actions, deploy_ref, deployment, diff_changes, dump, kubectl

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv


async def test_manual_scale_is_reported_as_drift_with_the_field(
    env: AppEnv, kubeconfig: Path
) -> None:
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=1))})
    await env.create("drift")
    assert (await env.sync("drift")).ok
    app, comparison = await env.refresh("drift")
    assert comparison is not None
    assert app.status["sync"]["status"] == "Synced"

    kubectl(kubeconfig, "-n", env.namespace, "scale", "deployment/web", "--replicas=3")

    app, comparison = await env.refresh("drift")
    assert comparison is not None
    assert app.status["sync"]["status"] == "OutOfSync"
    (web,) = [r for r in comparison.resources if r.ref.name == "web"]
    assert web.sync.value == "OutOfSync"
    assert web.diff is not None
    removed, added = diff_changes(web.diff.diff)
    assert removed == ["replicas: 3"]
    assert added == ["replicas: 1"]
    (status,) = [r for r in app.status["resources"] if r["name"] == "web"]
    assert status["status"] == "OutOfSync"


async def test_merge_patch_drift_is_hidden_by_ignore_differences(
    env: AppEnv, kubeconfig: Path
) -> None:
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=1))})
    await env.create("ignored")
    assert (await env.sync("ignored")).ok
    # Another actor (an autoscaler, say) sets replicas through a merge patch.
    kubectl(
        kubeconfig,
        *("-n", env.namespace, "patch", "deployment/web", "--type=merge"),
        *("-p", '{"spec": {"replicas": 2}}'),
    )
    app, _ = await env.refresh("ignored")
    assert app.status["sync"]["status"] == "OutOfSync"

    await env.kube.merge_patch(
        env.app_ref("ignored"),
        {
            "spec": {
                "ignoreDifferences": [
                    {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
                ]
            }
        },
    )

    app, comparison = await env.refresh("ignored")
    assert comparison is not None
    assert app.status["sync"]["status"] == "Synced"
    assert all(r.sync.value == "Synced" for r in comparison.resources)
    # And a sync leaves the other actor's value alone: nothing differs, nothing is written.
    result = await env.sync("ignored")
    assert result.ok, result.message
    assert actions(result) == {"Deployment/web": "unchanged"}
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert (live or {})["spec"]["replicas"] == 2


async def test_conflict_with_kubectl_scale_names_field_and_manager(
    env: AppEnv, kubeconfig: Path
) -> None:
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=1))})
    await env.create("conflict")
    assert (await env.sync("conflict")).ok
    # kubectl scale writes through the scale subresource as field manager "kubectl",
    # which takes .spec.replicas away from gitmoor.
    kubectl(kubeconfig, "-n", env.namespace, "scale", "deployment/web", "--replicas=3")
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=2))})

    result = await env.sync("conflict", SyncOptions(force_conflicts=False, timeout=60))

    assert result.phase is Phase.FAILED
    assert actions(result) == {"Deployment/web": "failed"}
    (web,) = result.resources
    assert 'spec.replicas is managed by "kubectl"' in web.message
    assert "force" in web.message
    assert "spec.replicas" in result.message
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert (live or {})["spec"]["replicas"] == 3
    app = await env.app("conflict")
    assert app.status["operationState"]["phase"] == "Failed"
    # A dry-run sync predicts the same conflict rather than "configured".
    dry = await env.sync("conflict", SyncOptions(dry_run=True, force_conflicts=False, timeout=60))
    assert dry.phase is Phase.FAILED
    assert "spec.replicas" in dry.resources[0].message
    # By default a dry run says what it would take.
    dry = await env.sync("conflict", SyncOptions(dry_run=True, timeout=60))
    assert dry.ok, dry.message
    assert dry.resources[0].message == "dry run; would take spec.replicas from kubectl"

    forced = await env.sync("conflict")

    assert forced.ok, forced.message
    assert actions(forced) == {"Deployment/web": "configured"}
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert live is not None
    assert live["spec"]["replicas"] == 2
    owners = [
        m["manager"]
        for m in live["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    ]
    assert owners == [FIELD_MANAGER]
