"""``deploy/server``'s RBAC is enough for the API server's writes.

The RBAC objects of ``deploy/server`` are applied as rendered (moved into this
test's namespaces) and ``gitmoor server`` runs in-process with a client
certificate for ``system:serviceaccount:<apps-ns>:gitmoor-server``: to RBAC,
the server's ServiceAccount. Then a user drives every write route of the API
(projects, applications, automation, sync and refresh requests, repository and
cluster credentials, a diff, a cascade delete) and the test checks, request by
request, that the API server refused none of the server's own requests (its
client counts them by status code): a missing verb in the Role would otherwise
surface only as a 502 somewhere, or as an audit Event silently dropped.

Bound to the read ClusterRole alone (without ``gitmoor-server-write``), the same
run shows what that binding is for: the diff's server-side dry-runs and the
cascade delete are refused, and say so.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from deploytools import render, retarget

from gitmoor.engine import Engine, store
from gitmoor.kube import KubeClient, load_kubeconfig, wait_for
from gitmoor.model import ObjectRef
from gitmoor.server.app import create_app
from gitmoor.server.auth.sessions import CSRF_HEADER
from gitmoor.settings import accounts
from gitmoor.testenv import free_port
from support.apps import cm_ref, configmap, dump, gone
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.testenv import ControlPlane

SA = "gitmoor-server"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
API = "/api/v1"


def refused(client: KubeClient) -> dict[tuple[str, int], int]:
    return {k: n for k, n in client.requests.items() if k[1] in (401, 403)}


@pytest.mark.parametrize("write", [True, False], ids=["with-write-role", "reads-only"])
async def test_the_server_runs_its_write_routes_under_its_rbac(
    write: bool,
    kube: KubeClient,
    namespace: str,
    control_plane: ControlPlane,
    cluster_scoped: list[ObjectRef],
    extra_namespaces: list[str],
    tmp_path: Path,
) -> None:
    # Short: the minted certificate's CN is the user name, at most 64 characters.
    apps_ns = f"gm-{secrets.token_hex(4)}"
    await store.install(kube, apps_ns)
    extra_namespaces.append(apps_ns)
    password = await accounts.ensure_settings(kube, apps_ns)
    assert password is not None
    rbac = [
        o
        for o in retarget(render("deploy/server"), {"gitmoor": apps_ns}, apps_ns)
        if o["kind"] in RBAC_KINDS
        and (write or not o["metadata"]["name"].startswith("gitmoor-server-write"))
    ]
    cluster_rbac = ["ClusterRole", "ClusterRoleBinding"] * (2 if write else 1)
    assert sorted(o["kind"] for o in rbac) == sorted(
        ["ServiceAccount", "Role", "RoleBinding", *cluster_rbac]
    )
    for obj in rbac:
        await kube.apply(obj, force=True)
        if obj["kind"].startswith("Cluster"):
            cluster_scoped.append(ObjectRef.of(obj))
    kubeconfig = control_plane.mint_kubeconfig(
        f"system:serviceaccount:{apps_ns}:{SA}",
        ["system:serviceaccounts", f"system:serviceaccounts:{apps_ns}", "system:authenticated"],
    )
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"cfg.yaml": dump(configmap("cfg"))})

    async with KubeClient(load_kubeconfig(kubeconfig)) as sa_kube:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        app = create_app(sa_kube, apps_ns, url=url)
        uv = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        task = asyncio.create_task(uv.serve())
        try:
            await _drive(kube, url, task, password, apps_ns, namespace, repo, tmp_path, write)
        finally:
            uv.should_exit = True
            await asyncio.wait_for(task, 15)
        assert sa_kube.requests, "the server made no request"
        if write:
            assert refused(sa_kube) == {}, dict(sa_kube.requests)
        else:
            # Only the dry-run (a PATCH) and the cascade delete's DELETE were refused.
            assert {verb for verb, _ in refused(sa_kube)} <= {"PATCH", "DELETE"}, dict(
                sa_kube.requests
            )
    kubeconfig.unlink(missing_ok=True)


async def _drive(
    kube: KubeClient,
    url: str,
    task: asyncio.Task[None],
    password: str,
    apps_ns: str,
    dest: str,
    repo: GitRepo,
    tmp_path: Path,
    write: bool,
) -> None:
    async def up() -> bool:
        if task.done():
            task.result()
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(f"{url}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(up, within=30, what="gitmoor server ready")
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        r = await c.post(f"{API}/session", json={"username": "admin", "password": password})
        assert r.status_code == 200, r.text
        c.headers[CSRF_HEADER] = r.json()["csrf"]

        async def ok(method: str, path: str, **kw: Any) -> httpx.Response:
            r = await c.request(method, f"{API}{path}", **kw)
            assert r.status_code < 300, (method, path, r.status_code, r.text)
            return r

        project = {"sourceRepos": ["*"], "destinations": [{"namespace": "*"}]}
        await ok("POST", "/projects", json={"name": "team", **project})
        await ok("PUT", "/projects/team", json={**project, "description": "changed"})
        await ok("GET", "/projects")
        spec = {"project": "team", "repoURL": repo.url, "destination": {"namespace": dest}}
        await ok("POST", "/applications", json={"name": "web", **spec})
        await ok("PUT", "/applications/web", json={**spec, "targetRevision": "HEAD"})
        await ok("POST", "/applications/web/automation", json={"suspended": True})

        # Deployed by an engine of the test's own (the controller's part), so that
        # the diff reads live objects and the cascade delete has one to delete.
        async def listed() -> bool:
            return (await c.get(f"{API}/applications/web")).status_code == 200

        await wait_for(listed, within=10, what="the app in the server's watch")
        engine = Engine(kube, git_cache_dir=tmp_path / "cache", namespace=apps_ns)
        result = await engine.sync(await store.get_app(kube, "web", apps_ns))
        assert result.ok, result.message
        repo.commit({"cfg.yaml": dump(configmap("cfg", {"key": "changed"}))})
        diff = (await ok("GET", "/applications/web/diff")).json()["items"]
        assert [i["name"] for i in diff] == ["cfg"]
        if not write:
            assert "forbidden" in diff[0]["message"] and "cannot patch" in diff[0]["message"]
        await ok("POST", "/applications/web/refresh", json={"type": "hard"})
        await ok("POST", "/applications/web/sync", json={"dryRun": True})

        await ok("POST", "/repositories", json={"url": "https://git.example.com/", "password": "p"})
        await ok("GET", "/repositories")
        await ok("DELETE", "/repositories", params={"url": "https://git.example.com/"})
        cluster = {"name": "far", "server": "https://127.0.0.1:1", "config": {"bearerToken": "t"}}
        await ok("POST", "/clusters", json=cluster)
        await ok("GET", "/clusters")
        await ok("DELETE", "/clusters/far")

        await kube.merge_patch(store.app_ref("web", apps_ns), {"operation": None})
        if write:
            deleted = await ok("DELETE", "/applications/web", params={"cascade": "true"})
            assert [o["name"] for o in deleted.json()["deleted"]] == ["cfg"]
            assert await gone(kube, cm_ref(dest, "cfg"))
        else:
            # Refused by the API server: the object stays, and so does the app (with
            # its automation off), the object named, as Argo CD's finalizer waits for
            # its resources; a delete without cascade then lets the object be.
            refused = await c.request(
                "DELETE", f"{API}/applications/web", params={"cascade": "true"}
            )
            assert refused.status_code == 502, refused.text
            assert "cfg" in refused.json()["detail"], refused.text
            assert await kube.get(cm_ref(dest, "cfg")) is not None
            kept = await kube.get(store.app_ref("web", apps_ns))
            assert kept is not None and not (kept["spec"].get("syncPolicy") or {}).get("automated")
            deleted = await ok("DELETE", "/applications/web", params={"cascade": "false"})
            assert deleted.json()["deleted"] == []
            assert await kube.get(cm_ref(dest, "cfg")) is not None
        await ok("DELETE", "/projects/team")
