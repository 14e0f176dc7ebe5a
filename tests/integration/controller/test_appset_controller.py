"""The ApplicationSet controller against the real control plane and a real git
server over HTTP with credentials: a git-directories ApplicationSet makes one
Application per overlay, follows commits that add or remove overlays (deleting
only under policy ``sync``), reports its Applications' sync and health, refuses
a pass with duplicate names or a generator error, never touches an Application
it does not own, and takes its Applications (and their objects) with it when
deleted."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from gitmoor.controller import Controller
from gitmoor.controller.appsets import AppSetController
from gitmoor.controller.shard import Shards, owner_of
from gitmoor.engine import APPSET_FINALIZER, Engine, set_appset_finalizer, store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import GROUP, KIND, VERSION
from gitmoor.model.appset import APPSET_GROUP, APPSET_KIND, APPSET_LABEL, APPSET_VERSION
from gitmoor.settings.repos import add_repo
from support.githttp import PASSWORD, USER, GitHTTPServer
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient

JSON = dict[str, Any]

CM = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
data: {{env: "{env}"}}
"""


def overlay(app: str, env: str) -> dict[str, str]:
    return {f"apps/{app}/overlays/{env}/cm.yaml": CM.format(name=f"{app}-{env}", env=env)}


def appset_manifest(
    name: str, apps_ns: str, url: str, dest_ns: str, *, policy: str = "create-update"
) -> JSON:
    return {
        "apiVersion": f"{APPSET_GROUP}/{APPSET_VERSION}",
        "kind": APPSET_KIND,
        "metadata": {"name": name, "namespace": apps_ns},
        "spec": {
            "generators": [
                {
                    "git": {
                        "repoURL": url,
                        "revision": "main",
                        "directories": [{"path": "apps/*/overlays/*"}],
                    }
                }
            ],
            "template": {
                "metadata": {
                    "name": "{{path[1]}}-{{path.basename}}",
                    "labels": {"env": "{{path.basename}}"},
                },
                "spec": {
                    "project": "default",
                    "source": {"repoURL": url, "path": "{{path}}", "targetRevision": "main"},
                    "destination": {"namespace": dest_ns},
                    "syncPolicy": {"automated": {"prune": True}},
                },
            },
            "syncPolicy": {"applicationsSync": policy},
        },
    }


def appset_ref(name: str, ns: str) -> ObjectRef:
    return ObjectRef(APPSET_GROUP, APPSET_VERSION, APPSET_KIND, ns, name)


@contextlib.asynccontextmanager
async def controllers(
    kube: KubeClient, apps_ns: str, *, interval: float
) -> AsyncIterator[AppSetController]:
    """The Application loop and the ApplicationSet controller, as ``gitmoor
    controller`` runs them (one engine), stopped and awaited on leaving."""
    stop = asyncio.Event()
    ctrl = Controller(kube, apps_ns, interval=interval, workers=2)
    appsets = AppSetController(kube, apps_ns, ctrl.engine, interval=interval)
    tasks = [asyncio.create_task(ctrl.run(stop)), asyncio.create_task(appsets.run(stop))]
    try:
        yield appsets
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def release_appsets(kube: KubeClient, apps_ns: str) -> None:
    """Without a controller nothing removes the finalizer: the namespace could
    not go. (The Applications are deleted by the fixture.)"""
    ar = await kube.resource(APPSET_GROUP, APPSET_VERSION, APPSET_KIND)
    for obj in (await kube.list(ar, apps_ns)).items:
        await set_appset_finalizer(kube, obj, present=False)
        await kube.delete(appset_ref(obj["metadata"]["name"], apps_ns))


async def owned_apps(kube: KubeClient, apps_ns: str, appset: str) -> dict[str, JSON]:
    ar = await kube.resource(GROUP, VERSION, KIND)
    listed = await kube.list(ar, apps_ns, label_selector=f"{APPSET_LABEL}={appset}")
    return {o["metadata"]["name"]: o for o in listed.items}


async def status_of_appset(kube: KubeClient, name: str, apps_ns: str) -> JSON:
    obj = await kube.get(appset_ref(name, apps_ns))
    assert obj is not None
    return dict(obj.get("status") or {})


def condition(status: JSON, ctype: str) -> JSON:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})


async def test_git_directories_appset_follows_overlays_and_deletes_only_under_sync(
    kube: KubeClient, apps_ns: str, namespace: str, git_server: GitHTTPServer
) -> None:
    origin = GitRepo(git_server.root / "envs")
    origin.commit({**overlay("guestbook", "dev"), **overlay("guestbook", "test")})
    origin.commit(overlay("billing", "dev"))
    url = git_server.url("envs")
    await add_repo(kube, url, username=USER, password=PASSWORD, namespace=apps_ns)
    await kube.create(appset_manifest("envs", apps_ns, url, namespace))
    try:
        async with controllers(kube, apps_ns, interval=1.0) as appsets:

            async def names(want: set[str]) -> bool:
                return set(await owned_apps(kube, apps_ns, "envs")) == want

            # One Application per overlay, named by the template.
            three = {"guestbook-dev", "guestbook-test", "billing-dev"}
            await wait_for(lambda: names(three), within=60, what="one app per overlay")
            apps = await owned_apps(kube, apps_ns, "envs")
            dev = apps["guestbook-dev"]
            assert dev["spec"]["source"]["path"] == "apps/guestbook/overlays/dev"
            assert dev["metadata"]["labels"]["env"] == "dev"
            owner = dev["metadata"]["ownerReferences"][0]
            assert (owner["kind"], owner["name"], owner["controller"]) == (
                APPSET_KIND,
                "envs",
                True,
            )

            # The status lists each app with its sync and health, as they sync.
            async def all_synced() -> JSON | None:
                st = await status_of_appset(kube, "envs", apps_ns)
                res = st.get("resources") or []
                ok = len(res) == 3 and all(
                    r["status"] == "Synced" and r["health"]["status"] == "Healthy" for r in res
                )
                return st if ok else None

            st = await wait_for(all_synced, within=60, what="status: 3 apps Synced and Healthy")
            assert [r["name"] for r in st["resources"]] == sorted(three)
            assert st["resourcesCount"] == 3
            assert condition(st, "ErrorOccurred")["status"] == "False"
            assert condition(st, "ResourcesUpToDate")["status"] == "True"
            cm = ObjectRef("", "v1", "ConfigMap", namespace, "billing-dev")
            assert await kube.get(cm) is not None
            obj = await kube.get(appset_ref("envs", apps_ns))
            assert obj is not None and APPSET_FINALIZER in obj["metadata"]["finalizers"]

            # Passes that find nothing to change write nothing: neither the
            # ApplicationSet (its status) nor its Applications.
            rv = obj["metadata"]["resourceVersion"]
            gens = {n: o["metadata"]["generation"] for n, o in apps.items()}
            seen = appsets.passes
            await wait_for(
                lambda: _async(appsets.passes >= seen + 3), within=60, what="three quiet passes"
            )
            quiet = await kube.get(appset_ref("envs", apps_ns))
            assert quiet is not None and quiet["metadata"]["resourceVersion"] == rv
            now = await owned_apps(kube, apps_ns, "envs")
            assert {n: o["metadata"]["generation"] for n, o in now.items()} == gens

            # A commit adding an overlay adds an app at the next pass.
            origin.commit(overlay("guestbook", "prod"))
            four = three | {"guestbook-prod"}
            await wait_for(lambda: names(four), within=60, what="an app for the new overlay")

            # Removing an overlay under create-update (the default) deletes nothing,
            # pass after pass.
            origin.commit(remove=("apps/billing/overlays/dev/cm.yaml",))
            seen = appsets.passes
            await wait_for(
                lambda: _async(appsets.passes >= seen + 3), within=60, what="three more passes"
            )
            assert set(await owned_apps(kube, apps_ns, "envs")) == four
            assert await kube.get(cm) is not None

            # Under sync the app the generators no longer produce is deleted, with
            # its objects (preserveResourcesOnDeletion is off).
            await kube.merge_patch(
                appset_ref("envs", apps_ns), {"spec": {"syncPolicy": {"applicationsSync": "sync"}}}
            )
            await wait_for(lambda: names(four - {"billing-dev"}), within=60, what="app deleted")

            async def cm_gone() -> bool:
                return await kube.get(cm) is None

            await wait_for(cm_gone, within=30, what="the deleted app's ConfigMap deleted")

            async def status_follows() -> bool:
                st = await status_of_appset(kube, "envs", apps_ns)
                return [r["name"] for r in st.get("resources") or []] == sorted(
                    four - {"billing-dev"}
                )

            await wait_for(status_follows, within=30, what="status without the deleted app")

            # Deleting the ApplicationSet takes its apps and their objects with it.
            await kube.delete(appset_ref("envs", apps_ns))

            async def appset_gone() -> bool:
                return await kube.get(appset_ref("envs", apps_ns)) is None

            await wait_for(appset_gone, within=60, what="the ApplicationSet finalized")
            assert await owned_apps(kube, apps_ns, "envs") == {}
            prod_cm = ObjectRef("", "v1", "ConfigMap", namespace, "guestbook-prod")
            assert await kube.get(prod_cm) is None
    finally:
        await release_appsets(kube, apps_ns)


async def _async(value: bool) -> bool:
    return value


async def _up_to_date(kube: KubeClient, name: str, apps_ns: str) -> JSON | None:
    st = await status_of_appset(kube, name, apps_ns)
    return st if condition(st, "ResourcesUpToDate").get("status") == "True" else None


def list_appset(name: str, apps_ns: str, elements: list[JSON], dest_ns: str) -> JSON:
    return {
        "apiVersion": f"{APPSET_GROUP}/{APPSET_VERSION}",
        "kind": APPSET_KIND,
        "metadata": {"name": name, "namespace": apps_ns},
        "spec": {
            "generators": [{"list": {"elements": elements}}],
            "template": {
                "metadata": {"name": "{{app}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": "{{repo}}", "path": "{{path}}"},
                    "destination": {"namespace": dest_ns},
                },
            },
        },
    }


async def test_refused_passes_change_nothing_and_foreign_apps_are_left_alone(
    kube: KubeClient, apps_ns: str, namespace: str
) -> None:
    repo = "https://git.example.invalid/r.git"
    # An Application of a name the set will produce, made by someone else.
    foreign = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": "taken", "namespace": apps_ns},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "path": "mine"},
            "destination": {"namespace": namespace},
        },
    }
    await store.save_app(kube, foreign)
    elements = [
        {"app": "alpha", "repo": repo, "path": "a"},
        {"app": "taken", "repo": repo, "path": "theirs"},
    ]
    await kube.create(list_appset("lst", apps_ns, elements, namespace))
    try:
        async with controllers(kube, apps_ns, interval=1.0):

            async def reported(ctype: str, needle: str) -> JSON | None:
                st = await status_of_appset(kube, "lst", apps_ns)
                c = condition(st, ctype)
                return st if c.get("status") == "True" and needle in c.get("message", "") else None

            st = await wait_for(
                lambda: reported("ErrorOccurred", "taken"), within=60, what="foreign app named"
            )
            assert "not owned by ApplicationSet lst" in condition(st, "ErrorOccurred")["message"]
            apps = await owned_apps(kube, apps_ns, "lst")
            assert set(apps) == {"alpha"}
            untouched = await store.get_app(kube, "taken", apps_ns)
            assert untouched.spec.source.path == "mine"
            assert APPSET_LABEL not in (untouched.raw["metadata"].get("labels") or {})
            assert [r["name"] for r in st["resources"]] == ["alpha"]

            # Two elements naming one app: the whole pass is refused, naming both
            # elements, and nothing is created, updated or deleted.
            dup = [
                {"app": "alpha", "repo": repo, "path": "changed"},
                {"app": "beta", "repo": repo, "path": "b"},
                {"app": "beta", "repo": repo, "path": "b2"},
            ]
            await kube.merge_patch(
                appset_ref("lst", apps_ns), {"spec": {"generators": [{"list": {"elements": dup}}]}}
            )
            st = await wait_for(
                lambda: reported("ErrorOccurred", "duplicate name: beta"),
                within=60,
                what="duplicate names refused",
            )
            message = condition(st, "ErrorOccurred")["message"]
            assert "element 1" in message and "element 2" in message
            apps = await owned_apps(kube, apps_ns, "lst")
            assert set(apps) == {"alpha"}
            assert apps["alpha"]["spec"]["source"]["path"] == "a"
            assert condition(st, "ResourcesUpToDate")["status"] == "False"

            # A template error names the element and the field; nothing changes either.
            await kube.merge_patch(
                appset_ref("lst", apps_ns),
                {"spec": {"generators": [{"list": {"elements": [{"app": "Not_A_Name"}]}}]}},
            )
            st = await wait_for(
                lambda: reported("ErrorOccurred", "metadata.name"),
                within=60,
                what="template error reported",
            )
            assert "element 0" in condition(st, "ErrorOccurred")["message"]
            assert set(await owned_apps(kube, apps_ns, "lst")) == {"alpha"}

            # Fixed, with alpha's element changed: alpha is updated (create-update),
            # keeping what the template does not set (an annotation added by hand).
            alpha = ObjectRef(GROUP, VERSION, KIND, apps_ns, "alpha")
            await kube.merge_patch(alpha, {"metadata": {"annotations": {"team": "payments"}}})
            fixed = [{"app": "alpha", "repo": repo, "path": "a2"}]
            await kube.merge_patch(
                appset_ref("lst", apps_ns),
                {"spec": {"generators": [{"list": {"elements": fixed}}]}},
            )

            async def updated() -> JSON | None:
                obj = await kube.get(alpha)
                return obj if obj and obj["spec"]["source"]["path"] == "a2" else None

            obj = await wait_for(updated, within=60, what="alpha updated from the template")
            assert obj["metadata"]["annotations"]["team"] == "payments"
            assert obj["metadata"]["labels"][APPSET_LABEL] == "lst"
            st = await wait_for(
                lambda: _up_to_date(kube, "lst", apps_ns), within=60, what="conditions clear"
            )
            assert [r["name"] for r in st["resources"]] == ["alpha"]
    finally:
        await release_appsets(kube, apps_ns)


async def test_with_two_replicas_each_appset_is_reconciled_by_its_owner_only(
    kube: KubeClient, apps_ns: str, namespace: str
) -> None:
    repo = "https://git.example.invalid/r.git"
    for name in ("one", "two", "three"):
        elements = [{"app": f"{name}-app", "repo": repo, "path": name}]
        await kube.create(list_appset(name, apps_ns, elements, namespace))
    replicas = ["r1", "r2"]
    shards = [Shards(kube, apps_ns, r, lease_seconds=4, renew=0.5) for r in replicas]
    sets = [
        AppSetController(kube, apps_ns, Engine(kube, namespace=apps_ns), interval=0.5, shards=s)
        for s in shards
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run()) for s in shards]
    tasks += [asyncio.create_task(c.run(stop)) for c in sets]
    try:

        async def both_live() -> bool:
            return all(s.replicas == replicas for s in shards)

        await wait_for(both_live, within=30, what="both replicas see each other")

        async def created() -> bool:
            ar = await kube.resource(GROUP, VERSION, KIND)
            names = {o["metadata"]["name"] for o in (await kube.list(ar, apps_ns)).items}
            return names == {"one-app", "two-app", "three-app"}

        await wait_for(created, within=30, what="every appset's app")
        owner = {
            name: replicas.index(owner_of(name, replicas) or "") for name in ("one", "two", "three")
        }

        def count(name: str, i: int) -> int:
            return sets[i].passes_by.get(name, 0)

        # Let any pass started before the replicas knew of each other finish.
        first = {n: count(n, i) for n, i in owner.items()}
        await wait_for(
            lambda: _async(all(count(n, i) >= first[n] + 2 for n, i in owner.items())),
            within=30,
            what="two passes by each owner",
        )
        others = {n: count(n, 1 - i) for n, i in owner.items()}
        now = {n: count(n, i) for n, i in owner.items()}
        await wait_for(
            lambda: _async(all(count(n, i) >= now[n] + 3 for n, i in owner.items())),
            within=30,
            what="three more passes by each owner",
        )
        assert {n: count(n, 1 - i) for n, i in owner.items()} == others
    finally:
        stop.set()
        for t in tasks[:2]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in shards:
            await s.release()
        await release_appsets(kube, apps_ns)
