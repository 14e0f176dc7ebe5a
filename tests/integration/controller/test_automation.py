"""Automation: the cluster follows Git by itself, drift is healed (or only
reported), failures neither loop nor touch the cluster, and outages heal."""

from __future__ import annotations

import asyncio
import threading
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.controller.loop import Controller
from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import AppSource, Automated, Destination, application_manifest
from gitmoor.settings.repos import add_repo
from support.githttp import PASSWORD, USER, GitHTTPServer, _handler
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from gitmoor.kube import KubeClient

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: nginx:1.27}}]}}
"""


class Env:
    def __init__(self, kube: KubeClient, namespace: str, apps_ns: str, repo: GitRepo) -> None:
        self.kube, self.namespace, self.apps_ns, self.repo = kube, namespace, apps_ns, repo

    async def create_app(self, name: str, *, self_heal: bool, url: str | None = None) -> None:
        await store.save_app(
            self.kube,
            application_manifest(
                name,
                self.apps_ns,
                AppSource(url or self.repo.url, "app", "main"),
                Destination(self.namespace),
                automated=Automated(prune=True, self_heal=self_heal),
            ),
        )

    async def status(self, name: str) -> dict[str, Any]:
        return (await store.get_app(self.kube, name, self.apps_ns)).status

    async def until(self, probe: Callable[[], Any], what: str, within: float = 30) -> Any:
        return await wait_for(probe, within=within, what=what)

    def ref(self, kind: str, name: str) -> ObjectRef:
        if kind == "Deployment":
            return ObjectRef("apps", "v1", kind, self.namespace, name)
        return ObjectRef("", "v1", kind, self.namespace, name)


@pytest.fixture
async def env(kube: KubeClient, namespace: str, tmp_path: Path) -> AsyncIterator[Env]:
    apps_ns = f"{namespace}-apps"
    await store.install(kube, apps_ns)
    repo = GitRepo(tmp_path / "repo")
    e = Env(kube, namespace, apps_ns, repo)
    yield e
    for a in await store.list_apps(kube, apps_ns):
        await kube.delete(store.app_ref(a.name, apps_ns))
    await kube.delete(ObjectRef("", "v1", "Namespace", "", apps_ns))


@pytest.fixture
async def controller(env: Env) -> AsyncIterator[Controller]:
    # A long interval: every change below must be noticed by watch or automation,
    # not by the periodic refresh. self-heal debounce shortened for test time.
    ctrl = Controller(env.kube, env.apps_ns, interval=600, workers=2, self_heal_debounce=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    yield ctrl
    stop.set()
    await task


async def test_new_commits_are_applied_and_removed_files_pruned(
    env: Env, controller: Controller
) -> None:
    env.repo.commit(
        {"app/a.yaml": CM.format(name="a", value="1"), "app/b.yaml": CM.format(name="b", value="1")}
    )
    await env.create_app("auto", self_heal=False)

    async def value(name: str) -> str | None:
        obj = await env.kube.get(env.ref("ConfigMap", name))
        return obj["data"]["value"] if obj else None

    await env.until(lambda: _eq(value("a"), "1"), "first commit applied")
    second = env.repo.commit({"app/a.yaml": CM.format(name="a", value="2")}, remove=("app/b.yaml",))
    # No CLI call: the app's own refresh is ten minutes away, so a webhook-less
    # pick-up of the commit is by an explicit refresh request of the webhook path.
    assert controller.refresh_apps(["auto"]) == 1
    await env.until(lambda: _eq(value("a"), "2"), "second commit applied")
    await env.until(lambda: _eq(value("b"), None), "removed file pruned")

    # The history entry is written when the operation ends, which is after its
    # last prune reaches the cluster: wait for it rather than read it at once.
    async def last_revision() -> str | None:
        history = (await env.status("auto")).get("history") or []
        return history[-1]["revision"] if history else None

    await env.until(lambda: _eq(last_revision(), second), "sync of the second commit recorded")
    st = await env.status("auto")
    assert st["history"][-1]["initiatedBy"] == "automated"


async def test_self_heal_reverts_a_scale(env: Env, controller: Controller) -> None:
    env.repo.commit({"app/deploy.yaml": DEPLOY.format(replicas=2)})
    await env.create_app("healed", self_heal=True)
    ref = env.ref("Deployment", "web")

    async def replicas() -> int | None:
        obj = await env.kube.get(ref)
        return obj["spec"]["replicas"] if obj else None

    await env.until(lambda: _eq(replicas(), 2), "deployed")
    await env.until(lambda: _synced(env, "healed"), "Synced")
    # kubectl scale: another field manager, through the scale subresource.
    await env.kube.merge_patch(ref, {"spec": {"replicas": 5}}, subresource="scale")
    assert await replicas() == 5
    syncs = len((await env.status("healed"))["history"])
    await env.until(lambda: _eq(replicas(), 2), "scale reverted by self-heal")

    async def healed_sync_recorded() -> dict[str, Any] | None:
        st = await env.status("healed")
        return st if len(st["history"]) > syncs else None

    st = await env.until(healed_sync_recorded, "the self-heal sync recorded")
    assert st["operationState"]["phase"] == "Succeeded"


async def test_without_self_heal_drift_is_only_reported(env: Env, controller: Controller) -> None:
    env.repo.commit({"app/cm.yaml": CM.format(name="settings", value="git")})
    await env.create_app("reported", self_heal=False)
    ref = env.ref("ConfigMap", "settings")
    await env.until(lambda: _synced(env, "reported"), "Synced")
    syncs_before = len((await env.status("reported"))["history"])
    await env.kube.merge_patch(ref, {"data": {"value": "hand-edited"}})

    async def out_of_sync() -> bool:
        st = await env.status("reported")
        return st.get("sync", {}).get("status") == "OutOfSync"

    await env.until(out_of_sync, "OutOfSync after the edit")
    # The controller has processed the drift (it wrote OutOfSync); it must not sync.
    controller.refresh_apps(["reported"])
    await env.until(lambda: _idle(controller), "controller idle")
    obj = await env.kube.get(ref)
    assert obj is not None and obj["data"]["value"] == "hand-edited"
    assert len((await env.status("reported"))["history"]) == syncs_before


async def test_a_failed_sync_is_not_retried_in_a_loop(env: Env, controller: Controller) -> None:
    # A selector that does not match the pod labels: rendered fine, refused (422) by the API server.
    env.repo.commit(
        {
            "app/deploy.yaml": DEPLOY.format(replicas=1).replace(
                "selector: {matchLabels: {app: web}}", "selector: {matchLabels: {app: other}}"
            )
        }
    )
    await env.create_app("broken", self_heal=True)

    async def failed() -> dict[str, Any] | None:
        op = (await env.status("broken")).get("operationState") or {}
        return op if op.get("phase") == "Failed" else None

    op = await env.until(failed, "sync Failed")
    assert "selector" in op["message"]
    # Processed again and again (refresh requests), it does not sync the same commit again.
    for _ in range(3):
        controller.refresh_apps(["broken"])
        await env.until(lambda: _idle(controller), "controller idle")
    again = (await env.status("broken"))["operationState"]
    assert again["finishedAt"] == op["finishedAt"] and again["startedAt"] == op["startedAt"]
    assert await env.kube.get(env.ref("Deployment", "web")) is None


async def test_git_server_down_leaves_the_cluster_alone_and_recovery_is_automatic(
    env: Env, controller: Controller, tmp_path: Path
) -> None:
    server = GitHTTPServer(root=tmp_path / "srv")
    server.root.mkdir()
    origin = GitRepo(server.root / "cfg")
    origin.commit({"app/cm.yaml": CM.format(name="settings", value="v1")})
    httpd = _serve(server)
    await add_repo(
        env.kube, server.url("cfg"), username=USER, password=PASSWORD, namespace=env.apps_ns
    )
    await env.create_app("remote", self_heal=True, url=server.url("cfg"))
    ref = env.ref("ConfigMap", "settings")
    await env.until(lambda: _synced(env, "remote"), "Synced from the HTTP server")
    before = await env.kube.get(ref)

    _stop(httpd)  # the git server goes down
    controller.refresh_apps(["remote"])

    async def condition() -> str | None:
        conds = (await env.status("remote")).get("conditions") or []
        return next((c["message"] for c in conds if c["type"] == "ComparisonError"), None)

    message = await env.until(condition, "ComparisonError while the server is down")
    assert f"127.0.0.1:{server.port}" in message and PASSWORD not in message
    after = await env.kube.get(ref)
    assert (
        after is not None
        and after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    )  # type: ignore[index]

    origin.commit({"app/cm.yaml": CM.format(name="settings", value="v2")})
    httpd = _serve(server, port=server.port)  # back, with a new commit
    try:
        # No request from us: the app's backoff retry finds the server again.
        async def applied() -> bool:
            obj = await env.kube.get(ref)
            return bool(obj and obj["data"]["value"] == "v2")

        await env.until(applied, "new commit applied after the outage", within=60)
        assert await condition() is None
    finally:
        _stop(httpd)


# ---------------------------------------------------------------- helpers


async def _eq(probe: Any, want: Any) -> bool:
    return bool(await probe == want)


async def _synced(env: Env, name: str) -> bool:
    st = await env.status(name)
    return st.get("sync", {}).get("status") == "Synced" and bool(st.get("history"))


async def _idle(controller: Controller) -> bool:
    return len(controller.queue) == 0 and controller.queue.processing == 0


def _serve(state: GitHTTPServer, port: int = 0) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _stop(httpd: ThreadingHTTPServer) -> None:
    httpd.shutdown()
    httpd.server_close()


async def test_a_new_commit_is_applied_on_the_refresh_interval_alone(env: Env) -> None:
    # No webhook, no refresh request: only the app's own interval (2 s) brings the commit in.
    env.repo.commit({"app/cm.yaml": CM.format(name="ticker", value="1")})
    await env.create_app("polled", self_heal=False)
    ctrl = Controller(env.kube, env.apps_ns, interval=2, workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run(stop))
    ref = env.ref("ConfigMap", "ticker")

    async def value() -> str | None:
        obj = await env.kube.get(ref)
        return obj["data"]["value"] if obj else None

    try:
        await env.until(lambda: _eq(value(), "1"), "first commit applied")
        await env.until(lambda: _synced(env, "polled"), "Synced")
        await env.until(lambda: _idle(ctrl), "controller idle, only the interval timer pending")
        assert ctrl.queue.pending_timers() >= 1
        env.repo.commit({"app/cm.yaml": CM.format(name="ticker", value="2")})
        await env.until(lambda: _eq(value(), "2"), "second commit applied by the interval")
    finally:
        stop.set()
        await task
