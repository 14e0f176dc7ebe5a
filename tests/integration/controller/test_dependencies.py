"""spec.dependsOn against the real control plane: an app waits, and says so, until
the apps it depends on are Synced and Healthy; it follows at once when they are; a
cycle is refused naming its members; a manual sync warns and stops unless
--ignore-dependencies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from support.controller import running_controller
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from support.cli import Gitmoor

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: main, image: "nginx:{tag}"}}]}}
"""
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: '1'}}\n"


async def create(
    kube: KubeClient, apps_ns: str, repo: GitRepo, dest: str, name: str, deps: list[str]
) -> None:
    manifest = application_manifest(
        name,
        apps_ns,
        AppSource(repo.url, name, "main"),
        Destination(dest),
        automated=Automated(prune=True),
    )
    if deps:
        manifest["spec"]["dependsOn"] = [{"name": d} for d in deps]
    await store.save_app(kube, manifest)


async def status(kube: KubeClient, apps_ns: str, name: str) -> dict[str, Any]:
    return (await store.get_app(kube, name, apps_ns)).status


def condition(st: dict[str, Any], ctype: str) -> str | None:
    return next((c["message"] for c in st.get("conditions") or [] if c["type"] == ctype), None)


async def test_an_app_waits_for_its_dependency_says_so_and_follows_when_it_is_healthy(
    kube: KubeClient, namespace: str, apps_ns: str, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "repo")
    # db's image never turns Ready (the pod rules' `fail` tag): db stays Progressing.
    repo.commit(
        {
            "db/deploy.yaml": DEPLOY.format(name="db", tag="fail"),
            "web/cm.yaml": CM.format(name="web"),
        }
    )
    web_cm = ObjectRef("", "v1", "ConfigMap", namespace, "web")
    async with running_controller(kube, apps_ns, interval=600) as ctrl:
        await create(kube, apps_ns, repo, namespace, "db", [])
        await create(kube, apps_ns, repo, namespace, "web", ["db"])

        async def waiting() -> bool:
            message = condition(await status(kube, apps_ns, "web"), "SyncWaiting")
            return message == "waiting for db (Progressing)"

        # Before db's first sync ends web may say "(OutOfSync)" or "(syncing)": the
        # sentence follows db's state, so it settles on what db stays at.
        await wait_for(waiting, within=30, what="web says it waits for db (Progressing)")
        assert await kube.get(web_cm) is None, "web was synced before db was Healthy"

        # The fix: db's image runs. db turns Healthy, and web follows without a refresh of its own.
        repo.commit({"db/deploy.yaml": DEPLOY.format(name="db", tag="1.27")})
        ctrl.refresh_apps(["db"])
        await wait_for(lambda: kube.get(web_cm), within=60, what="web synced once db is Healthy")
        db = await status(kube, apps_ns, "db")
        assert (db["sync"]["status"], db["health"]["status"]) == ("Synced", "Healthy")

        async def cleared() -> bool:
            return condition(await status(kube, apps_ns, "web"), "SyncWaiting") is None

        await wait_for(cleared, within=30, what="web's waiting condition removed")


async def test_a_missing_dependency_is_named(
    kube: KubeClient, namespace: str, apps_ns: str, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"web/cm.yaml": CM.format(name="web")})
    async with running_controller(kube, apps_ns, interval=600):
        await create(kube, apps_ns, repo, namespace, "web", ["ghost"])

        async def waiting() -> str | None:
            return condition(await status(kube, apps_ns, "web"), "SyncWaiting")

        message = await wait_for(waiting, within=30, what="web says what it waits for")
        assert message == "waiting for ghost (ghost does not exist)"


async def test_a_cycle_is_refused_and_its_members_named(
    kube: KubeClient, namespace: str, apps_ns: str, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({f"{n}/cm.yaml": CM.format(name=n) for n in ("a", "b", "c")})
    async with running_controller(kube, apps_ns, interval=600):
        await create(kube, apps_ns, repo, namespace, "a", ["b"])
        await create(kube, apps_ns, repo, namespace, "b", ["a"])
        await create(kube, apps_ns, repo, namespace, "c", ["a"])

        for name in ("a", "b"):

            async def refused(name: str = name) -> str | None:
                return condition(await status(kube, apps_ns, name), "DependencyError")

            message = await wait_for(refused, within=30, what=f"{name} reports the cycle")
            assert "dependency cycle among a, b" in message

        async def c_waits() -> bool:
            message = condition(await status(kube, apps_ns, "c"), "SyncWaiting")
            return message == "waiting for a (OutOfSync)"

        # c is outside the cycle: it waits for a, which never syncs; no cycle on c.
        await wait_for(c_waits, within=30, what="c says it waits for a (OutOfSync)")
        assert condition(await status(kube, apps_ns, "c"), "DependencyError") is None
        for name in ("a", "b", "c"):
            assert await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, name)) is None


async def test_a_manual_sync_with_unmet_dependencies_warns_and_stops_unless_told(
    kube: KubeClient, namespace: str, apps_ns: str, tmp_path: Path, kubeconfig: Path
) -> None:
    import os

    from support.cli import Gitmoor  # the CLI as a user runs it, without a controller

    repo = GitRepo(tmp_path / "repo")
    repo.commit({"web/cm.yaml": CM.format(name="web")})
    await create(kube, apps_ns, repo, namespace, "web", ["db"])
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["GITMOOR_CACHE_DIR"] = str(tmp_path / "cli-cache")
    env["GITMOOR_CORE"] = "1"
    cli: Gitmoor = Gitmoor(kubeconfig, apps_ns, env)

    refused = cli("app", "sync", "web")
    assert refused.returncode == 2
    assert "waiting for db (db does not exist)" in refused.stderr
    assert "--ignore-dependencies" in refused.stderr
    assert await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, "web")) is None

    done = cli("app", "sync", "web", "--ignore-dependencies")
    assert done.returncode == 0, done.stderr
    assert await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, "web")) is not None
