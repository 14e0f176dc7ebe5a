"""An ApplicationSet deleting its Applications when they cannot all be reached or
deleted, and creating only what nobody else made:

- an app whose destination cluster was unregistered is deleted (policy ``sync``
  or the cleanup finalizer), its objects left, as Argo CD does; it holds nothing;
- an app whose objects the API refuses to delete is kept: the finalizer stays,
  the ApplicationSet's ``ErrorOccurred`` condition names it, and a later try
  finishes once the cause is gone;
- an Application someone made between the read and the create is never adopted;
  one that the set created gives up a label its template drops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.engine import (
    APPSET_FINALIZER,
    Engine,
    GeneratorContext,
    SyncOptions,
    delete_appset,
    finalize_appset,
    reconcile_appset,
    set_appset_finalizer,
    store,
)
from gitmoor.engine.appset import reconcile
from gitmoor.kube import load_kubeconfig, wait_for
from gitmoor.model import GitmoorError, ObjectRef
from gitmoor.model.application import GROUP, KIND, VERSION
from gitmoor.model.appset import (
    APPSET_GROUP,
    APPSET_KIND,
    APPSET_LABEL,
    APPSET_VERSION,
    ApplicationSet,
    parse_appset,
)
from gitmoor.settings.clusters import ClusterRegistry, add_cluster, remove_cluster
from support.admission import PROTECTED_LABEL, deletes_refused
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gitmoor.kube import KubeClient

JSON = dict[str, Any]
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{labels}"


@pytest.fixture
async def engine(
    kube: KubeClient, kubeconfig: Path, apps_ns: str, tmp_path: Path
) -> AsyncIterator[Engine]:
    """An engine that resolves clusters, with this control plane also registered
    as cluster ``away`` (re-read on every lookup). ApplicationSets left behind are
    released so the namespace can go."""
    await add_cluster(kube, "away", load_kubeconfig(kubeconfig), namespace=apps_ns)
    registry = ClusterRegistry(kube, namespace=apps_ns, recheck_after=0)
    yield Engine(kube, git_cache_dir=tmp_path / "cache", namespace=apps_ns, clusters=registry)
    await registry.aclose()
    ar = await kube.resource(APPSET_GROUP, APPSET_VERSION, APPSET_KIND)
    for obj in (await kube.list(ar, apps_ns)).items:
        await set_appset_finalizer(kube, obj, present=False)
        await kube.delete(appset_ref(obj["metadata"]["name"], apps_ns))


@pytest.fixture
def ctx(kube: KubeClient, apps_ns: str, tmp_path: Path) -> GeneratorContext:
    return GeneratorContext(kube=kube, namespace=apps_ns, git_cache_dir=tmp_path / "cache")


@pytest.fixture
def origin(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "origin")
    repo.commit(
        {
            "web/cm.yaml": CM.format(name="web", labels=""),
            "guarded/cm.yaml": CM.format(
                name="guarded", labels=f"  labels: {{{PROTECTED_LABEL}: 'true'}}\n"
            ),
        }
    )
    return repo


def appset_ref(name: str, ns: str) -> ObjectRef:
    return ObjectRef(APPSET_GROUP, APPSET_VERSION, APPSET_KIND, ns, name)


def app_ref(name: str, ns: str) -> ObjectRef:
    return ObjectRef(GROUP, VERSION, KIND, ns, name)


def manifest(
    apps_ns: str,
    url: str,
    dest: JSON,
    *,
    policy: str,
    paths: list[str],
    labels: dict[str, str] | None = None,
) -> JSON:
    return {
        "apiVersion": f"{APPSET_GROUP}/{APPSET_VERSION}",
        "kind": APPSET_KIND,
        "metadata": {"name": "envs", "namespace": apps_ns},
        "spec": {
            "generators": [{"list": {"elements": [{"path": p} for p in paths]}}],
            "template": {
                "metadata": {"name": "{{path}}-app", "labels": labels or {}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": url, "path": "{{path}}", "targetRevision": "main"},
                    "destination": dest,
                },
            },
            "syncPolicy": {"applicationsSync": policy},
        },
    }


async def put(kube: KubeClient, obj: JSON) -> ApplicationSet:
    """Create or replace the ApplicationSet; parsed as stored (with its uid)."""
    ref = appset_ref(obj["metadata"]["name"], obj["metadata"]["namespace"])
    live = await kube.get(ref)
    if live is None:
        return parse_appset(await kube.create(obj))
    obj = {**obj, "metadata": {**obj["metadata"], **live["metadata"]}}
    return parse_appset(await kube.replace(ref, obj))


async def create_and_sync(
    kube: KubeClient, engine: Engine, ctx: GeneratorContext, obj: JSON
) -> ApplicationSet:
    s = await put(kube, obj)
    out = await reconcile_appset(s, ctx, engine)
    assert out.created and not out.failed and not out.error, out.status
    for name in out.created:
        app = await store.get_app(kube, name, s.namespace)
        assert (await engine.sync(app, SyncOptions(timeout=60), initiated_by="tests")).ok
    return s


def cm(ns: str, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "ConfigMap", ns, name)


async def test_sync_policy_deletes_an_app_whose_cluster_is_gone(
    kube: KubeClient, engine: Engine, ctx: GeneratorContext, origin: GitRepo, apps_ns: str,
    namespace: str,
) -> None:  # fmt: skip
    dest = {"name": "away", "namespace": namespace}
    obj = manifest(apps_ns, origin.url, dest, policy="sync", paths=["web"])
    await create_and_sync(kube, engine, ctx, obj)
    assert await remove_cluster(kube, "away", apps_ns)

    s = await put(kube, manifest(apps_ns, origin.url, dest, policy="sync", paths=[]))
    out = await reconcile_appset(s, ctx, engine)

    assert (out.deleted, out.failed, out.error) == (["web-app"], [], "")
    assert await kube.get(app_ref("web-app", apps_ns)) is None
    assert await kube.get(cm(namespace, "web")) is not None  # left on the cluster


async def test_cleanup_finalizer_is_not_held_by_a_cluster_that_is_gone(
    kube: KubeClient, engine: Engine, ctx: GeneratorContext, origin: GitRepo, apps_ns: str,
    namespace: str,
) -> None:  # fmt: skip
    dest = {"name": "away", "namespace": namespace}
    s = await create_and_sync(
        kube, engine, ctx, manifest(apps_ns, origin.url, dest, policy="sync", paths=["web"])
    )
    assert await remove_cluster(kube, "away", apps_ns)

    done = await delete_appset(engine, s)

    assert done.deleted == ("web-app",)
    assert await kube.get(appset_ref("envs", apps_ns)) is None
    assert await kube.get(app_ref("web-app", apps_ns)) is None
    assert await kube.get(cm(namespace, "web")) is not None


async def test_cleanup_keeps_the_appset_while_an_object_cannot_be_deleted(
    kube: KubeClient, engine: Engine, ctx: GeneratorContext, origin: GitRepo, apps_ns: str,
    namespace: str,
) -> None:  # fmt: skip
    dest = {"namespace": namespace}
    obj = manifest(apps_ns, origin.url, dest, policy="create-update", paths=["web", "guarded"])
    s = await create_and_sync(kube, engine, ctx, obj)

    async with deletes_refused(kube, namespace):
        with pytest.raises(GitmoorError, match="could not be deleted") as e:
            await delete_appset(engine, s)
        assert "guarded-app" in str(e.value)

        live = await kube.get(appset_ref("envs", apps_ns))
        assert live is not None and live["metadata"].get("deletionTimestamp")
        assert APPSET_FINALIZER in live["metadata"]["finalizers"]
        error = next(c for c in live["status"]["conditions"] if c["type"] == "ErrorOccurred")
        assert (error["status"], error["reason"]) == ("True", "DeleteApplicationError")
        assert "guarded-app" in error["message"] and "guarded" in error["message"]
        # The one that could go went; the other is kept with its object.
        assert await kube.get(app_ref("web-app", apps_ns)) is None
        assert await kube.get(app_ref("guarded-app", apps_ns)) is not None
        assert await kube.get(cm(namespace, "guarded")) is not None

    async def finalized() -> bool:
        fresh = await kube.get(appset_ref("envs", apps_ns))
        if fresh is None:
            return True
        try:
            await finalize_appset(engine, parse_appset(fresh))
        except GitmoorError:
            return False  # the API server is still dropping the policy: again
        return await kube.get(appset_ref("envs", apps_ns)) is None

    await wait_for(finalized, within=60, what="the ApplicationSet finalized")
    assert await kube.get(app_ref("guarded-app", apps_ns)) is None


async def test_an_app_made_between_the_read_and_the_create_is_not_adopted(
    kube: KubeClient, engine: Engine, ctx: GeneratorContext, origin: GitRepo, apps_ns: str,
    namespace: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    s = await put(
        kube, manifest(apps_ns, origin.url, {"namespace": namespace}, policy="sync", paths=["web"])
    )
    # Someone makes web-app, exactly as the template would (so an apply would
    # merge into it without a conflict) but not owned by the set...
    (wanted,) = await reconcile.generate_apps(s, ctx)
    theirs = {
        **wanted.manifest,
        "metadata": {"name": "web-app", "namespace": apps_ns, "labels": {"team": "theirs"}},
    }
    await kube.create(theirs)

    # ... after the set read the Applications (the read it diffs against).
    async def stale_read(*_: object) -> list[JSON]:
        return []

    monkeypatch.setattr(reconcile, "_live_by_name", stale_read)
    out = await reconcile_appset(s, ctx, engine)

    assert (out.created, out.foreign) == ([], ["web-app"])
    error = next(c for c in out.status["conditions"] if c["type"] == "ErrorOccurred")
    assert "web-app already exists and is not owned" in error["message"]
    live = await kube.get(app_ref("web-app", apps_ns))
    assert live is not None
    assert APPSET_LABEL not in live["metadata"].get("labels", {})
    assert not live["metadata"].get("ownerReferences")

    # Policy sync with no element for it: not the set's, so never deleted.
    monkeypatch.undo()
    s = await put(
        kube, manifest(apps_ns, origin.url, {"namespace": namespace}, policy="sync", paths=[])
    )
    out = await reconcile_appset(s, ctx, engine)
    assert out.deleted == []
    assert await kube.get(app_ref("web-app", apps_ns)) is not None


async def test_a_created_app_gives_up_a_label_its_template_drops(
    kube: KubeClient, engine: Engine, ctx: GeneratorContext, origin: GitRepo, apps_ns: str,
    namespace: str,
) -> None:  # fmt: skip
    dest = {"namespace": namespace}
    labelled = manifest(
        apps_ns, origin.url, dest, policy="create-update", paths=["web"], labels={"tier": "web"}
    )
    s = await put(kube, labelled)
    assert (await reconcile_appset(s, ctx, engine)).created == ["web-app"]
    live = await kube.get(app_ref("web-app", apps_ns))
    assert live is not None and live["metadata"]["labels"]["tier"] == "web"

    s = await put(kube, manifest(apps_ns, origin.url, dest, policy="create-update", paths=["web"]))
    out = await reconcile_appset(s, ctx, engine)

    assert out.updated == ["web-app"]
    live = await kube.get(app_ref("web-app", apps_ns))
    assert live is not None
    assert "tier" not in live["metadata"]["labels"]
    assert live["metadata"]["labels"][APPSET_LABEL] == "envs"
