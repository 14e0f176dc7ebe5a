"""App of apps: a parent Application whose path renders Applications.

Real control plane, real git repository, the real controller: the parent creates
its children in the apps namespace, its health follows theirs, a child removed
from Git is deleted with prune (its objects with it when it carries the cascade
finalizer, kept when it does not), and a child that names a project the parent
may not hand out is refused before anything is applied.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from gitmoor.controller.loop import Controller
from gitmoor.engine import store
from gitmoor.engine.app import Engine
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import (
    API_VERSION,
    KIND,
    AppSource,
    Automated,
    Destination,
    application_manifest,
)
from gitmoor.model.project import AppProject, GroupKind, ProjectDestination
from gitmoor.settings import create_project
from support.cli import Gitmoor
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from gitmoor.kube import KubeClient

FINALIZER = "resources-finalizer.gitmoor.io"


def child(
    name: str, repo: str, apps_ns: str, dest: str, *, finalizer: bool, project: str = "default"
) -> str:
    """The manifest of a child Application, as a user writes it in the parent's path."""
    manifest = application_manifest(
        name,
        apps_ns,
        AppSource(repo, f"apps/{name}", "main"),
        Destination(dest),
        project=project,
        automated=Automated(prune=True),
    )
    if finalizer:
        manifest["metadata"]["finalizers"] = [FINALIZER]
    return yaml.safe_dump(manifest)


def configmap(name: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}
    )


def deployment(image: str) -> str:
    # A short progress deadline: a pod that never becomes ready (the test cluster's
    # `fail` image tag) turns the Deployment Degraded within seconds.
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "progressDeadlineSeconds": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        }
    )


class Env:
    def __init__(self, kube: KubeClient, namespace: str, apps_ns: str, repo: GitRepo) -> None:
        self.kube, self.namespace, self.apps_ns, self.repo = kube, namespace, apps_ns, repo

    def app_ref(self, name: str) -> ObjectRef:
        return ObjectRef("gitmoor.io", "v1alpha1", KIND, self.apps_ns, name)

    def cm(self, name: str) -> ObjectRef:
        return ObjectRef("", "v1", "ConfigMap", self.namespace, name)

    async def app(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get(self.app_ref(name))

    async def health(self, name: str) -> str:
        obj = await self.app(name)
        return str((((obj or {}).get("status") or {}).get("health") or {}).get("status", ""))

    async def create_parent(self, name: str, *, project: str = "default") -> None:
        await store.save_app(
            self.kube,
            application_manifest(
                name,
                self.apps_ns,
                AppSource(self.repo.url, "parent", "main"),
                Destination(self.apps_ns),
                project=project,
                automated=Automated(prune=True),
            ),
        )


async def until(probe: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    async def check() -> bool | None:
        return True if await probe() else None

    await wait_for(check, within=within, what=what)


@pytest.fixture
async def env(kube: KubeClient, namespace: str, tmp_path: Path) -> AsyncIterator[Env]:
    apps_ns = f"{namespace}-apps"
    await store.install(kube, apps_ns)
    e = Env(kube, namespace, apps_ns, GitRepo(tmp_path / "repo"))
    yield e
    # No controller runs any more: a cascade finalizer left on a child would hold
    # its deletion (and the namespace's) for ever.
    for a in await store.list_apps(kube, apps_ns):
        if (a.raw.get("metadata") or {}).get("finalizers"):
            await kube.merge_patch(e.app_ref(a.name), {"metadata": {"finalizers": None}})
        await kube.delete(store.app_ref(a.name, apps_ns))
    await kube.delete(ObjectRef("", "v1", "Namespace", "", apps_ns))


@pytest.fixture
async def controller(env: Env) -> AsyncIterator[Controller]:
    # A ten-minute interval: the parent must follow its children because the
    # controller queues it when a child's status moves, not by its own refresh.
    ctrl = Controller(env.kube, env.apps_ns, interval=600, workers=2)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    yield ctrl
    stop.set()
    await task


async def test_parent_creates_children_follows_their_health_and_prunes_them(
    env: Env, controller: Controller, kubeconfig: Path, tmp_path: Path
) -> None:
    repo, apps_ns, ns = env.repo.url, env.apps_ns, env.namespace
    env.repo.commit(
        {
            # child-a carries the cascade finalizer, child-b does not.
            "parent/a.yaml": child("child-a", repo, apps_ns, ns, finalizer=True),
            "parent/b.yaml": child("child-b", repo, apps_ns, ns, finalizer=False),
            "parent/c.yaml": child("child-c", repo, apps_ns, ns, finalizer=True),
            "apps/child-a/cm.yaml": configmap("from-a"),
            "apps/child-b/cm.yaml": configmap("from-b"),
            "apps/child-c/web.yaml": deployment("nginx:fail"),
        }
    )
    await env.create_parent("parent")

    async def exists(ref: ObjectRef) -> bool:
        return await env.kube.get(ref) is not None

    for name in ("child-a", "child-b", "child-c"):
        await until(lambda n=name: exists(env.app_ref(n)), f"{name} created by the parent")
    created = await env.app("child-a")
    assert created is not None
    assert created["metadata"]["namespace"] == apps_ns
    assert created["metadata"]["annotations"]["gitmoor.io/tracking-id"] == (
        f"{apps_ns}_parent:gitmoor.io/Application:{apps_ns}/child-a"
    )
    # The children sync their own objects (each is an ordinary automated app).
    await until(lambda: exists(env.cm("from-a")), "child-a's ConfigMap applied")
    await until(lambda: exists(env.cm("from-b")), "child-b's ConfigMap applied")

    # One child Degraded (its pod never becomes ready): the parent is Degraded.
    async def degraded() -> bool:
        return await env.health("child-c") == "Degraded" and await env.health("parent") == (
            "Degraded"
        )

    await until(degraded, "child-c Degraded and the parent with it")
    parent = await env.app("parent")
    assert parent is not None
    assert "Application child-c" in parent["status"]["health"]["message"]
    # The children's status (written by the controller, not in Git) never puts the
    # parent out of sync.
    assert parent["status"]["sync"]["status"] == "Synced", parent["status"]

    # The tree: the parent with its three children, each with its own object count.
    tree = await Engine(env.kube, namespace=apps_ns).tree("parent")
    assert [(c.kind, c.name, c.objects) for c in tree.children] == [
        ("Application", "child-a", 1),
        ("Application", "child-b", 1),
        ("Application", "child-c", 1),
    ]
    assert tree.health == "Degraded"
    assert tree.objects == 3

    # The fix reaches child-c; the parent turns Healthy with it, on its own: the
    # parent's interval is ten minutes, and no one asks it to refresh.
    env.repo.commit({"apps/child-c/web.yaml": deployment("nginx:1.27")})
    assert controller.refresh_apps(["child-c"]) == 1

    async def healthy() -> bool:
        healths = [await env.health(n) for n in ("child-a", "child-b", "child-c", "parent")]
        return healths == ["Healthy"] * 4

    await until(healthy, "every child Healthy, and the parent")
    parent = await env.app("parent")
    assert parent is not None
    assert parent["status"]["sync"]["status"] == "Synced"

    cli = Gitmoor(kubeconfig, apps_ns, _cli_env(tmp_path))
    shown = cli("app", "get", "parent", "--tree")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "parent  Synced  Healthy  3 objects"
    assert lines[1:] == [
        "├─ child-a  Synced  Healthy  1 objects",
        "├─ child-b  Synced  Healthy  1 objects",
        "└─ child-c  Synced  Healthy  1 objects",
    ]
    as_json = json.loads(cli("app", "get", "parent", "--tree", "-o", "json").stdout)
    assert [c["name"] for c in as_json["children"]] == ["child-a", "child-b", "child-c"]

    # child-a and child-b leave Git; the parent prunes both. child-a's finalizer
    # takes its ConfigMap with it; child-b, without one, leaves its ConfigMap in
    # place (Argo CD's non-cascading default, documented in the README).
    env.repo.commit(remove=("parent/a.yaml", "parent/b.yaml"))
    assert controller.refresh_apps(["parent"]) == 1

    async def gone(ref: ObjectRef) -> bool:
        return await env.kube.get(ref) is None

    await until(lambda: gone(env.app_ref("child-a")), "child-a pruned")
    await until(lambda: gone(env.app_ref("child-b")), "child-b pruned")
    assert await gone(env.cm("from-a")), "child-a's finalizer deleted its ConfigMap"
    kept = await env.kube.get(env.cm("from-b"))
    assert kept is not None, "child-b had no finalizer: its ConfigMap stays"
    assert kept["metadata"]["annotations"]["gitmoor.io/tracking-id"].startswith(
        f"{apps_ns}_child-b:"
    )
    # The child still declared is untouched, and the parent settles Synced and Healthy.
    assert await env.kube.get(ObjectRef("apps", "v1", "Deployment", ns, "web")) is not None

    async def settled() -> bool:
        obj = await env.app("parent")
        st = (obj or {}).get("status") or {}
        return (st.get("sync") or {}).get("status") == "Synced" and await env.health(
            "parent"
        ) == "Healthy"

    await until(settled, "the parent Synced and Healthy with one child")


async def test_a_child_naming_a_forbidden_project_is_refused_and_nothing_applied(
    env: Env, kube: KubeClient, git_cache: Path
) -> None:
    team = AppProject(
        name="team",
        namespace=env.apps_ns,
        source_repos=(env.repo.url,),
        destinations=(
            ProjectDestination(namespace=env.apps_ns),
            ProjectDestination(namespace=env.namespace),
        ),
        namespace_resource_whitelist=(GroupKind("gitmoor.io", "Application"),),
    )
    await create_project(kube, team)
    repo, apps_ns, ns = env.repo.url, env.apps_ns, env.namespace
    env.repo.commit(
        {
            "parent/ok.yaml": child("fine", repo, apps_ns, ns, finalizer=False, project="team"),
            # `default` may deploy anything anywhere: a team app must not hand it out.
            "parent/wide.yaml": child("escape", repo, apps_ns, ns, finalizer=False),
            "apps/fine/cm.yaml": configmap("fine"),
        }
    )
    await env.create_parent("parent", project="team")
    engine = Engine(kube, git_cache_dir=git_cache, namespace=apps_ns)
    app = await store.get_app(kube, "parent", apps_ns)

    result = await engine.sync(app)

    expected = (
        'project team: Application escape (from wide.yaml:1) names project "default"; '
        'a child of parent may name only its parent\'s project "team" or a project the same '
        "render declares"
    )
    assert not result.ok
    assert expected in result.message, result.message
    # Nothing applied: neither the refused child nor its sibling.
    assert await env.app("escape") is None
    assert await env.app("fine") is None
    refreshed = await store.get_app(kube, "parent", apps_ns)
    conditions = refreshed.status.get("conditions") or []
    assert any(
        c.get("type") == "InvalidSpecError" and expected in c.get("message", "") for c in conditions
    ), conditions

    # The same app of apps with the child in its parent's project syncs.
    env.repo.commit(
        {"parent/wide.yaml": child("escape", repo, apps_ns, ns, finalizer=False, project="team")}
    )
    result = await engine.sync(await store.get_app(kube, "parent", apps_ns))
    assert result.ok, result.message
    assert await env.app("escape") is not None
    assert await env.app("fine") is not None
    obj = await env.app("fine")
    assert obj is not None and obj["apiVersion"] == API_VERSION

    # A parent that declares itself (a self-managing app, as `gitmoor bootstrap`
    # writes one): the tree shows it once more, marked, and does not loop.
    own = application_manifest(
        "parent",
        apps_ns,
        AppSource(repo, "parent", "main"),
        Destination(apps_ns),
        project="team",
        automated=Automated(prune=True),
    )
    env.repo.commit({"parent/self.yaml": yaml.safe_dump(own)})
    result = await engine.sync(await store.get_app(kube, "parent", apps_ns))
    assert result.ok, result.message
    tree = await engine.tree("parent")
    assert [(c.name, c.note) for c in tree.children] == [
        ("escape", ""),
        ("fine", ""),
        ("parent", "cycle"),
    ]


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["GITMOOR_CACHE_DIR"] = str(tmp_path / "cli-cache")
    env["GITMOOR_USER"] = "cli-tests"
    env["GITMOOR_CORE"] = "1"
    return env


async def test_app_create_finalizer_and_app_delete_without_a_controller(
    env: Env, kubeconfig: Path, tmp_path: Path
) -> None:
    env.repo.commit({"apps/solo/cm.yaml": configmap("solo")})
    cli = Gitmoor(kubeconfig, env.apps_ns, _cli_env(tmp_path))
    created = cli(
        "app", "create", "solo", "--repo", env.repo.url, "--path", "apps/solo",
        "--dest-namespace", env.namespace, "--finalizer",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    obj = await env.app("solo")
    assert obj is not None
    assert obj["metadata"]["finalizers"] == [FINALIZER]
    synced = cli("app", "sync", "solo")
    assert synced.returncode == 0, synced.stderr
    assert await env.kube.get(env.cm("solo")) is not None

    # `app delete --cascade=false` keeps the objects: it removes the finalizer
    # (which would delete them) before it deletes the app, as Argo CD's does, so
    # the app goes at once even with no controller running.
    deleted = cli("app", "delete", "solo", "--cascade=false")
    assert deleted.returncode == 0, deleted.stderr
    assert await env.app("solo") is None
    assert await env.kube.get(env.cm("solo")) is not None


async def test_a_parent_does_not_take_over_an_application_it_does_not_manage(
    env: Env, kube: KubeClient, git_cache: Path
) -> None:
    repo, apps_ns, ns = env.repo.url, env.apps_ns, env.namespace
    # Someone's Application, made by hand: no tracking id.
    await store.save_app(
        kube,
        application_manifest(
            "web", apps_ns, AppSource(repo, "apps/by-hand", "main"), Destination(ns)
        ),
    )
    env.repo.commit(
        {
            "parent/web.yaml": child("web", repo, apps_ns, ns, finalizer=False),
            "parent/db.yaml": child("db", repo, apps_ns, ns, finalizer=False),
        }
    )
    await env.create_parent("parent")
    engine = Engine(kube, git_cache_dir=git_cache, namespace=apps_ns)

    async def sync() -> str:
        result = await engine.sync(await store.get_app(kube, "parent", apps_ns))
        return "" if result.ok else result.message

    ours = f"{apps_ns}_parent:gitmoor.io/Application:{apps_ns}/web"
    refused = await sync()
    assert (
        "Application web (from web.yaml:1) already exists and is not managed by parent "
        "(it carries no tracking id); delete it, or rename the child, or hand it to parent "
        f"by annotating it gitmoor.io/tracking-id={ours}"
    ) in refused, refused
    # Refused before anything is applied: the app keeps its own source, and the
    # sibling is not created either.
    live = await env.app("web")
    assert live is not None and live["spec"]["source"]["path"] == "apps/by-hand"
    assert await env.app("db") is None

    # Another app's: refused too, naming that app.
    theirs = f"{apps_ns}_team:gitmoor.io/Application:{apps_ns}/web"
    tracking = {"metadata": {"annotations": {"gitmoor.io/tracking-id": theirs}}}
    await kube.merge_patch(env.app_ref("web"), tracking)
    refused = await sync()
    assert f"(its tracking id names app {apps_ns}/team)" in refused, refused
    live = await env.app("web")
    assert live is not None and live["spec"]["source"]["path"] == "apps/by-hand"

    # Handed over with the parent's tracking id: updated as any child.
    tracking = {"metadata": {"annotations": {"gitmoor.io/tracking-id": ours}}}
    await kube.merge_patch(env.app_ref("web"), tracking)
    assert await sync() == ""
    live = await env.app("web")
    assert live is not None and live["spec"]["source"]["path"] == "apps/web"
    assert await env.app("db") is not None
    # Its own child now: the next sync passes the check again.
    assert await sync() == ""


async def test_an_app_whose_spec_no_longer_parses_is_still_finalized(
    env: Env, kube: KubeClient, controller: Controller
) -> None:
    repo, apps_ns, ns = env.repo.url, env.apps_ns, env.namespace
    env.repo.commit({"apps/solo/cm.yaml": configmap("solo")})
    manifest = application_manifest(
        "solo",
        apps_ns,
        AppSource(repo, "apps/solo", "main"),
        Destination(ns),
        automated=Automated(prune=True),
    )
    manifest["metadata"]["finalizers"] = [FINALIZER]
    await store.save_app(kube, manifest)

    async def synced() -> bool:
        obj = await env.app("solo")
        st = (obj or {}).get("status") or {}
        return (st.get("sync") or {}).get("status") == "Synced"

    await until(synced, "solo synced")
    assert await kube.get(env.cm("solo")) is not None

    # A spec the CRD schema lets through and gitmoor refuses (an upgrade that
    # tightened a rule does the same): the controller reports it and stops there.
    await kube.merge_patch(
        env.app_ref("solo"), {"spec": {"syncPolicy": {"refreshInterval": "1ms"}}}
    )

    async def invalid() -> bool:
        obj = await env.app("solo")
        conditions = ((obj or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "InvalidSpecError" for c in conditions)

    await until(invalid, "solo's spec reported invalid")
    # Deleted now, it still goes, with its objects: the finalizer needs only its
    # inventory and destination, not a spec that parses.
    await kube.delete(env.app_ref("solo"))

    async def gone() -> bool:
        return await env.app("solo") is None and await kube.get(env.cm("solo")) is None

    await until(gone, "solo and its ConfigMap deleted")
