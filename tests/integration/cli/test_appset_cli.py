"""`gitmoor appset create|list|get|delete` as a user runs them, with the
controller (in this process) making the Applications of the sets created."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import yaml

from gitmoor.controller import Controller
from gitmoor.controller.appsets import AppSetController
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef
from gitmoor.model.application import GROUP, KIND, VERSION
from gitmoor.model.appset import APPSET_GROUP, APPSET_KIND, APPSET_LABEL, APPSET_VERSION

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from gitmoor.kube import KubeClient
    from support.cli import Gitmoor
    from support.gitrepo import GitRepo

JSON = dict[str, Any]

CM = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}}}
data: {{from: "{name}"}}
"""


def manifest(name: str, repo_url: str, dest_ns: str, apps: list[str]) -> JSON:
    return {
        "apiVersion": f"{APPSET_GROUP}/{APPSET_VERSION}",
        "kind": APPSET_KIND,
        "metadata": {"name": name},
        "spec": {
            "generators": [{"list": {"elements": [{"app": a} for a in apps]}}],
            "template": {
                "metadata": {"name": "{{app}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo_url, "path": "{{app}}", "targetRevision": "main"},
                    "destination": {"namespace": dest_ns},
                    "syncPolicy": {"automated": {}},
                },
            },
        },
    }


@contextlib.asynccontextmanager
async def controllers(kube: KubeClient, apps_ns: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    ctrl = Controller(kube, apps_ns, interval=1.0, workers=2)
    appsets = AppSetController(kube, apps_ns, ctrl.engine, interval=1.0)
    tasks = [asyncio.create_task(ctrl.run(stop)), asyncio.create_task(appsets.run(stop))]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def apps_of(kube: KubeClient, apps_ns: str) -> dict[str, JSON]:
    ar = await kube.resource(GROUP, VERSION, KIND)
    return {o["metadata"]["name"]: o for o in (await kube.list(ar, apps_ns)).items}


async def test_appset_commands(
    kube: KubeClient,
    gitmoor: Gitmoor,
    apps_namespace: str,
    namespace: str,
    repo: GitRepo,
    tmp_path: Path,
) -> None:
    repo.commit({f"{a}/cm.yaml": CM.format(name=a) for a in ("web-a", "web-b", "keep-a")})
    web, keep = tmp_path / "web.yaml", tmp_path / "keep.yaml"
    web.write_text(yaml.safe_dump(manifest("web", repo.url, namespace, ["web-a", "web-b"])))
    keep.write_text(yaml.safe_dump(manifest("keep", repo.url, namespace, ["keep-a"])))

    r = gitmoor("appset", "create", "-f", str(web))
    assert r.returncode == 0, r.stderr
    assert "applicationset web created" in r.stdout
    r = gitmoor("appset", "create", "-f", str(web))
    assert r.returncode == 2 and "already exists" in r.stderr
    assert gitmoor("appset", "create", "-f", str(keep)).returncode == 0

    async def cli(*args: str) -> Any:
        return await asyncio.to_thread(gitmoor, *args)

    async with controllers(kube, apps_namespace):

        async def listed() -> str | None:
            r = await cli("appset", "list")
            lines = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
            ok = lines.get("web", [])[1:4] == ["create-update", "2", "UpToDate"]
            return r.stdout if ok and lines.get("keep", [])[2:3] == ["1"] else None

        await wait_for(listed, within=90, interval=1.0, what="appset list: web with 2 apps")

        async def all_healthy() -> JSON | None:
            r = await cli("appset", "get", "web", "-o", "json")
            res = (json.loads(r.stdout).get("status") or {}).get("resources") or []
            ok = len(res) == 2 and all(
                x["status"] == "Synced" and x["health"]["status"] == "Healthy" for x in res
            )
            return json.loads(r.stdout) if ok else None

        await wait_for(all_healthy, within=90, interval=1.0, what="web's apps Synced, Healthy")
        r = await cli("appset", "get", "web")
        assert r.returncode == 0, r.stderr
        assert "list (2 elements)" in r.stdout
        rows = [line.split() for line in r.stdout.splitlines()]
        assert ["web-a", "Synced", "Healthy"] in rows and ["web-b", "Synced", "Healthy"] in rows
        assert any("ErrorOccurred=False" in line for line in r.stdout.splitlines())

    # With no controller running: delete takes the apps and their objects...
    r = gitmoor("appset", "delete", "web")
    assert r.returncode == 0, r.stderr
    assert "applications deleted: web-a, web-b" in r.stdout
    apps = await apps_of(kube, apps_namespace)
    assert "web-a" not in apps and "web-b" not in apps
    appset = ObjectRef(APPSET_GROUP, APPSET_VERSION, APPSET_KIND, apps_namespace, "web")
    assert await kube.get(appset) is None
    assert await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, "web-a")) is None

    # ... and --no-cascade releases them: they stay, owned by nobody, objects intact.
    r = gitmoor("appset", "delete", "keep", "--no-cascade")
    assert r.returncode == 0, r.stderr
    assert "applications kept: keep-a" in r.stdout
    kept = (await apps_of(kube, apps_namespace))["keep-a"]
    assert not kept["metadata"].get("ownerReferences")
    assert APPSET_LABEL not in (kept["metadata"].get("labels") or {})
    assert await kube.get(ObjectRef("", "v1", "ConfigMap", namespace, "keep-a")) is not None
    assert gitmoor("appset", "list").stdout.count("keep") == 0

    r = gitmoor("appset", "get", "nope")
    assert r.returncode == 2 and "not found" in r.stderr
