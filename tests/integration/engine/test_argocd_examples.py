"""Argo CD's own examples (argoproj/argocd-example-apps: sync-waves, pre-post-sync,
helm-hooks), copied unchanged into a git repository, apply in the order Argo CD
documents for them (docs user-guide/sync-waves.md and resource_hooks.md).

The order is read from the cluster, not from the engine's account: a watch on
Jobs, started before the sync, keeps each Job as last seen (a hook deleted by
HookSucceeded included), and objects' ``creationTimestamp`` is compared with
Jobs' ``completionTime``. Both have one-second resolution; the examples' Jobs run
``sleep 2`` to ``sleep 10`` on the local control plane (README, "How pods
behave"), so an object created while a Job still ran would carry an earlier
second. Images (``alpine:latest``, ``nginx:latest``) are never pulled there, so
the files need no change.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from support.apps import actions, gone, job_ref

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient
    from support.apps import AppEnv
    from support.gitrepo import GitRepo

EXAMPLES = Path(__file__).parent / "testdata" / "argocd-example-apps"
JSON = dict[str, Any]


def commit_examples(repo: GitRepo) -> str:
    """Every example file at its upstream path, byte for byte."""
    files = {str(p.relative_to(EXAMPLES)): p.read_text() for p in sorted(EXAMPLES.rglob("*.yaml"))}
    return repo.commit(files, "argocd-example-apps")


class JobWatch:
    """Each Job of a namespace as last seen, deleted ones included."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.jobs: dict[str, JSON] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ar = await self.kube.resource("batch", "v1", "Job")
        listed = await self.kube.list(ar, self.namespace)
        for job in listed.items:
            self.jobs[job["metadata"]["name"]] = job

        async def run() -> None:
            async for event in self.kube.watch(
                ar, self.namespace, resource_version=listed.resource_version
            ):
                obj = event.object
                if event.type in ("ADDED", "MODIFIED", "DELETED"):
                    self.jobs[obj["metadata"]["name"]] = obj

        self._task = asyncio.create_task(run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def named(self, pattern: str) -> JSON:
        (name,) = [n for n in self.jobs if re.fullmatch(pattern, n)]
        return self.jobs[name]

    async def completed(self, pattern: str) -> str:
        """The Job's completionTime, once the watch has seen it."""

        async def done() -> str | None:
            found = [j for n, j in self.jobs.items() if re.fullmatch(pattern, n)]
            if len(found) == 1:
                return str(found[0].get("status", {}).get("completionTime") or "") or None
            return None

        return str(await wait_for(done, within=30, what=f"Job {pattern} completed"))


@contextlib.asynccontextmanager
async def watching_jobs(kube: KubeClient, namespace: str) -> AsyncIterator[JobWatch]:
    watch = JobWatch(kube, namespace)
    await watch.start()
    try:
        yield watch
    finally:
        await watch.stop()


def created(obj: JSON | None) -> str:
    assert obj is not None
    return str(obj["metadata"]["creationTimestamp"])


def rs_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("apps", "v1", "ReplicaSet", namespace, name)


def svc_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "Service", namespace, name)


def generated(prefix: str, phase: str) -> str:
    """Argo CD's name for a hook with only generateName:
    ``<generateName><revision[:7]>-<phase>-<unix seconds>``, lower-cased."""
    return rf"{prefix}[0-9a-f]{{7}}-{phase.lower()}-[0-9]+"


async def test_sync_waves_example(env: AppEnv, kube: KubeClient) -> None:
    """sync-waves.md: the PreSync hook, then wave 0 (backend), the Sync hook of
    wave 1 (maint-page-up), wave 2 (frontend), the Sync hook of wave 3."""
    commit_examples(env.repo)
    await env.create("sync-waves", path="sync-waves")

    async with watching_jobs(kube, env.namespace) as jobs:
        result = await env.sync("sync-waves")
        assert result.ok, result.message
        schema_done = await jobs.completed(generated("upgrade-sql-schema", "PreSync"))
        page_up_done = await jobs.completed("maint-page-up")
        await jobs.completed("maint-page-down")
        page_up = jobs.named("maint-page-up")
        page_down = jobs.named("maint-page-down")

    backend = await env.get(rs_ref(env.namespace, "backend"))
    backend_svc = await env.get(svc_ref(env.namespace, "backend"))
    frontend = await env.get(rs_ref(env.namespace, "frontend"))
    frontend_svc = await env.get(svc_ref(env.namespace, "frontend"))
    # PreSync before wave 0.
    assert created(backend) >= schema_done
    assert created(backend_svc) >= schema_done
    # Wave 0 before the Sync hook of wave 1.
    assert created(page_up) >= max(created(backend), created(backend_svc))
    # The wave-1 hook completed before wave 2 started.
    assert created(frontend) >= page_up_done
    assert created(frontend_svc) >= page_up_done
    # Wave 2 before the Sync hook of wave 3.
    assert created(page_down) >= max(created(frontend), created(frontend_svc))
    # BeforeHookCreation (the examples' policy) leaves the hooks in place.
    assert await env.get(job_ref(env.namespace, "maint-page-down")) is not None

    app = await env.app("sync-waves")
    assert app.status["sync"]["status"] == "Synced"
    assert app.status["health"]["status"] == "Healthy"
    # Hooks are not the app's resources.
    assert sorted(f"{r['kind']}/{r['name']}" for r in app.status["resources"]) == [
        "ReplicaSet/backend",
        "ReplicaSet/frontend",
        "Service/backend",
        "Service/frontend",
    ]


async def test_pre_post_sync_example(env: AppEnv, kube: KubeClient) -> None:
    """resource_hooks.md: the PreSync Job completes before the app is applied, the
    PostSync Job runs once it is healthy; HookSucceeded deletes both."""
    commit_examples(env.repo)
    await env.create("pre-post-sync", path="pre-post-sync")

    async with watching_jobs(kube, env.namespace) as jobs:
        result = await env.sync("pre-post-sync")
        assert result.ok, result.message
        before_done = await jobs.completed("pre-post-sync-before")
        await jobs.completed("pre-post-sync-after")
        after = jobs.named("pre-post-sync-after")

    assert actions(result) == {
        "Job/pre-post-sync-before": "hook-succeeded",
        "Service/pre-post-sync-kustomize-guestbook-ui": "created",
        "Deployment/pre-post-sync-kustomize-guestbook-ui": "created",
        "Job/pre-post-sync-after": "hook-succeeded",
    }
    deploy = await env.get(
        ObjectRef("apps", "v1", "Deployment", env.namespace, "pre-post-sync-kustomize-guestbook-ui")
    )
    assert deploy is not None
    assert created(deploy) >= before_done
    available = next(c for c in deploy["status"]["conditions"] if c["type"] == "Available")
    assert available["status"] == "True"
    # PostSync: created once the Deployment was Available.
    assert created(after) >= available["lastTransitionTime"]
    for name in ("pre-post-sync-before", "pre-post-sync-after"):
        await wait_for(
            lambda n=name: gone(kube, job_ref(env.namespace, n)), within=30, what=f"{name} deleted"
        )
    app = await env.app("pre-post-sync")
    assert app.status["sync"]["status"] == "Synced"
    assert app.status["health"]["status"] == "Healthy"


async def test_helm_hooks_example(env: AppEnv, kube: KubeClient) -> None:
    """Helm's hook annotations as Argo CD reads them: pre-install hooks by
    hook-weight (-2, then -1), the ReplicaSet (wave 0), the Service (its
    hook-weight 2 is its wave), then the post-install hook."""
    commit_examples(env.repo)
    await env.create("helm-hooks", path="helm-hooks")

    async with watching_jobs(kube, env.namespace) as jobs:
        result = await env.sync("helm-hooks")
        assert result.ok, result.message
        schema_done = await jobs.completed(generated("upgrade-sql-schema", "PreSync"))
        page_up_done = await jobs.completed("maint-page-up")
        await jobs.completed("maint-page-down")
        page_up = jobs.named("maint-page-up")
        page_down = jobs.named("maint-page-down")

    frontend = await env.get(rs_ref(env.namespace, "frontend"))
    frontend_svc = await env.get(svc_ref(env.namespace, "frontend"))
    assert created(page_up) >= schema_done  # weight -2 before weight -1
    assert created(frontend) >= page_up_done  # PreSync before the Sync phase
    assert created(frontend_svc) >= created(frontend)  # wave 0 before wave 2
    assert created(page_down) >= created(frontend_svc)  # post-install last
    assert [r.ref.kind for r in result.resources if not r.hook] == ["ReplicaSet", "Service"]
    app = await env.app("helm-hooks")
    assert app.status["sync"]["status"] == "Synced"
    assert app.status["health"]["status"] == "Healthy"
