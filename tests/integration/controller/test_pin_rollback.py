"""Rollback that holds: `gitmoor app rollback NAME ID --pin` keeps automation on but
pins the app, so a new commit is not applied and `app why` names the pin and how
far the branch moved; `gitmoor app unpin` applies the branch again. The default
rollback still switches automation off and says so."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from support.cli import Gitmoor
from support.controller import running_controller
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web}}\ndata: {{v: '{v}'}}\n"


class Reconciles:
    """The controller's hook for each pass over an app: lets a test wait for a pass
    that began after a change, instead of sleeping."""

    def __init__(self) -> None:
        self.count = 0

    def reconciled(self, app: Application, seconds: float, outcome: str) -> None:
        self.count += 1

    def sync_started(self, app: Application, revision: str, reason: str) -> None:
        return None

    def sync_finished(self, app: Application, result: Any) -> None:
        return None

    def status_changed(self, before: Application, after: Application) -> None:
        return None


@pytest.fixture
def cli(kubeconfig: Path, apps_ns: str, tmp_path: Path) -> Gitmoor:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["GITMOOR_CACHE_DIR"] = str(tmp_path / "cli-cache")
    env["GITMOOR_CORE"] = "1"
    env["GITMOOR_USER"] = "pin-tests"
    return Gitmoor(kubeconfig, apps_ns, env)


async def test_a_pinned_rollback_holds_against_new_commits_until_unpinned(
    kube: KubeClient, namespace: str, apps_ns: str, tmp_path: Path, cli: Gitmoor
) -> None:
    repo = GitRepo(tmp_path / "repo")
    c1 = repo.commit({"app/cm.yaml": CM.format(v=1)})
    cm = ObjectRef("", "v1", "ConfigMap", namespace, "web")
    await store.save_app(
        kube,
        application_manifest(
            "web",
            apps_ns,
            AppSource(repo.url, "app", "main"),
            Destination(namespace),
            automated=Automated(prune=True, self_heal=True),
        ),
    )

    async def value() -> str | None:
        obj = await kube.get(cm)
        return obj["data"]["v"] if obj else None

    async def value_is(v: str) -> bool:
        return await value() == v

    async with running_controller(kube, apps_ns, interval=600) as ctrl:
        passes = Reconciles()
        ctrl.hooks = passes
        await wait_for(lambda: value_is("1"), within=30, what="first commit applied")
        repo.commit({"app/cm.yaml": CM.format(v=2)})
        ctrl.refresh_apps(["web"])
        await wait_for(lambda: value_is("2"), within=30, what="second commit applied")

        async def history() -> list[dict[str, Any]]:
            return list((await store.get_app(kube, "web", apps_ns)).status.get("history") or [])

        await wait_for(lambda: _len_at_least(history(), 2), within=30, what="both deploys recorded")
        first_id = (await history())[0]["id"]

        rolled = cli("app", "rollback", "web", str(first_id), "--pin")
        assert rolled.returncode == 0, rolled.stderr
        assert "pinned" in rolled.stderr and "automated sync stays on" in rolled.stderr
        assert await value() == "1"
        app = await store.get_app(kube, "web", apps_ns)
        assert app.spec.sync_policy.automated is not None, "--pin keeps automation on"
        assert app.spec.sync_policy.pin is not None and app.spec.sync_policy.pin.revision == c1

        c3 = repo.commit({"app/cm.yaml": CM.format(v=3)})
        seen = passes.count
        ctrl.refresh_apps(["web"])

        async def looked_again() -> bool:
            return passes.count > seen

        await wait_for(looked_again, within=30, what="the controller looked at the app again")
        assert await value() == "1", "a new commit was applied to a pinned app"
        st = (await store.get_app(kube, "web", apps_ns)).status
        assert (st["sync"]["status"], st["sync"]["revision"]) == ("Synced", c1)

        why = cli("app", "why", "web")
        assert why.returncode == 0, why.stderr
        assert f"pinned at {c1[:12]}" in why.stdout
        assert f"main is at {c3[:12]} (2 commits ahead)" in why.stdout

        # Drift from the pin is still healed: automation is on.
        await kube.merge_patch(cm, {"data": {"v": "drift"}})
        await wait_for(lambda: value_is("1"), within=30, what="drift healed back to the pin")

        unpinned = cli("app", "unpin", "web")
        assert unpinned.returncode == 0, unpinned.stderr
        await wait_for(lambda: value_is("3"), within=30, what="the branch applied after unpin")
        assert (await store.get_app(kube, "web", apps_ns)).spec.sync_policy.pin is None


async def test_the_default_rollback_still_switches_automation_off_and_says_so(
    kube: KubeClient, namespace: str, apps_ns: str, tmp_path: Path, cli: Gitmoor
) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"app/cm.yaml": CM.format(v=1)})
    await store.save_app(
        kube,
        application_manifest(
            "web",
            apps_ns,
            AppSource(repo.url, "app", "main"),
            Destination(namespace),
            automated=Automated(prune=True),
        ),
    )
    synced = cli("app", "sync", "web")
    assert synced.returncode == 0, synced.stderr
    rolled = cli("app", "rollback", "web", "1")
    assert rolled.returncode == 0, rolled.stderr
    assert "automated sync of web is switched off" in rolled.stderr
    app = await store.get_app(kube, "web", apps_ns)
    assert app.spec.sync_policy.automated is None
    assert app.spec.sync_policy.pin is None


async def _len_at_least(items: Any, n: int) -> bool:
    return len(await items) >= n
