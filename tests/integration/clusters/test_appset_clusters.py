"""ApplicationSets over registered clusters (the home control plane and a second
one): a clusters generator makes one Application per cluster, each deploying
there; a matrix of clusters and git directories makes their product."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from gitmoor.controller.appsets import AppSetController
from gitmoor.controller.loop import Controller
from gitmoor.engine import set_appset_finalizer, store
from gitmoor.kube import load_kubeconfig, wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import GROUP, KIND, VERSION
from gitmoor.model.appset import APPSET_GROUP, APPSET_KIND, APPSET_LABEL, APPSET_VERSION
from gitmoor.settings.clusters import ClusterRegistry, add_cluster
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from gitmoor.testenv import ControlPlane

JSON = dict[str, Any]
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{env: {env}}}\n"


def appset(
    name: str, apps_ns: str, generators: list[JSON], app_name: str, path: str, dest: str
) -> JSON:
    return {
        "apiVersion": f"{APPSET_GROUP}/{APPSET_VERSION}",
        "kind": APPSET_KIND,
        "metadata": {"name": name, "namespace": apps_ns},
        "spec": {
            "generators": generators,
            "template": {
                "metadata": {"name": app_name},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": "{{repo}}", "path": path, "targetRevision": "main"},
                    "destination": {"name": "{{name}}", "namespace": dest},
                    "syncPolicy": {
                        "automated": {"prune": True},
                        "syncOptions": ["CreateNamespace=true"],
                    },
                },
            },
        },
    }


@contextlib.asynccontextmanager
async def controllers(kube: KubeClient, apps_ns: str) -> AsyncIterator[None]:
    registry = ClusterRegistry(kube, namespace=apps_ns)
    stop = asyncio.Event()
    ctrl = Controller(kube, apps_ns, interval=1.0, workers=2, clusters=registry)
    sets = AppSetController(kube, apps_ns, ctrl.engine, interval=1.0)
    tasks = [asyncio.create_task(ctrl.run(stop)), asyncio.create_task(sets.run(stop))]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await registry.aclose()


async def owned(kube: KubeClient, apps_ns: str, name: str) -> dict[str, JSON]:
    ar = await kube.resource(GROUP, VERSION, KIND)
    listed = await kube.list(ar, apps_ns, label_selector=f"{APPSET_LABEL}={name}")
    return {o["metadata"]["name"]: o for o in listed.items}


async def test_clusters_generator_and_matrix_over_two_control_planes(
    kube: KubeClient,
    namespace: str,
    second_plane: ControlPlane,
    second_admin: KubeClient,
    tmp_path: Path,
) -> None:
    apps_ns = f"{namespace}-apps"
    await store.install(kube, apps_ns)
    await add_cluster(kube, "second", load_kubeconfig(second_plane.kubeconfig), namespace=apps_ns)
    repo = GitRepo(tmp_path / "repo")
    repo.commit(
        {
            "base/cm.yaml": CM.format(name="base", env="all"),
            "envs/dev/cm.yaml": CM.format(name="dev", env="dev"),
            "envs/prod/cm.yaml": CM.format(name="prod", env="prod"),
        }
    )
    target = f"{namespace}-dest"
    clusters = {"clusters": {"values": {"repo": repo.url}}}
    per_cluster = appset("per-cluster", apps_ns, [clusters], "base-{{name}}", "base", target)
    matrix = appset(
        "product",
        apps_ns,
        [
            {
                "matrix": {
                    "generators": [
                        clusters,
                        {
                            "git": {
                                "repoURL": repo.url,
                                "revision": "main",
                                "directories": [{"path": "envs/*"}],
                            }
                        },
                    ]
                }
            }
        ],
        "{{path.basename}}-{{name}}",
        "{{path}}",
        target,
    )
    # The clusters generator's values reach the template as values.repo.
    for obj in (per_cluster, matrix):
        obj["spec"]["template"]["spec"]["source"]["repoURL"] = "{{values.repo}}"
    await kube.create(per_cluster)
    await kube.create(matrix)
    try:
        async with controllers(kube, apps_ns):

            async def names(appset_name: str, want: set[str]) -> bool:
                return set(await owned(kube, apps_ns, appset_name)) == want

            await wait_for(
                lambda: names("per-cluster", {"base-in-cluster", "base-second"}),
                within=60,
                what="one app per cluster",
            )
            apps = await owned(kube, apps_ns, "per-cluster")
            assert apps["base-second"]["spec"]["destination"]["name"] == "second"
            assert apps["base-in-cluster"]["spec"]["destination"]["name"] == "in-cluster"

            product = {f"{env}-{c}" for env in ("dev", "prod") for c in ("in-cluster", "second")}
            await wait_for(
                lambda: names("product", product), within=60, what="clusters x directories"
            )
            prod_second = (await owned(kube, apps_ns, "product"))["prod-second"]
            assert prod_second["spec"]["source"]["path"] == "envs/prod"

            # Each app deploys to its own cluster.
            async def on(kc: KubeClient, name: str) -> bool:
                return await kc.get(ObjectRef("", "v1", "ConfigMap", target, name)) is not None

            await wait_for(lambda: on(second_admin, "base"), within=60, what="base on second")
            await wait_for(lambda: on(kube, "base"), within=60, what="base on the home cluster")
            await wait_for(lambda: on(second_admin, "prod"), within=60, what="prod on second")
    finally:
        ar = await kube.resource(APPSET_GROUP, APPSET_VERSION, APPSET_KIND)
        for obj in (await kube.list(ar, apps_ns)).items:
            await set_appset_finalizer(kube, obj, present=False)
            await kube.delete(
                ObjectRef(
                    APPSET_GROUP, APPSET_VERSION, APPSET_KIND, apps_ns, obj["metadata"]["name"]
                )
            )
        for a in await store.list_apps(kube, apps_ns):
            await kube.delete(store.app_ref(a.name, apps_ns))
        await second_admin.delete(ObjectRef("", "v1", "Namespace", "", target))
        await kube.delete(ObjectRef("", "v1", "Namespace", "", target))
        await kube.delete(ObjectRef("", "v1", "Namespace", "", apps_ns))
