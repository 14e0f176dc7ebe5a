"""Deleting an app whose objects cannot all be deleted, as Argo CD does: its
destination cluster no longer registered, the app goes and its objects (which
cannot be reached) stay, and gitmoor says so; an object the API refuses to
delete keeps the app, and the error names the object."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gitmoor.engine import DeleteIncompleteError, Engine
from gitmoor.kube import load_kubeconfig, wait_for
from gitmoor.settings.clusters import ClusterRegistry, add_cluster, remove_cluster
from support.admission import PROTECTED_LABEL, deletes_refused
from support.apps import AppEnv, configmap, dump, gone

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from support.cli import Gitmoor
    from support.gitrepo import GitRepo


@pytest.fixture
async def away(
    kube: KubeClient,
    kubeconfig: Path,
    repo: GitRepo,
    namespace: str,
    apps_namespace: str,
    git_cache: Path,
) -> AsyncIterator[AppEnv]:
    """An AppEnv whose engine resolves clusters, with this control plane also
    registered as cluster ``away`` (re-read on every lookup)."""
    await add_cluster(kube, "away", load_kubeconfig(kubeconfig), namespace=apps_namespace)
    registry = ClusterRegistry(kube, namespace=apps_namespace, recheck_after=0)
    engine = Engine(kube, git_cache_dir=git_cache, namespace=apps_namespace, clusters=registry)
    env = AppEnv(kube, engine, repo, namespace, apps_namespace)
    try:
        yield env
    finally:
        await env.cleanup()
        await registry.aclose()


def protected_cm(name: str) -> dict[str, object]:
    cm = configmap(name)
    cm["metadata"]["labels"] = {PROTECTED_LABEL: "true"}
    return cm


async def test_cli_deletes_the_app_of_an_unregistered_cluster_and_names_what_it_left(
    away: AppEnv, gitmoor: Gitmoor
) -> None:
    away.repo.commit({"a.yaml": dump(configmap("a")), "b.yaml": dump(configmap("b"))})
    await away.create(
        "faraway", spec={"destination": {"name": "away", "namespace": away.namespace}}
    )
    assert (await away.sync("faraway")).ok
    assert await remove_cluster(away.kube, "away", away.apps_namespace)

    done = gitmoor("app", "delete", "faraway")

    assert done.returncode == 0, done.stderr
    assert "left 2 objects on unreachable cluster away" in done.stdout
    assert "application faraway deleted" in done.stdout
    assert await away.get(away.app_ref("faraway")) is None
    away.created.remove("faraway")
    for name in ("a", "b"):  # not reached, so not touched
        live = await away.get(away.cm(name))
        assert live is not None
        assert live["metadata"].get("deletionTimestamp") is None


async def test_engine_reports_the_objects_left_on_a_cluster_that_is_gone(away: AppEnv) -> None:
    away.repo.commit({"a.yaml": dump(configmap("a"))})
    await away.create(
        "orphaned", spec={"destination": {"name": "away", "namespace": away.namespace}}
    )
    assert (await away.sync("orphaned")).ok
    assert await remove_cluster(away.kube, "away", away.apps_namespace)

    result = await away.engine.delete(await away.app("orphaned"), cascade=True)

    away.created.remove("orphaned")
    assert result.unreachable_cluster == "away"
    assert [(r.kind, r.name) for r in result.left] == [("ConfigMap", "a")]
    assert result.deleted == ()
    assert await away.get(away.app_ref("orphaned")) is None


async def test_an_object_the_api_refuses_to_delete_keeps_the_app(env: AppEnv) -> None:
    env.repo.commit({"free.yaml": dump(configmap("free")), "kept.yaml": dump(protected_cm("kept"))})
    await env.create("guarded")
    assert (await env.sync("guarded")).ok

    async with deletes_refused(env.kube, env.namespace):
        with pytest.raises(DeleteIncompleteError) as e:
            await env.engine.delete(await env.app("guarded"), cascade=True)

        assert "application guarded was not deleted" in str(e.value)
        assert "ConfigMap" in str(e.value) and "kept" in str(e.value)
        assert [ref.name for ref, _ in e.value.failed] == ["kept"]
        # The app stays (so a retry finishes the job), its automation off; the
        # object that could be deleted is gone.
        app = await env.app("guarded")
        assert app.spec.sync_policy.automated is None
        await wait_for(lambda: gone(env.kube, env.cm("free")), within=30, what="free gone")
        assert await env.get(env.cm("kept")) is not None

    async def deleted_now() -> bool:
        try:
            result = await env.engine.delete(await env.app("guarded"), cascade=True)
        except DeleteIncompleteError:
            return False  # the policy is still being dropped by the API server
        return [r.name for r in result.deleted] == ["kept"]

    await wait_for(deleted_now, within=60, what="the app deleted once the policy is gone")
    env.created.remove("guarded")
    assert await env.get(env.app_ref("guarded")) is None
