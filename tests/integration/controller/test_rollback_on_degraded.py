"""Health-gated automatic rollback (syncPolicy.automated.rollbackOnDegraded): a commit
whose image tag is `fail` goes Degraded; after `after`, the app is back on the
previous revision, Healthy and pinned, with the reason in its history, and this
happens once per failed commit, never in a loop.

How the commit goes Degraded here: the local pod rules keep a container whose image
tag is `fail` from ever turning Ready (CrashLoopBackOff), so its Deployment never
becomes Available; with `progressDeadlineSeconds: 2` the real kube-controller-manager
marks it `ProgressDeadlineExceeded`, which gitmoor's Deployment health rule (kubectl's
and gitops-engine's) calls Degraded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Destination, application_manifest
from support.controller import running_controller
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.engine import SyncResult
    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application

AFTER = 3.0
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "nginx:{tag}"}}]}}
"""


class Seen:
    """The controller's hooks: what a notification would be sent for."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.finished: list[str] = []
        self.passes = 0

    def reconciled(self, app: Application, seconds: float, outcome: str) -> None:
        self.passes += 1

    def sync_started(self, app: Application, revision: str, reason: str) -> None:
        self.started.append((revision, reason))

    def sync_finished(self, app: Application, result: SyncResult) -> None:
        self.finished.append(result.phase.value)

    def status_changed(self, before: Application, after: Application) -> None:
        return None


async def test_a_degraded_commit_is_rolled_back_once_and_pinned(
    kube: KubeClient, namespace: str, apps_ns: str, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "repo")
    good = repo.commit({"app/deploy.yaml": DEPLOY.format(tag="1.27")})
    manifest = application_manifest(
        "web", apps_ns, AppSource(repo.url, "app", "main"), Destination(namespace)
    )
    manifest["spec"]["syncPolicy"] = {
        "automated": {"prune": True, "rollbackOnDegraded": {"after": f"{AFTER:g}s"}}
    }
    await store.save_app(kube, manifest)
    deploy = ObjectRef("apps", "v1", "Deployment", namespace, "web")

    async def status() -> dict[str, Any]:
        return (await store.get_app(kube, "web", apps_ns)).status

    async def image() -> str | None:
        obj = await kube.get(deploy)
        return obj["spec"]["template"]["spec"]["containers"][0]["image"] if obj else None

    async with running_controller(kube, apps_ns, interval=600) as ctrl:
        seen = Seen()
        ctrl.hooks = seen

        async def healthy_at(rev: str) -> bool:
            st = await status()
            return (
                (st.get("health") or {}).get("status") == "Healthy"
                and (st.get("sync") or {}).get("revision") == rev
                and ((st.get("automation") or {}).get("lastHealthy") or {}).get("revision") == rev
            )

        await wait_for(lambda: healthy_at(good), within=60, what="the good commit Healthy")

        bad = repo.commit({"app/deploy.yaml": DEPLOY.format(tag="fail")})
        ctrl.refresh_apps(["web"])

        async def degraded_at_bad() -> bool:
            st = await status()
            return ((st.get("automation") or {}).get("degraded") or {}).get("revision") == bad

        await wait_for(degraded_at_bad, within=60, what="the fail commit seen Degraded")

        async def rolled_back() -> bool:
            history = (await status()).get("history") or []
            return bool(history) and history[-1].get("initiatedBy") == "automated-rollback"

        await wait_for(rolled_back, within=60, what="the automatic rollback recorded")
        st = await status()
        entry = st["history"][-1]
        assert entry["revision"] == good
        assert entry["reason"].startswith(f"rollback-on-degraded: {bad[:12]} was Degraded")
        assert st["automation"]["rolledBackFrom"] == [bad]
        app = await store.get_app(kube, "web", apps_ns)
        assert app.spec.sync_policy.pin is not None
        assert app.spec.sync_policy.pin.revision == good
        assert app.spec.sync_policy.automated is not None, "automation stays on"
        assert (good, "rollback-on-degraded") in seen.started  # the notification's hook
        assert await image() == "nginx:1.27"
        await wait_for(lambda: healthy_at(good), within=60, what="back on the good commit, Healthy")

        # Never in a loop: unpinned, the automation syncs the failed commit again
        # (it is the branch's newest), which goes Degraded again, and stays there.
        app = await store.get_app(kube, "web", apps_ns)
        await store.patch_spec(kube, app, {"syncPolicy": {"pin": None}})
        await wait_for(degraded_at_bad, within=60, what="the fail commit Degraded again")
        since = datetime.fromisoformat((await status())["automation"]["degraded"]["since"])

        async def looked_after_grace() -> bool:
            # A pass that began once `after` had passed since it went Degraded
            # again: the moment a second rollback would have started.
            if datetime.now(since.tzinfo) < since + timedelta(seconds=AFTER + 1):
                return False
            before = seen.passes
            ctrl.refresh_apps(["web"])
            return await _passed(seen, before)

        await wait_for(looked_after_grace, within=60, what="a pass after the grace period")
        st = await status()
        rollbacks = [h for h in st["history"] if h.get("initiatedBy") == "automated-rollback"]
        assert len(rollbacks) == 1, st["history"]
        assert st["history"][-1]["revision"] == bad
        assert (await store.get_app(kube, "web", apps_ns)).spec.sync_policy.pin is None


async def _passed(seen: Seen, before: int) -> bool:
    return await wait_for(lambda: _more(seen, before), within=30, what="the pass ended")


async def _more(seen: Seen, before: int) -> bool:
    return seen.passes > before
