"""`gitmoor app sync` after `kubectl scale`, end to end with the real kubectl: the
sync makes the app Synced and prints the field it took; `--no-force-conflicts`
and the app's `ForceConflicts=false` refuse with the field and manager named and
exit code 1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from support.apps import deploy_ref, deployment, dump, kubectl

if TYPE_CHECKING:
    from pathlib import Path

    from support.apps import AppEnv
    from support.cli import Gitmoor


async def _scaled(env: AppEnv, kubeconfig: Path, name: str, replicas: int = 3) -> None:
    kubectl(kubeconfig, "-n", env.namespace, "scale", "deployment/web", f"--replicas={replicas}")
    live = await env.get(deploy_ref(env.namespace, "web"))
    assert (live or {})["spec"]["replicas"] == replicas
    assert (await env.refresh(name))[0].status["sync"]["status"] == "OutOfSync"


async def test_app_sync_takes_back_what_kubectl_scale_changed(
    gitmoor: Gitmoor, env: AppEnv, kubeconfig: Path
) -> None:
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=1))})
    await env.create("scaled")
    assert (await env.sync("scaled")).ok
    await _scaled(env, kubeconfig, "scaled")

    refused = gitmoor("app", "sync", "scaled", "--no-force-conflicts")

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert 'spec.replicas is managed by "kubectl"' in refused.stderr
    assert "took" not in refused.stdout
    assert (await env.get(deploy_ref(env.namespace, "web")) or {})["spec"]["replicas"] == 3
    assert (await env.app("scaled")).status["sync"]["status"] == "OutOfSync"

    synced = gitmoor("app", "sync", "scaled")

    assert synced.returncode == 0, synced.stdout + synced.stderr
    # One line per field taken, naming the object, the field and the manager.
    lines = [line.strip() for line in synced.stdout.splitlines()]
    assert f"Deployment.apps {env.namespace}/web: took spec.replicas from kubectl" in lines, (
        synced.stdout
    )
    assert "Succeeded" in synced.stdout
    assert (await env.get(deploy_ref(env.namespace, "web")) or {})["spec"]["replicas"] == 1
    got = gitmoor("app", "get", "scaled", "-o", "json")
    assert got.returncode == 0, got.stderr
    assert '"Synced"' in got.stdout


async def test_force_conflicts_false_on_the_app_refuses(
    gitmoor: Gitmoor, env: AppEnv, kubeconfig: Path
) -> None:
    env.repo.commit({"web.yaml": dump(deployment("web", replicas=1))})
    await env.create("optout", sync_options=("ForceConflicts=false",))
    assert (await env.sync("optout")).ok
    await _scaled(env, kubeconfig, "optout", replicas=4)

    refused = gitmoor("app", "sync", "optout")

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert 'spec.replicas is managed by "kubectl"' in refused.stderr
    assert (await env.get(deploy_ref(env.namespace, "web")) or {})["spec"]["replicas"] == 4
    assert (await env.app("optout")).status["operationState"]["phase"] == "Failed"

    # --force-conflicts, given explicitly, overrides the app's option.
    forced = gitmoor("app", "sync", "optout", "--force-conflicts")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "took spec.replicas from kubectl" in forced.stdout
    assert (await env.app("optout")).status["sync"]["status"] == "Synced"
