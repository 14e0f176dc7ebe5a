"""Helpers for engine and CLI integration tests: manifests as YAML text, an
Application per test, and snapshots of what a namespace holds.

Manifests are built as dicts and dumped, so a test reads as "this is what is in
git" without hand-indented YAML.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from gitmoor.engine import store
from gitmoor.engine.sync import SyncOptions, SyncResult
from gitmoor.kube import UnknownKindError, wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import (
    AppSource,
    Automated,
    Destination,
    HelmSource,
    application_manifest,
)

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.engine.app import Engine
    from gitmoor.engine.compare import Comparison
    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application
    from support.gitrepo import GitRepo

JSON = dict[str, Any]

HOOK = "gitmoor.io/hook"
HOOK_DELETE_POLICY = "gitmoor.io/hook-delete-policy"
SYNC_WAVE = "gitmoor.io/sync-wave"
SYNC_OPTIONS = "gitmoor.io/sync-options"

# Kinds a snapshot of a test namespace covers: every kind these tests deploy.
SNAPSHOT_KINDS: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("apps", "v1", "Deployment"),
    ("batch", "v1", "Job"),
)


# ---------------------------------------------------------------- manifests


def dump(*objs: JSON) -> str:
    return yaml.safe_dump_all(list(objs), sort_keys=False)


def _meta(name: str, annotations: dict[str, str] | None, namespace: str | None) -> JSON:
    meta: JSON = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def configmap(
    name: str,
    data: dict[str, str] | None = None,
    *,
    annotations: dict[str, str] | None = None,
    namespace: str | None = None,
) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, annotations, namespace),
        "data": dict(data or {"key": "value"}),
    }


def secret(name: str, string_data: dict[str, str]) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": dict(string_data),
    }


def deployment(name: str, *, replicas: int = 1, image: str = "nginx:1.27") -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def slow_deployment(name: str, seconds: int, *, wave: str | None = None) -> JSON:
    """A Deployment whose pod turns Ready ``seconds`` after it starts (the local
    cluster's pods honour the readinessProbe's initialDelaySeconds), in ``wave``."""
    d = deployment(name)
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/", "port": 80},
        "initialDelaySeconds": seconds,
    }
    if wave is not None:
        d["metadata"]["annotations"] = {SYNC_WAVE: wave}
    return d


def service(name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def job(
    name: str,
    *,
    seconds: int = 1,
    image: str = "busybox:1.36",
    annotations: dict[str, str] | None = None,
) -> JSON:
    """A run-to-completion Job: the local cluster's pod succeeds after ``sleep N``
    seconds, or fails when the image tag is ``fail`` (README, "How pods behave")."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, annotations, None),
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "command": ["sh", "-c", f"sleep {seconds}"],
                        }
                    ],
                }
            },
        },
    }


# ---------------------------------------------------------------- refs and reads


def cm_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "ConfigMap", namespace, name)


def deploy_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("apps", "v1", "Deployment", namespace, name)


def job_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("batch", "v1", "Job", namespace, name)


def annotations_of(obj: JSON | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def labels_of(obj: JSON | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


CLUSTER_MADE = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}


async def snapshot(kube: KubeClient, namespace: str) -> dict[tuple[str, str], str]:
    """(kind, name) → resourceVersion of every object of ``SNAPSHOT_KINDS`` in the
    namespace: equal snapshots mean nothing was created, changed or deleted. What
    kube-controller-manager puts in every new namespace (its ``default``
    ServiceAccount, the ``kube-root-ca.crt`` ConfigMap) is left out: it arrives
    whenever the controller gets to it, not when a test acts."""

    async def of(group: str, version: str, kind: str) -> dict[tuple[str, str], str]:
        listed = await kube.list(await kube.resource(group, version, kind), namespace)
        return {
            (kind, o["metadata"]["name"]): o["metadata"]["resourceVersion"]
            for o in listed.items
            if (kind, o["metadata"]["name"]) not in CLUSTER_MADE
        }

    out: dict[tuple[str, str], str] = {}
    for part in await asyncio.gather(*(of(*k) for k in SNAPSHOT_KINDS)):
        out.update(part)
    return out


async def gone(kube: KubeClient, ref: ObjectRef) -> bool:
    try:
        return await kube.get(ref) is None
    except UnknownKindError:
        return True


def kubectl(kubeconfig: Path, *args: str) -> str:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout


# ---------------------------------------------------------------- applications


@dataclass
class AppEnv:
    """One test's world: a git repository, a destination namespace, an apps
    namespace and an Engine. Methods take an app name and always read the
    Application afresh, since the engine's inventory is in its status."""

    kube: KubeClient
    engine: Engine
    repo: GitRepo
    namespace: str
    apps_namespace: str
    created: list[str] = field(default_factory=list)

    async def create(
        self,
        name: str,
        *,
        path: str = ".",
        dest_namespace: str | None = None,
        automated: Automated | None = None,
        sync_options: tuple[str, ...] = (),
        helm: HelmSource | None = None,
        spec: JSON | None = None,
    ) -> Application:
        manifest = application_manifest(
            name,
            self.apps_namespace,
            AppSource(repo_url=self.repo.url, path=path, helm=helm or HelmSource()),
            Destination(namespace=dest_namespace or self.namespace),
            automated=automated,
            sync_options=sync_options,
        )
        manifest["spec"].update(spec or {})
        app = await store.save_app(self.kube, manifest)
        self.created.append(name)
        return app

    def app_ref(self, name: str) -> ObjectRef:
        return store.app_ref(name, self.apps_namespace)

    async def app(self, name: str) -> Application:
        return await store.get_app(self.kube, name, self.apps_namespace)

    async def sync(
        self, name: str, options: SyncOptions | None = None, *, revision: str | None = None
    ) -> SyncResult:
        options = options or SyncOptions(timeout=60)
        return await self.engine.sync(
            await self.app(name), options, revision=revision, initiated_by="tests"
        )

    async def refresh(self, name: str) -> tuple[Application, Comparison | None]:
        return await self.engine.refresh(await self.app(name))

    async def healthy(self, name: str, within: float = 60) -> Application:
        """The app once a refresh finds it Healthy. A sync ends when its last wave is
        applied, without waiting for that wave's health (Argo CD's order too); the
        app's health follows as its objects become ready, as a controller sees it."""

        async def check() -> Application | None:
            app, _ = await self.refresh(name)
            return app if (app.status.get("health") or {}).get("status") == "Healthy" else None

        return await wait_for(check, within=within, interval=0.3, what=f"{name} Healthy")

    async def get(self, ref: ObjectRef) -> JSON | None:
        return await self.kube.get(ref)

    def cm(self, name: str) -> ObjectRef:
        return cm_ref(self.namespace, name)

    async def snapshot(self) -> dict[tuple[str, str], str]:
        return await snapshot(self.kube, self.namespace)

    async def cleanup(self) -> None:
        """Delete the Applications this test created (their objects go with the namespace)."""
        for name in self.created:
            await self.kube.delete(store.app_ref(name, self.apps_namespace))


def diff_changes(diff: str) -> tuple[list[str], list[str]]:
    """The removed and added lines of a unified diff, without sign, indent or headers."""
    removed, added = [], []
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            removed.append(line[1:].strip())
        elif line.startswith("+"):
            added.append(line[1:].strip())
    return removed, added


def actions(result: SyncResult) -> dict[str, str]:
    """``Kind/name`` → action value, for assertions that read like the CLI output."""
    return {f"{r.ref.kind}/{r.ref.name}": r.action.value for r in result.resources}


# ---------------------------------------------------------------- fixture helpers


async def install_application_crd(kube: KubeClient, namespace: str) -> None:
    """The Application CRD (idempotent) and ``namespace`` for Applications."""
    await store.install(kube, namespace)


async def create_namespace(kube: KubeClient, name: str) -> str:
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"gitmoor.io/test": "true"}},
        }
    )
    return name


async def delete_namespace(kube: KubeClient, name: str) -> None:
    """Delete the Applications in ``name`` explicitly, then the namespace (not waited for)."""
    for app in await store.list_apps(kube, name):
        await kube.delete(store.app_ref(app.name, name))
    await kube.delete(ObjectRef("", "v1", "Namespace", "", name))
